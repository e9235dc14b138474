"""A user's own env written from docs/custom_envs.md (experiments/user_env): a valid env, and the pipeline runs it.

The env module is a user package (``user_env``, in ``experiments/``): as a user puts their project on
``PYTHONPATH``, the tests put ``experiments/`` on ``sys.path`` and name the env in Gymnasium's "module:id" form.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from gmc_rl.config import default_config_path, load_config
from gmc_rl.modalities import modality_specs
from gmc_rl.pipeline import run_pipeline

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
ENV = "user_env.my_sensors:user_env/ReacherSensors-v0"


@pytest.fixture
def user_package(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))


def test_user_env_passes_the_checkers_and_its_observations_match_the_space(user_package):
    env = gym.make(ENV, render_mode="rgb_array")  # "module:id" imports the module, which registers the id
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(gym.make(ENV), warn=False)
    specs = modality_specs(env.observation_space)
    assert {name: (spec.shape, spec.kind) for name, spec in specs.items()} == {
        "camera": ((2, 48, 48), "image"), "ranges": ((2, 2, 3), "vector")}
    unwrapped = env.unwrapped
    assert len(unwrapped.state_names) == unwrapped.state_space.shape[0] == 6
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and unwrapped.state_space.contains(info["state"])
    steps = 0
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert not terminated and -2.03 <= reward <= 0.0
        assert env.observation_space.contains(obs) and unwrapped.state_space.contains(info["state"])
    assert steps == 100
    assert obs["camera"][1].max() == 255 and obs["camera"][0].any()
    assert env.render().shape == (240, 240, 3)


def test_user_env_is_reproducible_from_its_seed(user_package):
    first, second = gym.make(ENV), gym.make(ENV)
    for env in (first, second):
        env.reset(seed=7)
        env.action_space.seed(7)
    for _ in range(20):
        a, b = first.step(first.action_space.sample()), second.step(second.action_space.sample())
        for name in ("camera", "ranges"):
            np.testing.assert_array_equal(a[0][name], b[0][name])
        np.testing.assert_array_equal(a[4]["state"], b[4]["state"])


@pytest.mark.slow
def test_user_env_runs_through_a_tiny_quick_pipeline(user_package, tmp_path):
    config = load_config(default_config_path())  # the embedded quick config, shrunk to seconds
    config.env_id = ENV
    config.collect.steps, config.collect.n_envs = 300, 2
    config.pretrain.epochs, config.pretrain.batch_size = 1, 64
    config.agent.total_timesteps, config.agent.checkpoint_freq, config.agent.eval_freq = 300, 0, 0
    config.agent.hyperparams = {**config.agent.hyperparams, "learning_starts": 100, "batch_size": 32,
                                "buffer_size": 500}
    config.evaluate.episodes, config.evaluate.n_envs = 2, 2
    config.evaluate.diagnostic_episodes, config.evaluate.diagnostic_horizon = 2, 10
    results = run_pipeline(config, tmp_path / "run", progress=False, log=lambda message: None)
    assert results["conditions"] == ["complete", "camera", "ranges", "dropout:0.5"]
    for method in ("gmc", "state"):
        for summary in results["results"][method].values():
            assert summary["episodes"] == 2 and math.isfinite(summary["episode_return"]["mean"])
    for name in ("results.md", "results.json", "results.png"):
        assert (tmp_path / "run" / "eval" / name).is_file()
