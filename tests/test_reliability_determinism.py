"""Determinism on CPU: the same seed and config give byte-identical datasets, identical pretraining loss curves and
weights, identical agents and identical evaluation numbers; a different seed gives different ones (so the
comparisons can fail). What is and is not deterministic on GPU is documented in docs/reliability.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import same_tensors

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.collect import collect
from gmc_rl.config import AgentConfig, CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE
from gmc_rl.pretrain import pretrain

ENV_ID = "gmc_rl/PendulumSound-v0"
TIMING_KEYS = ("train_seconds", "perf/samples_per_s")


def config(collect_seed: int = 7, pretrain_seed: int = 0) -> ExperimentConfig:
    return ExperimentConfig(
        env_id=ENV_ID,
        collect=CollectConfig(steps=192, n_envs=2, val_fraction=0.25, seed=collect_seed),
        pretrain=PretrainConfig(epochs=3, batch_size=16, checkpoint_every=1, device="cpu", seed=pretrain_seed,
                                model=ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4, 8],
                                                  mlp_hidden=[8])),
    )


def files(directory: Path) -> dict[str, bytes]:
    """The files of ``directory`` but its lock and lock holder (who held it, and when)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())
            if p.is_file() and p.name not in (LOCK_FILE, HOLDER_FILE)}


def losses(run: Path) -> list[dict]:
    history = json.loads((run / "history.json").read_text())
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in history]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("determinism")


@pytest.fixture(scope="module")
def datasets(workdir) -> dict[str, Path]:
    return {
        "a": collect(config(), workdir / "data_a", progress=False),
        "b": collect(config(), workdir / "data_b", progress=False),
        "other_seed": collect(config(collect_seed=8), workdir / "data_c", progress=False),
    }


def test_same_seed_gives_byte_identical_dataset_files(datasets):
    a, b = files(datasets["a"]), files(datasets["b"])
    assert sorted(a) == ["metadata.json", "train.npz", "val.npz"]
    assert a == b
    other = files(datasets["other_seed"])
    assert other["train.npz"] != a["train.npz"] and other["val.npz"] != a["val.npz"]


def test_same_seed_gives_identical_pretraining_loss_curve_and_weights(datasets, workdir):
    runs = [pretrain(config(), datasets["a"], workdir / f"gmc_{i}", progress=False) for i in range(2)]
    first, second = losses(runs[0]), losses(runs[1])
    assert [row["epoch"] for row in first] == [1, 2, 3]
    assert first == second  # every loss, per-modality loss and alignment metric, exactly
    for name in ("model.safetensors", "last/model.safetensors"):
        assert same_tensors(runs[0] / name, runs[1] / name), name
    other = pretrain(config(pretrain_seed=1), datasets["a"], workdir / "gmc_seed1", progress=False)
    assert losses(other)[0]["loss/train_total"] != first[0]["loss/train_total"]


def test_same_seed_gives_identical_agent_and_evaluation(workdir):
    from gmc_rl.agents import load_agent, train_agent
    from gmc_rl.evaluate import evaluate_conditions, sb3_predictor

    def train(seed: int, name: str):
        agent_config = ExperimentConfig(env_id=ENV_ID, agent=AgentConfig(
            algo="sac", total_timesteps=120, eval_freq=0, checkpoint_freq=0, device="cpu",
            hyperparams={"learning_starts": 60, "batch_size": 16, "buffer_size": 500,
                         "policy_kwargs": {"net_arch": [16]}}))
        return load_agent(train_agent(agent_config, "state", seed, workdir / name, progress_bar=False))

    def evaluate(agent) -> dict:
        return evaluate_conditions(agent.make_vec_env, sb3_predictor(agent.model), ["complete", "dropout:0.3"],
                                   episodes=1, seeds=[3], n_envs=1, progress=False)

    first, second, other = train(0, "agent_a"), train(0, "agent_b"), train(1, "agent_c")
    weights = [agent.model.policy.state_dict() for agent in (first, second, other)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert not all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])
    assert json.dumps(evaluate(first), sort_keys=True) == json.dumps(evaluate(second), sort_keys=True)
