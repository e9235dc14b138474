"""SB3 agents trained on complete observations, and the baselines they are compared with, in one harness.

- :func:`build_algorithm` - an SB3 algorithm (sac, td3, ddpg, ppo, a2c, dqn) from rl-zoo3-style hyperparameters.
- :func:`train_agent` - train one method ("gmc", "raw", "mvae", "state") and seed into a self-contained agent dir.
- :func:`load_agent` / :class:`Agent` - reload it, and build its envs under any sensor condition.
- :mod:`agents.mvae` - the product-of-experts VAE baseline (``pretrain_mvae``, ``load_mvae``, latent wrappers).

Submodules are imported on first use, so ``import agents`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "build_algorithm": "agents.registry",
    "ALGORITHMS": "agents.registry",
    "train_agent": "agents.training",
    "load_agent": "agents.loading",
    "Agent": "agents.loading",
    "METHODS": "agents.observations",
    "StateObservation": "agents.observations",
    "make_method_vec_env": "agents.observations",
    "pretrain_mvae": "agents.mvae",
    "load_mvae": "agents.mvae",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
