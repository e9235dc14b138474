"""Resuming never records less work than was done, and an agent is never trained on a half-pretrained encoder.

- ``pretrain --resume`` with fewer epochs than the run has trained, and ``train --resume`` with fewer steps than the
  agent has trained, are refused before anything is written (before, the run recorded the smaller target beside the
  longer history and exited 0).
- A pretraining run records ``"status": "running"`` in ``run.json`` until its training returns; ``train`` refuses an
  encoder (the run directory or its ``last/``) whose run has not finished, and accepts it once resumed to the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import pytest
from helpers import PAIR_ID, pair_config
from vae_baselines import experiment

from gmc_rl import pretrain as gmc_pretrain_module
from gmc_rl.agents import train_agent
from gmc_rl.agents.training import encoder_source
from gmc_rl.collect import collect
from gmc_rl.errors import ConfigError
from gmc_rl.io import read_json
from gmc_rl.methods import get_method
from gmc_rl.mvae.training import pretrain_mvae
from gmc_rl.pretrain import pretrain
from gmc_rl.pretraining_run import STATUS_COMPLETE, STATUS_RUNNING
from gmc_rl.wrappers import make_latent_env


def _with_epochs(config, epochs):
    return dataclasses.replace(config, pretrain=dataclasses.replace(config.pretrain, epochs=epochs))


def _files(directory: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock's holder record (rewritten by each process that takes the lock)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.startswith(".gmc-rl.lock")}


@pytest.fixture(scope="module")
def pair_data(tmp_path_factory):
    return collect(pair_config(), tmp_path_factory.mktemp("pair") / "data", progress=False)


@pytest.mark.parametrize("train", [pretrain, pretrain_mvae], ids=["gmc", "mvae"])
def test_a_resume_with_fewer_epochs_than_trained_is_refused_and_writes_nothing(pair_data, tmp_path, train):
    out = tmp_path / "run"
    config = pair_config(epochs=2)
    train(config, pair_data, out, progress=False)
    before = _files(out)
    with pytest.raises(ConfigError, match="has already trained 2 epochs, more than pretrain.epochs 1; resuming "
                                          "cannot undo epochs: pass --pretrain.epochs 2 or more"):
        train(_with_epochs(config, 1), pair_data, out, resume=True, progress=False)
    assert _files(out) == before
    train(config, pair_data, out, resume=True, progress=False)  # the same target: nothing left to do
    assert read_json(out / "run.json")["status"] == STATUS_COMPLETE


def _interrupted_run(pair_data, out, monkeypatch):
    """A GMC pretraining run of 2 epochs stopped in its second epoch (run.json says running)."""
    real_epoch = gmc_pretrain_module._epoch

    def stop_in_epoch_2(run, optimizer, batches, epoch, bar):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(run, optimizer, batches, epoch, bar)

    monkeypatch.setattr(gmc_pretrain_module, "_epoch", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        pretrain(pair_config(epochs=2), pair_data, out, progress=False)
    monkeypatch.setattr(gmc_pretrain_module, "_epoch", real_epoch)
    return out


def test_an_encoder_of_an_interrupted_pretraining_run_is_refused_until_it_is_finished(pair_data, tmp_path,
                                                                                      monkeypatch):
    config = pair_config(epochs=2)
    out = _interrupted_run(pair_data, tmp_path / "run", monkeypatch)
    assert read_json(out / "run.json")["status"] == STATUS_RUNNING
    assert (out / "model.safetensors").is_file() and (out / "last" / "trainer_state.pt").is_file()  # epoch 1's

    gmc = get_method("gmc")
    for given in (out, out / "last", out / "config.json"):
        with pytest.raises(ConfigError, match=f"comes from a pretraining run that has not finished .*'running'.*"
                                              f"gmc-rl pretrain --resume --out {out}"):
            encoder_source(gmc, given)
    with pytest.raises(ConfigError, match="has not finished"):
        train_agent(config, "gmc", 0, tmp_path / "agent", encoder_dir=out, progress_bar=False)
    assert not (tmp_path / "agent").exists()

    pretrain(config, pair_data, out, resume=True, progress=False)
    assert read_json(out / "run.json")["status"] == STATUS_COMPLETE
    assert encoder_source(gmc, out) == out and encoder_source(gmc, out / "config.json") == out


def test_a_run_json_without_a_status_counts_as_finished(pair_data, tmp_path):
    """Runs recorded before the status existed cannot be told apart; they stay usable."""
    out = tmp_path / "run"
    pretrain(pair_config(epochs=1), pair_data, out, progress=False)
    record = read_json(out / "run.json")
    del record["status"]
    (out / "run.json").write_text(json.dumps(record))
    assert encoder_source(get_method("gmc"), out) == out


def test_an_agent_resumed_with_fewer_steps_than_it_trained_is_refused(tmp_path):
    config = experiment(epochs=1)
    out = tmp_path / "agent"
    longer = dataclasses.replace(config, agent=dataclasses.replace(config.agent, total_timesteps=200))
    train_agent(longer, "state", 0, out, progress_bar=False)
    before = _files(out)
    shorter = dataclasses.replace(config, agent=dataclasses.replace(config.agent, total_timesteps=120))
    with pytest.raises(ConfigError, match="has already trained 200 steps, more than agent.total_timesteps 120; "
                                          "resuming cannot undo steps"):
        train_agent(shorter, "state", 0, out, resume=True, progress_bar=False)
    assert _files(out) == before
    assert train_agent(longer, "state", 0, out, resume=True, progress_bar=False) == out  # finished: as it is
    assert _files(out) == before


def test_a_link_to_an_unfinished_runs_last_is_that_runs_last(pair_data, tmp_path, monkeypatch):
    out = _interrupted_run(pair_data, tmp_path / "run", monkeypatch)
    (tmp_path / "lastlink").symlink_to(out / "last")
    (tmp_path / "runlink").symlink_to(out)
    for given in (tmp_path / "lastlink", tmp_path / "runlink"):
        with pytest.raises(ConfigError, match="has not finished"):
            encoder_source(get_method("gmc"), given)


def test_a_latent_env_of_an_unfinished_run_is_refused(pair_data, tmp_path, monkeypatch):
    """rl-zoo3 and gym.make train agents on GMCLatent-v0 envs: the same rule as gmc-rl train."""
    out = _interrupted_run(pair_data, tmp_path / "run", monkeypatch)
    with pytest.raises(ConfigError, match="has not finished"):
        make_latent_env(PAIR_ID, out)
    with pytest.raises(ConfigError, match="has not finished"):
        gym.make("gmc_rl/GMCLatent-v0", env_id=PAIR_ID, checkpoint=str(out / "last"))


def test_a_run_of_another_method_is_named_and_left_as_it_was(pair_data, tmp_path):
    """Before, `gmc-rl pretrain --resume` on a finished MVAE run crashed loading its weights as GMC's, having
    rewritten its run.json to "running" (so train then refused the finished MVAE)."""
    out = tmp_path / "mvae"
    pretrain_mvae(pair_config(epochs=1), pair_data, out, progress=False)
    before = _files(out)
    with pytest.raises(ConfigError, match=r"holds a mvae pretraining run, not a gmc one.*gmc-rl train --method mvae "
                                          r"--encoder"):
        pretrain(pair_config(epochs=1, modality_fit_epochs=0), pair_data, out, resume=True, progress=False)
    assert _files(out) == before
    record = read_json(out / "run.json")
    del record["method"]  # a run recorded before the method was: its checkpoint's format tells
    (out / "run.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="holds a mvae pretraining run, not a gmc one"):
        pretrain(pair_config(epochs=1, modality_fit_epochs=0), pair_data, out, resume=True, progress=False)
