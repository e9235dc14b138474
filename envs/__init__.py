"""Multimodal environments of gmc-rl, registered with Gymnasium on import.

>>> import gymnasium as gym
>>> import envs
>>> env = gym.make("gmc_rl/PendulumSound-v0")

Ids (namespace ``gmc_rl``): see :data:`envs.registration.ENV_SPECS`. Every environment has a ``Dict`` observation
keyed by modality name, a float32 ``state_space`` and ``info["state"]`` (the true state, for diagnostics and
true-state agents), and ``render_mode="rgb_array"``.
"""

from envs.acrobot_sensors import AcrobotSensorsEnv
from envs.cartpole_sensors import CartPoleSensorsEnv
from envs.pendulum_sound import PendulumSoundEnv
from envs.registration import ENV_SPECS, NAMESPACE, register_envs

ENV_IDS: list[str] = register_envs()
"""The registered ids, e.g. ``"gmc_rl/PendulumSound-v0"``."""

__all__ = [
    "ENV_IDS",
    "ENV_SPECS",
    "NAMESPACE",
    "AcrobotSensorsEnv",
    "CartPoleSensorsEnv",
    "PendulumSoundEnv",
    "register_envs",
]
