"""Focused starts of data collection (collect.focus_*): a share of the envs starts where the reset options say and
runs short episodes, so the dataset covers states a controller visits that a random policy rarely reaches."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from gmc_rl.collect import ResetOptions, collect, collection_env_fns, focused_env_count
from gmc_rl.config import CollectConfig, ExperimentConfig, collect_identity, config_hash
from gmc_rl.data import load_dataset
from gmc_rl.errors import ConfigError

FOCUS = {"focus_fraction": 0.5, "focus_reset_options": {"x_init": 0.2, "y_init": 0.5}, "focus_episode_steps": 10}


def config(steps: int = 800, **collect_settings) -> ExperimentConfig:
    return ExperimentConfig(env_id="gmc_rl/PendulumSound-v0",
                            collect=CollectConfig(steps=steps, n_envs=4, **collect_settings))


def test_focused_env_count():
    assert focused_env_count(CollectConfig(), 8) == 0
    assert focused_env_count(CollectConfig(focus_fraction=0.5), 8) == 4
    assert focused_env_count(CollectConfig(focus_fraction=0.01), 8) == 1  # a positive share gets one env
    assert focused_env_count(CollectConfig(focus_fraction=0.99), 8) == 7  # one env keeps the plain starts
    assert focused_env_count(CollectConfig(focus_fraction=0.5), 1) == 0


def test_reset_options_hold_for_automatic_resets():
    env = ResetOptions(gym.make("Pendulum-v1", max_episode_steps=3), {"x_init": 0.05, "y_init": 0.0})
    venv = DummyVecEnv([lambda: env])
    venv.seed(0)
    venv.reset()
    starts = []
    for _ in range(9):  # three episodes; the VecEnv resets without options after each
        obs, _, dones, infos = venv.step(np.zeros((1, 1), np.float32))
        if dones[0]:
            starts.append(obs[0])  # the first observation of the next episode
    assert len(starts) == 3
    for cos_theta, _, theta_dot in starts:
        assert cos_theta > np.cos(0.05) - 1e-6 and theta_dot == 0.0


def test_focused_envs_start_near_upright_and_stop_early():
    fns = collection_env_fns(config(**FOCUS), 4)
    focused, plain = fns[0](), fns[3]()
    for env, limit in ((focused, 10), (plain, 300)):
        _, info = env.reset(seed=1)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
            steps, done = steps + 1, terminated or truncated
        assert steps == limit
    angles = [abs(fns[1]().reset(seed=s)[1]["angle"]) for s in range(20)]
    assert max(angles) <= 0.2 + 1e-6


def test_collected_dataset_records_the_focused_envs(tmp_path):
    out = collect(config(**FOCUS), tmp_path / "data", progress=False)
    dataset = load_dataset(out)
    assert dataset.metadata["focused_envs"] == 2
    done = np.concatenate([dataset.train["truncated"] | dataset.train["terminated"]])
    # Two of four envs end an episode every 10 steps (200 rows each): about 40 episode ends instead of ~4.
    assert done.sum() >= 30
    plain = collect(config(), tmp_path / "plain", progress=False)
    assert load_dataset(plain).metadata["focused_envs"] == 0


def test_invalid_focus_settings_are_refused():
    with pytest.raises(ConfigError, match="collect.focus_fraction"):
        CollectConfig(focus_fraction=1.0)
    with pytest.raises(ConfigError, match="collect.focus_episode_steps"):
        CollectConfig(focus_episode_steps=-1)
    with pytest.raises(ConfigError, match="collect.focus_reset_options"):
        CollectConfig(focus_reset_options=[0.3])


def test_reset_options_the_env_rejects_are_named(tmp_path):
    bad = config(focus_fraction=0.5, focus_reset_options={"x_init": "upright"})
    with pytest.raises(ConfigError, match="focus_reset_options"):
        collect(bad, tmp_path / "data", progress=False)


def test_identity_without_focus_is_unchanged():
    """Datasets and pipeline runs made before the focus keys existed keep their identity while focus is off."""
    identity = collect_identity(CollectConfig())
    assert not any(key.startswith("focus") for key in identity)
    assert config_hash(identity) == config_hash({"steps": 20000, "val_fraction": 0.1, "n_envs": 8,
                                                 "policy": "random", "seed": 0})
    assert "focus_reset_options" in collect_identity(CollectConfig(**FOCUS))
