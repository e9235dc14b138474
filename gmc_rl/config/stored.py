"""Reading back the config that gmc-rl stored for one of its runs, so that a run made before a key existed resumes,
reloads and stays finished as it was made.

Kept apart from :mod:`gmc_rl.config.conversion` because it builds an :class:`~gmc_rl.config.schema.ExperimentConfig`,
whose sections themselves use the conversion.
"""

from __future__ import annotations

import copy
from typing import Any

from gmc_rl.config.conversion import from_dict
from gmc_rl.config.schema import ExperimentConfig

KEYS_ADDED_LATER: dict[str, Any] = {"pretrain.modality_fit_epochs": 0, "agent.action_fit_rounds": 0}
"""Keys added with a default that changes what a run does, each with the value a config written before it existed
meant: a run's own stored config that lacks the key was made that way (:func:`stored_config`)."""


def stored_config(data: Any) -> ExperimentConfig:
    """The experiment config that gmc-rl stored for a run (a pretraining ``run.json``, a pipeline run's
    ``config.yaml``, an ``agent.json``), read as :func:`from_dict` does, except that a key of
    :data:`KEYS_ADDED_LATER` missing from it takes the value that reproduces the run (a user's own config file
    without the key gets the default instead). So a run made before the key existed resumes, reloads and stays
    finished as it was made."""
    if isinstance(data, dict):
        data = copy.deepcopy(data)
        for key, value in KEYS_ADDED_LATER.items():
            section, name = key.split(".")
            if isinstance(data.get(section), dict):
                data[section].setdefault(name, value)
    return from_dict(ExperimentConfig, data)
