"""Wrappers that turn a multimodal env into what an agent sees: sensors dropped or corrupted, GMC latents, the state.

- :class:`ModalityDropout` - drop modalities (fixed set, or at random per episode / per step) with an
  availability mask.
- :class:`GaussianNoise`, :class:`SaltPepperNoise`, :class:`StuckSensor` - corrupt sensors.
- :class:`NonFiniteGuard` - NaN/inf sensor values: clear error, or drop the modality for that step.
- :class:`StateObservation` - the true state (``info["state"]``) as the observation (the ``state`` method).
- :class:`GMCLatent`, :class:`VecGMCLatent` - a frozen GMC encoder as a Gymnasium / SB3 VecEnv wrapper.
- :func:`make_latent_env` - the whole stack from an env id and a checkpoint (also a Gymnasium entry point);
  :func:`make_sensor_env` - the same without the encoder (the per-env part of a latent vector env).
- :mod:`gmc_rl.wrappers.conditions` - evaluation condition strings ("image", "dropout:0.3", ...).

The latent wrappers need torch and the GMC model; they are imported on first use so that the sensor wrappers stay
light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from gmc_rl import LATENT_ENV_ID as _ROOT_LATENT_ENV_ID
from gmc_rl import _register_latent_env
from gmc_rl.wrappers.conditions import Condition, all_subset_conditions, apply_condition, parse_condition
from gmc_rl.wrappers.corruption import GaussianNoise, SaltPepperNoise, StuckSensor
from gmc_rl.wrappers.dropout import ModalityDropout
from gmc_rl.wrappers.nonfinite import NonFiniteGuard
from gmc_rl.wrappers.state import StateObservation

_LAZY = {
    "GMCLatent": "gmc_rl.wrappers.latent",
    "VecGMCLatent": "gmc_rl.wrappers.vec_latent",
    "make_latent_env": "gmc_rl.wrappers.factory",
    "make_sensor_env": "gmc_rl.wrappers.factory",
}

LATENT_ENV_ID = _ROOT_LATENT_ENV_ID
"""Gymnasium id of :func:`make_latent_env` (registered by ``import gmc_rl``):
``gym.make(LATENT_ENV_ID, env_id=..., checkpoint=..., p=0.3)``.

It takes ``render_mode`` like any Gymnasium id (SB3's ``make_vec_env`` passes ``"rgb_array"`` by default) and hands
it to the underlying env, whose frames ``render()`` returns."""

__all__ = [
    "LATENT_ENV_ID",
    "Condition",
    "GaussianNoise",
    "ModalityDropout",
    "NonFiniteGuard",
    "SaltPepperNoise",
    "StateObservation",
    "StuckSensor",
    "all_subset_conditions",
    "apply_condition",
    "parse_condition",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl.wrappers' has no attribute {name!r}")


_register_latent_env()  # registered by ``import gmc_rl`` already; again in case the registry entry was removed
