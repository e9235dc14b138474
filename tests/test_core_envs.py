"""Tiny deterministic Dict-observation envs for the core tests (no dependency on envs/), and their API check."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class TinyDictEnv(gym.Env):
    """A 1-D point moved by a Box action, observed as a small image and a vector.

    The vector is ``[position, velocity, step counter]`` so tests can check which row follows which. The episode
    terminates when the point leaves [-1, 1]; a TimeLimit truncates it otherwise.
    """

    metadata = {"render_modes": []}

    def __init__(self, size: int = 8, three: bool = False) -> None:
        entries = {
            "image": spaces.Box(0, 255, (1, size, size), np.uint8),
            "vec": spaces.Box(-50.0, 50.0, (3,), np.float32),
        }
        if three:
            entries["extra"] = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.size = size
        self.three = three

    def _obs(self):
        image = np.zeros((1, self.size, self.size), np.uint8)
        column = int(np.clip((self.pos + 1) / 2 * (self.size - 1), 0, self.size - 1))
        image[0, :, column] = 255
        obs = {"image": image, "vec": np.array([self.pos, self.vel, self.t], np.float32)}
        if self.three:
            obs["extra"] = np.array([np.sin(3 * self.pos), np.cos(3 * self.pos)], np.float32)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = float(self.np_random.uniform(-0.5, 0.5))
        self.vel = 0.0
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.vel = 0.8 * self.vel + 0.1 * float(np.asarray(action).reshape(-1)[0])
        self.pos += self.vel
        self.t += 1
        terminated = abs(self.pos) > 1.0
        return self._obs(), -abs(self.pos), terminated, False, {}


TINY_ID = "test_core/TinyDict-v0"
TINY3_ID = "test_core/TinyDict3-v0"


def register() -> None:
    if TINY_ID not in gym.registry:
        gym.register(TINY_ID, entry_point=TinyDictEnv, max_episode_steps=7)
    if TINY3_ID not in gym.registry:
        gym.register(TINY3_ID, entry_point=TinyDictEnv, max_episode_steps=9, kwargs={"three": True})


register()


def test_tiny_envs_follow_the_gymnasium_api():
    from gymnasium.utils.env_checker import check_env

    for env_id in (TINY_ID, TINY3_ID):
        env = gym.make(env_id)
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=1)
        assert env.observation_space.contains(obs)
