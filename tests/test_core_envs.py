"""The tiny deterministic Dict-observation envs of the core tests (``helpers.TinyDictEnv``, no dependency on
envs/) follow the Gymnasium API."""

from __future__ import annotations

import gymnasium as gym
from helpers import TINY3_ID, TINY_ID


def test_tiny_envs_follow_the_gymnasium_api():
    from gymnasium.utils.env_checker import check_env

    for env_id in (TINY_ID, TINY3_ID):
        env = gym.make(env_id)
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=1)
        assert env.observation_space.contains(obs)
