"""SB3 agents trained on complete observations, and the baselines they are compared with, in one harness.

This package is the training layer: it sits on the representation core (:mod:`gmc_rl`: data, models, encoders,
wrappers and the method registry :mod:`gmc_rl.methods`) and under the orchestration (``gmc_rl.pipeline``,
``gmc-rl`` commands). A method ("gmc", "raw", "mvae", "state" or a registered one) is looked up in the registry;
nothing here switches on its name.

- :func:`build_algorithm` - an SB3 algorithm (sac, td3, ddpg, ppo, a2c, dqn) from rl-zoo3-style hyperparameters.
- :func:`train_agent` - train one method and seed into a self-contained agent dir (its encoder copied in).
- :func:`load_agent` / :class:`Agent` - reload it, and build its envs under any sensor condition.
- :func:`make_method_vec_env` - the env stack a method's policy observes, under a sensor condition.

Submodules are imported on first use, so ``import gmc_rl.agents`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "build_algorithm": "gmc_rl.agents.registry",
    "ALGORITHMS": "gmc_rl.agents.registry",
    "train_agent": "gmc_rl.agents.training",
    "load_agent": "gmc_rl.agents.loading",
    "Agent": "gmc_rl.agents.loading",
    "make_method_vec_env": "gmc_rl.agents.observations",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl.agents' has no attribute {name!r}")
