"""gmc-rl: reinforcement-learning agents that keep working when sensors fail.

Public API (imported lazily so that ``import gmc_rl`` stays cheap):

- :func:`gmc_loss` - the GMC contrastive loss for any number of modalities.
- :class:`GMCModel`, :func:`load_gmc` - the model and loading a pretrained checkpoint.
- :func:`make_latent_env` - a multimodal env turned into a latent-state env for SB3.
- :mod:`gmc_rl.methods` - the registry of representation methods (gmc, raw, mvae, state, and registered ones).
- :mod:`gmc_rl.mvae` - the product-of-experts VAE baseline.

This package is the representation core; it does not import the training layer (:mod:`agents`), except in the
orchestration modules on top of both (:mod:`gmc_rl.pipeline`, :mod:`gmc_rl.stages`, :mod:`gmc_rl.cli`,
:mod:`gmc_rl.commands`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "gmc_loss": "gmc_rl.loss",
    "GMCModel": "gmc_rl.model",
    "load_gmc": "gmc_rl.checkpoint",
    "save_gmc": "gmc_rl.checkpoint",
    "make_latent_env": "gmc_rl.wrappers",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl' has no attribute {name!r}")
