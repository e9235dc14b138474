"""``python -m gmc_rl.zoo enjoy`` on a shared run folder runs no code from it (no training: fake run folders).

rl-zoo3 reads a run's ``config.yml`` and ``args.yml`` with ``yaml.UnsafeLoader``, ``eval()``s a string
``normalize``, imports and calls the wrappers the config names, and loads the model with SB3's ``load``, which
unpickles the ``:serialized:`` entries of its ``data``. The launcher checks all of these before rl-zoo3 runs.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rl_zoo3")

import gymnasium as gym  # noqa: E402
from huggingface_sb3 import EnvironmentName  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402

import gmc_rl  # noqa: E402,F401  (registers the env ids)
from gmc_rl.errors import ConfigError  # noqa: E402
from gmc_rl.zoo import check_run_yaml, main  # noqa: E402

ENV_ID = "gmc_rl/PendulumSound-v0"
ENV_NAME = "gmc_rl-PendulumSound-v0"


class _Touch:
    """Unpickling this creates ``path`` (what a crafted pickle in a shared file would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def make_run(root: Path, config: str | None = None, model: bool = False) -> Path:
    """A zoo run folder as rl-zoo3 lays it out: ``root/sac/<env>_1/<env>.zip`` and ``.../<env>/{config,args}.yml``."""
    run = root / "sac" / f"{ENV_NAME}_1"
    params = run / ENV_NAME
    params.mkdir(parents=True)
    if config is None:
        config = yaml.dump(OrderedDict([("buffer_size", 1), ("n_timesteps", 300), ("policy", "MultiInputPolicy")]))
    (params / "config.yml").write_text(config)
    (params / "args.yml").write_text(yaml.dump(OrderedDict([("algo", "sac"), ("env", EnvironmentName(ENV_ID)),
                                                            ("env_kwargs", {"max_episode_steps": 5})])))
    if model:
        SAC("MultiInputPolicy", gym.make(ENV_ID), buffer_size=1, learning_starts=0, device="cpu").save(
            run / f"{ENV_NAME}.zip")
    else:
        (run / f"{ENV_NAME}.zip").write_bytes(b"not a zip")
    return run


def set_data(zip_path: Path, key: str, value) -> None:
    """Replace (or add) one entry of the model zip's ``data`` JSON."""
    with zipfile.ZipFile(zip_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    data[key] = value
    entries["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)


def pickled(obj) -> dict:
    return {":type:": "<class 'object'>", ":serialized:": base64.b64encode(pickle.dumps(obj)).decode()}


def enjoy(folder: Path, *extra: str) -> int:
    return main(["enjoy", "--algo", "sac", "--env", ENV_ID, "-f", str(folder), "-n", "3", "--no-render",
                 "--num-threads", "1", *extra])


def test_a_python_tag_in_config_yml_is_refused_and_not_run(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    run = make_run(tmp_path / "shared", config=(
        "!!python/object/apply:collections.OrderedDict\n"
        "- - - n_timesteps\n    - 300\n"
        f"  - - marker\n    - !!python/object/apply:os.system [\"touch {marker}\"]\n"))
    monkeypatch.chdir(tmp_path)
    assert enjoy(tmp_path / "shared") == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert f"{run / ENV_NAME / 'config.yml'}, line 5" in err and "!!python/object/apply:os.system" in err, err


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!python/object/new:builtins.eval [\"1\"]",
                                 "!!python/module:os", "!<tag:yaml.org,2002:python/object/apply:os.getcwd> []"])
def test_check_run_yaml_names_file_line_and_tag(tmp_path, tag):
    path = tmp_path / "args.yml"
    path.write_text(f"a: 1\nb:\n  - {tag}\n")
    with pytest.raises(ConfigError, match=r"args\.yml, line 3: the tag !!python/"):
        check_run_yaml(path)


def test_what_rl_zoo3_writes_is_accepted(tmp_path):
    run = make_run(tmp_path)
    assert check_run_yaml(run / ENV_NAME / "args.yml")["env"].gym_id == ENV_ID
    assert check_run_yaml(run / ENV_NAME / "config.yml")["policy"] == "MultiInputPolicy"


def test_a_pickled_model_entry_is_never_unpickled(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    run = make_run(tmp_path / "shared", model=True)
    set_data(run / f"{ENV_NAME}.zip", "evil", pickled(_Touch(marker)))
    monkeypatch.chdir(tmp_path)
    assert enjoy(tmp_path / "shared") == 0  # the entry is replaced (by None), the agent plays
    assert not marker.exists()
    assert "Loading" in capsys.readouterr().out


def test_pickled_policy_kwargs_that_cannot_be_rebuilt_are_refused(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    run = make_run(tmp_path / "shared", model=True)
    set_data(run / f"{ENV_NAME}.zip", "policy_kwargs",
             {":type:": "<class 'dict'>", ":serialized:": pickled(_Touch(marker))[":serialized:"],
              "features_extractor_class": "<class 'evil.Extractor'>"})
    monkeypatch.chdir(tmp_path)
    assert enjoy(tmp_path / "shared") == 2
    assert not marker.exists()
    assert "policy_kwargs['features_extractor_class']" in capsys.readouterr().err


def test_code_in_plain_yaml_values_is_refused(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "PWNED"
    monkeypatch.chdir(tmp_path)
    # rl-zoo3 eval()s a string normalize
    make_run(tmp_path / "a", config=yaml.safe_dump(
        {"normalize": f"__import__('os').system('touch {marker}') or dict()", "policy": "MultiInputPolicy"}))
    assert enjoy(tmp_path / "a") == 2
    assert "eval()" in capsys.readouterr().err
    # rl-zoo3 imports and calls what env_wrapper names with the env and the given keyword arguments
    make_run(tmp_path / "b", config=yaml.safe_dump(
        {"env_wrapper": [{"pydoc.pipepager": {"cmd": f"touch {marker}"}}], "policy": "MultiInputPolicy"}))
    assert enjoy(tmp_path / "b") == 2
    assert "pydoc.pipepager" in capsys.readouterr().err
    assert not marker.exists()


def test_vecnormalize_pkl_needs_the_opt_in(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "shared", model=True,
                   config=yaml.safe_dump({"normalize": True, "policy": "MultiInputPolicy"}))
    (run / ENV_NAME / "vecnormalize.pkl").write_bytes(pickle.dumps(_Touch(tmp_path / "PWNED")))
    monkeypatch.chdir(tmp_path)
    assert enjoy(tmp_path / "shared") == 2
    err = capsys.readouterr().err
    assert "vecnormalize.pkl" in err and "--allow-pickle" in err, err
    assert not (tmp_path / "PWNED").exists()


def test_scripts_that_bypass_the_checks_are_refused(capsys):
    assert main(["record_training", "--algo", "sac"]) == 2
    assert main(["benchmark"]) == 2
    assert "bypass" in capsys.readouterr().err


def test_a_missing_run_is_not_downloaded(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["enjoy", "--algo", "sac", "--env", ENV_ID, "--no-render"]) == 2
    assert "load_from_hub" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "rl-trained-agents")


def test_the_guard_puts_back_exactly_what_it_replaced():
    """Before, the guard saved getattr(BaseAlgorithm, "load") (the method bound to BaseAlgorithm) and put that back:
    after one launcher run in the process, SAC.load built a BaseAlgorithm and every later SB3 load failed."""
    import rl_zoo3
    from stable_baselines3.common.base_class import BaseAlgorithm

    from gmc_rl.zoo_checks import _Guard

    before = (vars(BaseAlgorithm)["load"], yaml.UnsafeLoader, "create_test_env" in vars(rl_zoo3))
    with _Guard():
        assert vars(BaseAlgorithm)["load"] is not before[0]
    assert (vars(BaseAlgorithm)["load"], yaml.UnsafeLoader, "create_test_env" in vars(rl_zoo3)) == before
    assert SAC.load.__self__ is SAC
