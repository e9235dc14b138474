"""The `gmc-rl pipeline` and `gmc-rl evaluate` commands on a tiny real run (true-state agents: seconds)."""

from __future__ import annotations

import json

import pytest
import yaml

from gmc_rl.cli import main
from gmc_rl.config import default_config_path, load_config
from gmc_rl.results import load_results

TINY = {
    "name": "tiny_cli",
    "env_id": "gmc_rl/PendulumSound-v0",
    "env_kwargs": {"max_episode_steps": 30},
    "methods": ["state"],
    "seeds": [0],
    "agent": {"algo": "sac", "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
              "hyperparams": {"learning_starts": 100, "buffer_size": 500, "batch_size": 32}},
    "evaluate": {"episodes": 2, "n_envs": 2, "conditions": ["complete", "image"]},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = root / "run"
    assert main(["pipeline", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    return out


def test_pipeline_command_prints_table(run_dir, capsys):
    config = run_dir.parent / "tiny.yaml"
    assert main(["pipeline", "--config", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "up to date, skipped" in out and "] running" not in out
    assert "| method | complete | image |" in out and "| state |" in out


def test_pipeline_command_refuses_changed_config(run_dir, capsys):
    config = run_dir.parent / "tiny.yaml"
    code = main(["pipeline", "--config", str(config), "--out", str(run_dir), "--seeds", "0", "1", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "different config" in err and "seeds" in err and "--update" in err


def test_evaluate_command_writes_results_and_video(run_dir, tmp_path, capsys):
    agent = run_dir / "agents" / "state-seed0"
    out = tmp_path / "eval"
    code = main(["evaluate", "--agent", str(agent), "--conditions", "sound", "dropout:0.5", "--episodes", "3",
                 "--n-envs", "3", "--seeds", "1", "4", "--out", str(out), "--video", "--no-progress"])
    assert code == 0
    results = load_results(out)
    assert results["conditions"] == ["sound", "dropout:0.5"]
    assert results["settings"]["seeds"] == [1, 4]
    assert results["results"]["state"]["sound"]["episodes"] == 6
    assert "| state |" in capsys.readouterr().out
    videos = sorted(p.name for p in (out / "videos").iterdir())
    assert [v.rsplit(".", 1)[0] for v in videos] == ["state-seed0-dropout_0.5", "state-seed0-sound"]


def test_evaluate_command_errors(run_dir, tmp_path, capsys):
    assert main(["evaluate", "--agent", str(tmp_path), "--no-progress"]) == 2
    assert "not an agent directory" in capsys.readouterr().err
    agent = run_dir / "agents" / "state-seed0"
    assert main(["evaluate", "--agent", str(agent), "--conditions", "lidar", "--out", str(tmp_path / "x"),
                 "--no-progress"]) == 2
    assert "lidar" in capsys.readouterr().err


def test_embedded_default_config_is_valid():
    config = load_config(default_config_path())
    assert config.env_id == "gmc_rl/PendulumSound-v0"
    assert config.pretrain.device == "cpu" and config.agent.device == "cpu"
    assert "gmc" in config.methods


@pytest.mark.slow
def test_default_pipeline_full_size(tmp_path, monkeypatch, capsys):
    """`gmc-rl pipeline` with no arguments (the embedded quick config), as a user runs it first."""
    monkeypatch.chdir(tmp_path)
    assert main(["pipeline"]) == 0
    results = json.loads((tmp_path / "runs" / "quick" / "eval" / "results.json").read_text())
    assert "gmc" in results["results"]
    assert "| method |" in capsys.readouterr().out
    # The promise: the GMC agent, trained on complete observations, stays within 10 % with either sensor alone.
    from gmc_rl.results import robustness_losses

    single = [item for item in robustness_losses(results) if item["method"] == "gmc"
              and item["condition"] in ("image", "sound")]
    assert not single, single
