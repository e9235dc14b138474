"""The small multimodal env of the wrapper tests (``helpers.ToyEnv``: fast, deterministic) is a valid env."""

from __future__ import annotations

import numpy as np
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import ToyEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env


def test_toy_env_is_a_valid_env():
    gym_check_env(ToyEnv(joints=True), skip_render_check=True)
    sb3_check_env(ToyEnv(), warn=False)


def test_toy_env_observations_change_with_steps():
    env = ToyEnv()
    first, _ = env.reset(seed=0)
    second, *_ = env.step(np.array([0.5], dtype=np.float32))
    assert not np.array_equal(first["image"], second["image"])
    assert not np.allclose(first["sound"], second["sound"])
