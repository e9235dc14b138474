"""``gmc-rl train``: flags, config resolution, resume and clear errors (tiny state/MVAE agents)."""

from __future__ import annotations

import json

import pytest
import yaml

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.cli import main

TINY = ["--total-timesteps", "120", "--eval-freq", "0", "--checkpoint-freq", "50", "--device", "cpu",
        "--hyperparams", json.dumps({"learning_starts": 100, "batch_size": 8, "policy_kwargs": {"net_arch": [8]}}),
        "--no-progress"]


def test_train_state_agent_and_resume(tmp_path, capsys):
    out = tmp_path / "state"
    assert main(["train", "--method", "state", "--seed", "4", "--out", str(out), *TINY]) == 0
    info = json.loads((out / "agent.json").read_text())
    assert (info["method"], info["seed"], info["num_timesteps"]) == ("state", 4, 120)
    assert info["config"]["agent"]["hyperparams"]["learning_starts"] == 100
    assert "gmc-rl evaluate --agent" in capsys.readouterr().out

    assert main(["train", "--method", "state", "--out", str(out), *TINY]) == 2
    assert "not empty; pass resume=True (--resume)" in capsys.readouterr().err

    # --resume reuses the run's own config, method and seed; only the flags given now change it
    assert main(["train", "--out", str(out), "--resume", "--total-timesteps", "160", "--no-progress"]) == 0
    info = json.loads((out / "agent.json").read_text())
    assert (info["method"], info["seed"], info["num_timesteps"]) == ("state", 4, 160)


def test_train_flag_errors(tmp_path, capsys):
    assert main(["train", "--method", "raw", "--gmc", str(tmp_path), "--out", str(tmp_path / "a"), *TINY]) == 2
    assert "--gmc is only used with --method gmc" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "b"), *TINY]) == 2
    assert "needs a pretrained encoder checkpoint directory (--gmc DIR)" in capsys.readouterr().err
    assert main(["train", "--method", "state", "--algo", "dqn", "--out", str(tmp_path / "c"), *TINY]) == 2
    assert "Discrete action space" in capsys.readouterr().err
    assert main(["train", "--method", "state", "--out", str(tmp_path / "d"), *TINY[:-3],
                 "--hyperparams", '{"n_timesteps": 5}']) == 2
    assert "agent.total_timesteps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--method", "gmcc", "--out", str(tmp_path / "e")])


def test_train_mvae_agent_pretraining_the_mvae_first(tmp_path, capsys):
    from gmc_rl.collect import collect
    from gmc_rl.config import load_config

    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump({
        "env_id": "gmc_rl/PendulumSound-v0",
        "collect": {"steps": 200, "n_envs": 2, "val_fraction": 0.2},
        "pretrain": {"epochs": 1, "batch_size": 32, "device": "cpu",
                     "model": {"latent_dim": 3, "common_dim": 8, "head_hidden": 8, "conv_channels": [4],
                               "mlp_hidden": [8]}},
    }))
    data = collect(load_config(config_file), tmp_path / "data", progress=False)
    out, mvae = tmp_path / "agent", tmp_path / "mvae"
    argv = ["train", "--config", str(config_file), "--method", "mvae", "--mvae", str(mvae), "--mvae-data", str(data),
            "--out", str(out), *TINY]
    assert main(argv) == 0
    assert (mvae / "model.safetensors").is_file() and (out / "encoder" / "model.safetensors").is_file()
    info = json.loads((out / "agent.json").read_text())
    assert info["method"] == "mvae" and info["observation_space"].endswith("(3,), float32)")
