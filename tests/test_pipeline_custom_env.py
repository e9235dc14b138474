"""The worked example of a user's own 3-modality env (experiments/custom_env_example) runs through the pipeline."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

from gmc_rl.config import load_config
from gmc_rl.modalities import modality_specs
from gmc_rl.pipeline import run_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "custom_env_example"


def test_example_env_is_a_valid_multimodal_env():
    config = load_config(EXAMPLE / "config.yaml")
    env = gym.make(config.env_id, render_mode="rgb_array", **config.env_kwargs)  # "module:id" imports the module
    check_env(env.unwrapped, skip_render_check=False)
    specs = modality_specs(env.observation_space)
    assert list(specs) == ["beacons", "camera", "gps"]
    assert specs["camera"].kind == "image"
    _, info = env.reset(seed=0)
    assert env.unwrapped.state_space.contains(info["state"])
    assert env.render().shape == (200, 200, 3)


def test_example_config_runs_through_the_pipeline(tmp_path):
    config = load_config(EXAMPLE / "config.yaml")
    # The example's own sizes take minutes; shrink every stage to seconds, keeping its env and conditions.
    config.env_kwargs = {**config.env_kwargs, "max_episode_steps": 30}
    config.methods = ["gmc", "state"]
    config.collect.steps, config.collect.n_envs = 400, 2
    config.pretrain.epochs, config.pretrain.batch_size = 1, 64
    config.agent.total_timesteps, config.agent.checkpoint_freq = 150, 0
    config.agent.hyperparams = {**config.agent.hyperparams, "learning_starts": 100, "batch_size": 32,
                                "buffer_size": 500}
    config.evaluate.episodes, config.evaluate.n_envs = 2, 2
    results = run_pipeline(config, tmp_path / "run", progress=False, log=lambda message: None)
    assert results["conditions"] == ["complete", "beacons", "camera", "gps", "beacons+camera", "beacons+gps",
                                     "camera+gps", "dropout:0.5", "noise:gps:0.5"]
    for method in ("gmc", "state"):
        for summary in results["results"][method].values():
            assert math.isfinite(summary["per_step_reward"]["mean"]) and summary["episodes"] == 2
