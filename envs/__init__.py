"""Multimodal environments of gmc-rl (installed as ``gmc_rl.envs``), registered with Gymnasium.

``import gmc_rl`` registers the ids (as soon as Gymnasium is imported, see :mod:`gmc_rl`), and so does importing
this package; the environment classes load only when an env is made or a class is asked for.

>>> import gymnasium as gym
>>> import gmc_rl
>>> env = gym.make("gmc_rl/PendulumSound-v0")
>>> gym.make("gmc_rl:gmc_rl/PendulumSound-v0").spec.id  # Gymnasium's "module:id" form imports gmc_rl itself
'gmc_rl/PendulumSound-v0'

Ids (namespace ``gmc_rl``): see :data:`gmc_rl.envs.registration.ENV_SPECS`. Every environment has a ``Dict``
observation keyed by modality name, a float32 ``state_space`` and ``info["state"]`` (the true state, for diagnostics
and true-state agents), and ``render_mode="rgb_array"``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from gmc_rl.envs.registration import ENV_SPECS, NAMESPACE, register_envs

ENV_IDS: list[str] = register_envs()
"""The registered ids, e.g. ``"gmc_rl/PendulumSound-v0"``."""

_LAZY = {
    "AcrobotSensorsEnv": "gmc_rl.envs.acrobot_sensors",
    "CartPoleSensorsEnv": "gmc_rl.envs.cartpole_sensors",
    "PendulumSoundEnv": "gmc_rl.envs.pendulum_sound",
}

__all__ = ["ENV_IDS", "ENV_SPECS", "NAMESPACE", *_LAZY, "register_envs"]


def __getattr__(name: str) -> Any:
    """The environment classes, imported on first use (they pull in OpenCV and the physics)."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl.envs' has no attribute {name!r}")
