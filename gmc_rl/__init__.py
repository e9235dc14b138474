"""gmc-rl: reinforcement-learning agents that keep working when sensors fail.

Public API (imported lazily so that ``import gmc_rl`` stays cheap):

- :func:`gmc_loss` - the GMC contrastive loss for any number of modalities.
- :class:`GMCModel`, :func:`load_gmc` - the model and loading a pretrained checkpoint.
- :func:`make_latent_env` - a multimodal env turned into a latent-state env for SB3.
- :mod:`gmc_rl.methods` - the registry of representation methods (gmc, raw, mvae, state, and registered ones).
- :mod:`gmc_rl.mvae` - the product-of-experts VAE baseline.

Importing ``gmc_rl`` registers the built-in environment ids (``gmc_rl/PendulumSound-v0`` and the others of
:mod:`gmc_rl.envs`) and the latent env id :data:`LATENT_ENV_ID` (``gmc_rl/GMCLatent-v0``, built by
:func:`gmc_rl.wrappers.make_latent_env`) with Gymnasium, the plain way Gymnasium packages do: it imports Gymnasium
and calls ``gymnasium.register`` for each id. The entry points are ``"module:Class"`` strings, so no environment,
torch or OpenCV is imported until ``gymnasium.make``; ``gym.make("gmc_rl:gmc_rl/PendulumSound-v0")`` (Gymnasium's
"module:id" form) works in a fresh process.

Layers, each importing only those below it (docs/architecture.md; checked by ``lint-imports``):
:mod:`gmc_rl.envs` <- the representation core (the other modules of this package) <- :mod:`gmc_rl.agents` <- the
orchestration (:mod:`gmc_rl.pipeline`, :mod:`gmc_rl.stages`, :mod:`gmc_rl.cli`, :mod:`gmc_rl.commands`). The core
knows the environments only through the Gymnasium registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import gymnasium as gym

from gmc_rl.envs.registration import register_envs

__version__ = "0.1.0"

LATENT_ENV_ID = "gmc_rl/GMCLatent-v0"
"""Gymnasium id of :func:`gmc_rl.wrappers.make_latent_env` (a multimodal env seen through a frozen encoder):
``gym.make(LATENT_ENV_ID, env_id=..., checkpoint=..., p=0.3)``; also :data:`gmc_rl.wrappers.LATENT_ENV_ID`."""
_LATENT_ENTRY_POINT = "gmc_rl.wrappers.factory:make_latent_env"

_LAZY = {
    "gmc_loss": "gmc_rl.loss",
    "GMCModel": "gmc_rl.model",
    "load_gmc": "gmc_rl.checkpoint",
    "save_gmc": "gmc_rl.checkpoint",
    "make_latent_env": "gmc_rl.wrappers",
}

__all__ = ["LATENT_ENV_ID", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl' has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------------------
# Registration of the built-in env ids (idempotent: a reload or a second import registers nothing twice).

def _register_latent_env() -> None:
    """Register :data:`LATENT_ENV_ID` (idempotent) so that ``gym.make``, SB3's ``make_vec_env`` and rl-zoo3
    (``--env-kwargs``) build latent envs after a plain ``import gmc_rl``."""
    if LATENT_ENV_ID not in gym.registry:
        gym.register(id=LATENT_ENV_ID, entry_point=_LATENT_ENTRY_POINT, disable_env_checker=True)


register_envs()
_register_latent_env()
