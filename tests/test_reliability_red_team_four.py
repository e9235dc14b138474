"""Bad input found by the fourth red-team pass, each fixed for its whole class.

Each case was accepted silently with another meaning (a YAML 1.1 number form), accepted without a bound (the
observations an agent's distillation or action fit keeps), or refused with a raw or misleading error. One test per
class, each in seconds: no training. The tests are the rows of the catalogue in docs/reliability.md that name
this file.
"""

from __future__ import annotations

import pytest

from gmc_rl.config import ExperimentConfig
from gmc_rl.errors import ConfigError

ENV = "gmc_rl/PendulumSound-v0"


# ----------------------------------------------------------------------------------------------------------------
# W8: run_pipeline's arguments are checked before anything is written.


@pytest.mark.parametrize(("arguments", "says"), [
    ({"jobs": 1.5}, "jobs must be an integer of at least 1, got float 1.5"),
    ({"jobs": True}, "jobs must be an integer of at least 1, got bool True"),
    ({"jobs": "2"}, "jobs must be an integer of at least 1, got str '2'"),
    ({"config": None}, "config must be an ExperimentConfig (gmc_rl.config.load_config reads one from YAML), got "
                       "NoneType None"),
    ({"config": {"name": "x"}}, "config must be an ExperimentConfig"),
    ({"run_dir": None}, "run_dir must be a path to the run directory, got NoneType None"),
    ({"run_dir": 5}, "run_dir must be a path to the run directory, got int 5"),
    ({"update": "no"}, "update must be True or False, got str 'no'"),
    ({"log": None}, "log must be a function taking one str"),
    ({"address": 6379}, "address must be None or a Ray address"),
])
def test_run_pipeline_checks_its_arguments_before_writing(tmp_path, arguments, says):
    """Before, ``jobs=1.5`` wrote the run directory (marker, config, lock) and then failed with a raw TypeError,
    ``jobs=True`` ran the pipeline with one job, and a None or dict config was an AttributeError."""
    from gmc_rl.pipeline import run_pipeline

    # An env id that does not exist: a wrong argument that slipped through would fail on it instead (quickly).
    call = {"config": ExperimentConfig(env_id="gmc_rl/NoSuchEnv-v0"), "run_dir": tmp_path / "run", "progress": False,
            "log": lambda message: None, **arguments}
    with pytest.raises(ConfigError) as error:
        run_pipeline(call.pop("config"), call.pop("run_dir"), **call)
    assert str(error.value).startswith(says), error.value
    assert list(tmp_path.iterdir()) == []
