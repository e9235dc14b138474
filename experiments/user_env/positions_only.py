"""Does control of ``user_env/ReacherSensors-v0`` need the joint velocities? SAC on the true configuration only.

    PYTHONPATH=experiments python experiments/user_env/positions_only.py [--steps 12000] [--seed 0]

Trains SAC with the embedded quick config's settings (12,000 steps, learning rate 1e-3, batch 128, buffer 20,000,
1,000 random steps first, gamma 0.99, 256x256) on ``info["state"]`` with the two velocities left out
(``cos q1, sin q1, cos q2, sin q2``), then prints the mean episode return of 50 deterministic episodes (seeds
0-49). ``--with-velocities`` keeps all six entries (the pipeline's true-state agent, under this script's protocol).
"""

from __future__ import annotations

import argparse
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3 import SAC
from user_env.my_sensors import ENV_ID


class ConfigurationOnly(gym.ObservationWrapper):
    """Observation: the first ``size`` entries of ``info["state"]`` (4: the configuration, no velocities)."""

    def __init__(self, env: gym.Env, size: int = 4) -> None:
        super().__init__(env)
        arm: Any = env.unwrapped  # the user's env declares its state_space
        state_space: spaces.Box = arm.state_space
        self.size = size
        self.observation_space = spaces.Box(state_space.low[:size], state_space.high[:size], dtype=np.float32)

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        return info["state"][: self.size], info

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        return info["state"][: self.size], reward, terminated, truncated, info

    def observation(self, observation):  # unused: reset and step read info["state"]
        raise NotImplementedError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with-velocities", action="store_true", help="observe the whole state (6 entries)")
    args = parser.parse_args()
    env = ConfigurationOnly(gym.make(ENV_ID), 6 if args.with_velocities else 4)
    model = SAC("MlpPolicy", env, learning_rate=1e-3, batch_size=128, buffer_size=20000, learning_starts=1000,
                gamma=0.99, policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, device="cpu")
    model.learn(args.steps)
    returns = []
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    what = "the whole state" if args.with_velocities else "the configuration only"
    print(f"SAC on {what}, {args.steps} steps, seed {args.seed}: mean episode return "
          f"{np.mean(returns):.1f} (std {np.std(returns):.1f}, 50 episodes, seeds 0-49)")


if __name__ == "__main__":
    main()
