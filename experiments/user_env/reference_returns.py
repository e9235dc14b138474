"""Reference episode returns of ``user_env/ReacherSensors-v0`` without learning: a random policy and a hand-written
controller that reads the true state (a task-space PD law through the arm's Jacobian), 50 episodes each.

    PYTHONPATH=experiments python experiments/user_env/reference_returns.py

They bracket the learned agents' returns: the random policy is what "no control" scores, the hand-written law what
simple control of the true state scores.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from user_env.my_sensors import ENV_ID, LINK_1, LINK_2, MAX_TORQUE, TARGET


def hand_controller(env: gym.Env) -> np.ndarray:
    """Torques ``J^T (8 (target - tip) - 2.5 tip_velocity)`` plus a little joint damping, clipped to [-1, 1]."""
    arm: Any = env.unwrapped  # the ReacherArm under the wrappers
    q1, q2, w1, w2 = (float(v) for v in arm.state)
    _, _, tip, tip_velocity = arm.kinematics()
    s1, c1, s12, c12 = math.sin(q1), math.cos(q1), math.sin(q1 + q2), math.cos(q1 + q2)
    jacobian = np.array([[-LINK_1 * s1 - LINK_2 * s12, -LINK_2 * s12], [LINK_1 * c1 + LINK_2 * c12, LINK_2 * c12]])
    force = 8.0 * (np.array(TARGET) - np.array(tip)) - 2.5 * np.array(tip_velocity)
    torque = jacobian.T @ force / MAX_TORQUE - 0.1 * np.array([w1, w2])
    return np.clip(torque, -1.0, 1.0).astype(np.float32)


def episode_returns(policy: str, episodes: int = 50) -> np.ndarray:
    env = gym.make(ENV_ID)
    env.action_space.seed(0)
    returns = []
    for seed in range(episodes):
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action = env.action_space.sample() if policy == "random" else hand_controller(env)
            _, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.array(returns)


if __name__ == "__main__":
    for name in ("random", "hand"):
        values = episode_returns(name)
        print(f"{name}: mean episode return {values.mean():.1f} (std {values.std():.1f}, 50 episodes, seeds 0-49)")
