"""Registration of the gmc_rl environment ids with Gymnasium.

``import gmc_rl`` imports Gymnasium and calls :func:`register_envs`, and so does importing :mod:`gmc_rl.envs`
(which imports ``gmc_rl`` first); after either, ``gymnasium.make("gmc_rl/PendulumSound-v0")`` works. Without any
import, the id ``"gmc_rl:gmc_rl/PendulumSound-v0"`` makes Gymnasium import the package itself (Gymnasium's
``"module:id"`` form); use that form where the importing code is not yours, e.g. in the worker processes of an
SB3 ``SubprocVecEnv`` built from an id string. (Gymnasium 1.x no longer loads environment plugins from package
entry points, so an installed package cannot register ids before it is imported.)

This module imports nothing but Gymnasium, and that only when :func:`register_envs` runs; the entry points are
strings, so an environment's module loads only when the env is made.
"""

from __future__ import annotations

NAMESPACE = "gmc_rl"

ENV_SPECS: dict[str, dict] = {
    f"{NAMESPACE}/PendulumSound-v0": {
        "entry_point": "gmc_rl.envs.pendulum_sound:PendulumSoundEnv",
        "max_episode_steps": 300,
    },
    f"{NAMESPACE}/CartPoleSensors-v0": {
        "entry_point": "gmc_rl.envs.cartpole_sensors:CartPoleSensorsEnv",
        "max_episode_steps": 500,
        "reward_threshold": 475.0,
    },
    f"{NAMESPACE}/AcrobotSensors-v0": {
        "entry_point": "gmc_rl.envs.acrobot_sensors:AcrobotSensorsEnv",
        "max_episode_steps": 500,
        "reward_threshold": -100.0,
    },
}
"""Every id this package registers, with its ``gymnasium.register`` arguments."""


def register_envs() -> list[str]:
    """Register every id of :data:`ENV_SPECS` that is not registered yet (idempotent); return all the ids."""
    import gymnasium as gym

    for env_id, kwargs in ENV_SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **kwargs)
    return list(ENV_SPECS)
