"""Kill-and-resume: a run killed with SIGKILL mid-way resumes from its last checkpoint, not from zero.

Each test starts a real ``gmc-rl`` command in a subprocess (small sizes), waits until its first checkpoints exist,
kills it with SIGKILL (no cleanup handler runs), then continues the run with ``--resume`` / ``resume=True`` and
checks that (a) every file is valid, (b) progress continued from the checkpoint (the epoch / num_timesteps at the
restart is the checkpoint's, and what was done before the kill is kept as it was), and (c) for pretraining, the
resumed run computes exactly what an uninterrupted run computes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from helpers import same_tensors
from stable_baselines3.common.callbacks import BaseCallback

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.checkpoint import load_gmc, load_training_state, save_gmc
from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, from_dict
from gmc_rl.model import GMCModel

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "gmc_rl/PendulumSound-v0"
MODEL_FLAGS = ["--latent-dim", "4", "--common-dim", "8", "--head-hidden", "8", "--conv-channels", "4", "8",
               "--mlp-hidden", "8"]
LAUNCHER = "import sys, torch; torch.set_num_threads(1); from gmc_rl.cli import main; sys.exit(main(sys.argv[1:]))"
TIMING_KEYS = ("train_seconds", "perf/samples_per_s")


def start(args: list[str]) -> subprocess.Popen:
    """``gmc-rl ARGS`` in a subprocess (single-threaded torch, like the tests)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 240.0) -> None:
    """Wait until ``ready()`` (polling), then SIGKILL ``process``; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"the run ended (code {process.returncode}) before it could be killed: "
                            f"{process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {timeout} s")
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in history]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    config = ExperimentConfig(env_id=ENV_ID, collect=CollectConfig(steps=192, n_envs=2, val_fraction=0.25, seed=7))
    return collect(config, tmp_path_factory.mktemp("kill") / "data", progress=False)


def test_pretraining_killed_mid_run_resumes_from_its_checkpoint(dataset, tmp_path):
    out = tmp_path / "gmc"
    common = ["pretrain", "--data", str(dataset), "--out", str(out), "--batch-size", "16", "--checkpoint-every", "1",
              "--device", "cpu", "--quiet", *MODEL_FLAGS]
    state_file = out / "last" / "trainer_state.pt"

    def two_epochs_checkpointed() -> bool:
        if not state_file.is_file():
            return False
        history = out / "history.json"
        return history.is_file() and '"epoch": 2' in history.read_text()

    kill_when(start([*common, "--epochs", "500"]), two_epochs_checkpointed)

    state = load_training_state(out / "last")  # the kill left a loadable state (atomic writes)
    done = int(state["epoch"])
    assert 1 <= done < 500
    before = list(state["history"])
    assert [row["epoch"] for row in before] == list(range(1, done + 1))

    assert main([*common, "--epochs", str(done + 2), "--resume"]) == 0

    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, done + 3))
    assert history[:done] == before  # kept as written before the kill (timings included): not recomputed
    assert int(load_training_state(out / "last")["epoch"]) == done + 2
    best, last = load_gmc(out), load_gmc(out / "last")
    assert last.provenance["epoch"] == done + 2 and 1 <= best.provenance["epoch"] <= done + 2

    # An uninterrupted run with the same settings computes exactly the same numbers.
    reference = tmp_path / "reference"
    assert main([*common[:4], str(reference), *common[5:], "--epochs", str(done + 2)]) == 0
    assert without_timings(json.loads((reference / "history.json").read_text())) == without_timings(history)
    assert same_tensors(reference / "model.safetensors", out / "model.safetensors")


def test_pretraining_killed_between_the_weights_and_the_config_of_its_best_model(tmp_path, monkeypatch):
    """The one non-atomic moment of a checkpoint: its new weights are written, its config.json not yet. The
    directory then refuses to load (SHA-256 mismatch, never silently mixed); resuming redoes that epoch and
    rewrites both files."""
    from helpers import pair_config

    import gmc_rl.checkpoint as checkpoint_module
    from gmc_rl.errors import CheckpointError
    from gmc_rl.pretrain import pretrain

    data = collect(pair_config(), tmp_path / "data", progress=False)
    out = tmp_path / "gmc"
    real_write = checkpoint_module.write_json_atomic
    calls = {"best configs": 0}

    def dies_at_the_second_best_config(path, obj):
        if Path(path) == out / "config.json":
            calls["best configs"] += 1
            if calls["best configs"] == 2:
                raise SystemExit("killed")
        return real_write(path, obj)

    monkeypatch.setattr(checkpoint_module, "write_json_atomic", dies_at_the_second_best_config)
    config = pair_config(epochs=3, seed=0)
    with pytest.raises(SystemExit):
        pretrain(config, data, out, progress=False)
    monkeypatch.setattr(checkpoint_module, "write_json_atomic", real_write)
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_gmc(out)

    pretrain(config, data, out, resume=True, progress=False)
    assert load_gmc(out).provenance["epoch"] >= 2
    reference = pretrain(config, data, tmp_path / "reference", progress=False)
    assert same_tensors(reference / "model.safetensors", out / "model.safetensors")


class StartRecorder(BaseCallback):
    """Records the step count and the replay-buffer fill when (resumed) training starts."""

    def _on_training_start(self) -> None:
        self.start_timesteps = int(self.model.num_timesteps)
        self.buffer_rows = int(self.model.replay_buffer.size())

    def _on_step(self) -> bool:
        return True


def test_agent_training_killed_mid_run_resumes_from_its_checkpoint(tmp_path):
    from gmc_rl.agents import load_agent, train_agent
    from gmc_rl.agents.agent_dir import read_agent_json
    from gmc_rl.errors import CheckpointError

    torch.manual_seed(0)
    encoder = GMCModel.from_space(gym.make(ENV_ID).observation_space,
                                  ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4, 8],
                                              mlp_hidden=[8]))
    checkpoint = save_gmc(encoder, tmp_path / "gmc", {"env_id": ENV_ID, "note": "random weights"})
    out = tmp_path / "agent"
    hyperparams = {"learning_starts": 50, "batch_size": 16, "buffer_size": 2000, "policy_kwargs": {"net_arch": [16]}}
    latest = out / "checkpoints" / "latest.json"

    def two_checkpoints() -> bool:
        try:
            return json.loads(latest.read_text())["num_timesteps"] >= 200
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    kill_when(start(["train", "--method", "gmc", "--gmc", str(checkpoint), "--out", str(out), "--env", ENV_ID,
                     "--algo", "sac", "--total-timesteps", "100000", "--checkpoint-freq", "100", "--eval-freq", "0",
                     "--device", "cpu", "--hyperparams", json.dumps(hyperparams), "--no-progress"]), two_checkpoints)

    done = int(json.loads(latest.read_text())["num_timesteps"])
    info = read_agent_json(out)
    assert info["status"] == "training" and done >= 200
    with pytest.raises(CheckpointError, match="has not finished training"):
        load_agent(out)

    config = from_dict(ExperimentConfig, info["config"])
    config.agent.total_timesteps = done + 100
    recorder = StartRecorder()
    train_agent(config, "gmc", int(info["seed"]), out, resume=True, progress_bar=False, callbacks=[recorder])

    assert recorder.start_timesteps == done  # continued, not restarted from 0
    assert recorder.buffer_rows == done  # the replay buffer came back with it
    final = read_agent_json(out)
    assert final["status"] == "complete" and final["num_timesteps"] == done + 100
    assert json.loads(latest.read_text())["num_timesteps"] == done + 100
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.json", f"step_{done + 100}"]
    agent = load_agent(out)
    venv = agent.make_vec_env("sound", n_envs=1, seed=0)
    try:
        actions = agent.predict(venv.reset())
    finally:
        venv.close()
    assert actions.shape == (1, 1)
