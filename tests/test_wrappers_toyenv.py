"""A small multimodal env for the wrapper tests (fast, deterministic), and checks that it is a valid env.

``ToyEnv`` has an 8x8 two-frame image, a 3-value "sound" in [-1, 1] and optionally a 2-value "joints" vector; its
observations are a function of a hidden state that the action moves, so different steps give different values.
``nan_at`` makes a modality emit NaN at chosen steps (a broken sensor).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env


class ToyEnv(gym.Env):
    """Deterministic given the reset seed; 40-step episodes (truncated)."""

    metadata = {"render_modes": []}

    def __init__(self, joints: bool = False, nan_at: dict[int, str] | None = None, horizon: int = 40) -> None:
        entries: dict[str, spaces.Space] = {
            "image": spaces.Box(0, 255, (2, 8, 8), np.uint8),
            "sound": spaces.Box(-1.0, 1.0, (3,), np.float32),
        }
        if joints:
            entries["joints"] = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.state_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.nan_at = dict(nan_at or {})
        self.horizon = horizon
        self._state = np.zeros(2)
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        a, b = self._state
        grid = np.add.outer(np.arange(8), np.arange(8)) * (1.0 + abs(a))
        frame = ((grid * 13 + 40 * b) % 256).astype(np.uint8)
        obs = {
            "image": np.stack([frame, frame[::-1]]),
            "sound": np.clip(np.sin(np.array([a, b, a + b])), -1, 1).astype(np.float32),
        }
        if "joints" in self.observation_space.spaces:
            obs["joints"] = np.array([a * 3.0, b - 1.0], dtype=np.float32)
        if self._t in self.nan_at:
            name = self.nan_at[self._t]
            obs[name] = np.full_like(obs[name], np.nan)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._state = self.np_random.uniform(-1, 1, 2)
        self._t = 0
        return self._obs(), {"state": self._state.astype(np.float32)}

    def step(self, action):
        self._t += 1
        self._state = self._state + np.array([0.1 * float(np.asarray(action).ravel()[0]), 0.05 + 0.02 * self._state[0]])
        reward = -float(np.sum(self._state**2))
        return self._obs(), reward, False, self._t >= self.horizon, {"state": self._state.astype(np.float32)}


def test_toy_env_is_a_valid_env():
    gym_check_env(ToyEnv(joints=True), skip_render_check=True)
    sb3_check_env(ToyEnv(), warn=False)


def test_toy_env_observations_change_with_steps():
    env = ToyEnv()
    first, _ = env.reset(seed=0)
    second, *_ = env.step(np.array([0.5], dtype=np.float32))
    assert not np.array_equal(first["image"], second["image"])
    assert not np.allclose(first["sound"], second["sound"])
