"""docs/sharing.md: another logger through the callbacks hook, and an agent shared as an archive of its three parts."""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from gmc_rl.checkpoint import save_gmc
from gmc_rl.cli import main
from gmc_rl.config import ExperimentConfig, ModelConfig, from_dict
from gmc_rl.model import GMCModel

DOC = Path(__file__).resolve().parents[1] / "docs" / "sharing.md"
CARTPOLE = "gmc_rl/CartPoleSensors-v0"


def episode_logger_class() -> type:
    """The ``EpisodeLogger`` of docs/sharing.md, executed from the doc's code block."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "class EpisodeLogger" in b)
    namespace: dict = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    return namespace["EpisodeLogger"]


@pytest.fixture(scope="module")
def logged_agent(tmp_path_factory) -> tuple[Path, list]:
    """A small PPO agent on the GMC latent of CartPoleSensors (untrained encoder), trained with the doc's logger."""
    import gmc_rl  # noqa: F401  (registers the ids)
    from gmc_rl.agents import train_agent

    root = tmp_path_factory.mktemp("share")
    torch.manual_seed(0)
    model = GMCModel.from_space(gym.make(CARTPOLE).observation_space,
                                ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4],
                                            mlp_hidden=[8]))
    encoder = save_gmc(model, root / "gmc", {"env_id": CARTPOLE})
    config = from_dict(ExperimentConfig, {
        "env_id": CARTPOLE, "agent": {"algo": "ppo", "total_timesteps": 256, "eval_freq": 0, "checkpoint_freq": 128,
                                      "hyperparams": {"n_steps": 128, "batch_size": 64}}})
    logged: list = []
    logger = episode_logger_class()(lambda name, value, step: logged.append((name, value, step)))
    path = train_agent(config, "gmc", 0, root / "agent", encoder_dir=encoder, progress_bar=False,
                       callbacks=[logger])
    return path, logged


def test_the_docs_callback_logs_every_training_episode(logged_agent):
    _, logged = logged_agent
    returns = [(value, step) for name, value, step in logged if name == "episode/return"]
    lengths = [value for name, value, _ in logged if name == "episode/length"]
    assert len(returns) == len(lengths) >= 3  # CartPole episodes of a barely trained policy are short
    assert all(value == length for (value, _), length in zip(returns, lengths))  # +1 per step until the pole falls
    steps = [step for _, step in returns]
    assert steps == sorted(steps) and 0 < steps[-1] <= 256


def test_an_agent_archived_without_its_other_folders_loads_and_acts_the_same(logged_agent, tmp_path, capsys):
    from gmc_rl.agents import load_agent

    original, _ = logged_agent
    assert {p.name for p in original.iterdir()} >= {"agent.json", "agent.zip", "encoder", "checkpoints", "tb"}
    archive = tmp_path / "agent.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # the three parts the doc names, under the agent's folder name
        for name in ("agent.json", "agent.zip", "encoder"):
            tar.add(original / name, arcname=f"shared-agent/{name}")
    elsewhere = tmp_path / "elsewhere"
    with tarfile.open(archive) as tar:
        tar.extractall(elsewhere, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    shared = elsewhere / "shared-agent"
    assert sorted(p.name for p in shared.iterdir()) == ["agent.json", "agent.zip", "encoder"]

    a, b = load_agent(original), load_agent(shared)
    env = b.make_vec_env("image", n_envs=2, seed=5)
    obs = env.reset()
    for _ in range(30):
        actions = b.predict(obs)
        np.testing.assert_array_equal(actions, a.predict(obs))
        obs, _, _, _ = env.step(actions)
    shutil.rmtree(original.parent / "gmc")  # the encoder it was trained from is not needed: the agent carries it
    assert main(["evaluate", "--agent", str(shared), "--episodes", "1", "--n-envs", "1", "--no-progress",
                 "--conditions", "complete", "joints"]) == 0
    assert (shared / "robustness" / "results.json").is_file()
