"""Identities: the settings that decide what a stage produces, as a plain dict, and a short hash of them.

A stage output made with the same identity is up to date (gmc_rl.stages, gmc_rl.pipeline). Settings that change
nothing for a stage are left out of its identity, and so are new keys at the value that reproduces older runs, so
that adding a key does not redo finished work.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gmc_rl.config.conversion import to_dict
from gmc_rl.config.schema import AgentConfig, CollectConfig, MUSEConfig, PretrainConfig


def collect_identity(collect: CollectConfig) -> dict[str, Any]:
    """The collect settings that decide a dataset's content, as a plain dict.

    The ``focus_*`` keys are left out while ``focus_fraction`` is 0 (they change nothing then), so datasets and
    pipeline runs made before those keys existed keep their identity.
    """
    data = to_dict(collect)
    if collect.focus_fraction == 0.0:
        for key in ("focus_fraction", "focus_reset_options", "focus_episode_steps"):
            data.pop(key)
    return data


def pretrain_identity(pretrain: PretrainConfig, method: str) -> dict[str, Any]:
    """The pretrain settings that decide the weights of a ``method`` encoder, as a plain dict.

    ``muse`` is read by the MUSE baseline only: it is left out for every other method (a change there leaves GMC
    and MVAE encoders up to date), and for ``"muse"`` it is kept only when it differs from the defaults, so MUSE
    runs made before the section existed (with the defaults) keep their identity.
    """
    data = to_dict(pretrain)
    muse = data.pop("muse")
    for term in ("temporal_weight", "frame_order_weight", "modality_fit_epochs"):  # runs made before these existed
        if method != "gmc" or not data[term]:  # keep their identity
            data.pop(term)
    if method == "muse" and pretrain.muse != MUSEConfig():
        data["muse"] = muse
    return data


ACTION_FIT_KEYS = ("action_fit_rounds", "action_fit_steps", "action_fit_epochs", "action_fit_check_episodes")
"""The agent keys of the action fit (gmc_rl.agents.action_fit)."""


def agent_identity(agent: AgentConfig, method: str) -> dict[str, Any]:
    """What a ``method`` agent is trained from: the agent section with that method's hyperparameters merged in.

    ``method_hyperparams`` itself is left out, so a change for one method leaves every other method's agents (and
    agents trained before the key existed) up to date; so is ``vec_env``, which does not change the agent, and so
    are the ``distill_*`` keys, which only the distilled agents' identity holds (gmc_rl.pipeline), and the
    ``action_fit_*`` keys, which the action-fit stage's identity holds.
    """
    data = to_dict(agent)
    data.pop("method_hyperparams")
    data.pop("vec_env")  # how the envs run changes the speed, not the agent: runs made before the key stay up to date
    data["hyperparams"] = agent.hyperparams_for(method)
    for key in ("distill_from", "distill_rounds", "distill_steps"):
        data.pop(key)  # the pipeline adds them to the identity of the agents it distils only
    for key in ACTION_FIT_KEYS:
        data.pop(key)  # the action fit is a stage of its own after training (gmc_rl.pipeline)
    return data


def config_hash(config: Any) -> str:
    """A short stable hash of a config, used to tell whether an output directory was made with the same one."""
    import hashlib

    text = json.dumps(to_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
