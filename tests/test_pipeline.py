"""Tests of the one-command pipeline (gmc_rl.pipeline) on tiny real runs: every stage runs for real, with
hundreds of steps instead of tens of thousands."""

from __future__ import annotations

import json
import math

import pytest

from gmc_rl.cli import main
from gmc_rl.config import ExperimentConfig, from_dict, to_dict
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.pipeline import Stage, evaluate_agent, read_run_config, resolve_conditions, run_pipeline


def tiny_config(env_id: str, methods: list[str], **overrides) -> ExperimentConfig:
    """A pipeline config whose every stage takes seconds (short episodes, few steps, one epoch)."""
    algo = "sac" if "Pendulum" in env_id else "dqn"
    hyperparams = {"learning_starts": 100, "buffer_size": 500, "batch_size": 32}
    if algo == "dqn":
        hyperparams.update(target_update_interval=50)
    data = {
        "name": "tiny",
        "env_id": env_id,
        "env_kwargs": {"max_episode_steps": 40},
        "methods": methods,
        "seeds": [0],
        "collect": {"steps": 400, "n_envs": 2},
        "pretrain": {"epochs": 1, "batch_size": 64, "device": "cpu", "checkpoint_every": 1},
        "agent": {"algo": algo, "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": hyperparams},
        "evaluate": {"episodes": 2, "n_envs": 2, "conditions": ["subsets", "dropout:0.5"]},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return from_dict(ExperimentConfig, data)


def check_results(results: dict, methods: list[str], conditions: list[str]) -> None:
    assert results["methods"] == methods
    assert results["conditions"] == conditions
    for method in methods:
        assert list(results["results"][method]) == conditions
        for summary in results["results"][method].values():
            assert summary["episodes"] == 2
            for metric in ("per_step_reward", "episode_return"):
                assert math.isfinite(summary[metric]["mean"])
                low, high = summary[metric]["ci95"]
                assert math.isfinite(low) and math.isfinite(high) and low <= summary[metric]["mean"] <= high


def test_resolve_conditions():
    mods = ["image", "sound", "joints"]
    assert resolve_conditions([], mods) == ["complete", "image", "sound", "joints", "image+sound", "image+joints",
                                            "sound+joints"]
    assert resolve_conditions(["sound+image", "dropout:0.50", "complete", "subsets"], mods)[:3] == [
        "image+sound", "dropout:0.5", "complete"]
    with pytest.raises(ModalityError, match="lidar"):
        resolve_conditions(["lidar"], mods)
    with pytest.raises(ConfigError):
        resolve_conditions("image", mods)


def test_tiny_pipeline_pendulum_all_methods_then_rerun_skips(tmp_path, capsys):
    config = tiny_config("gmc_rl/PendulumSound-v0", ["gmc", "raw", "mvae", "state"])
    run_dir = tmp_path / "run"
    messages: list[str] = []
    results = run_pipeline(config, run_dir, progress=False, log=messages.append)
    conditions = ["complete", "image", "sound", "dropout:0.5"]
    check_results(results, ["gmc", "raw", "mvae", "state"], conditions)
    for name in ("results.json", "results.md", "results.png"):
        assert (run_dir / "eval" / name).is_file()
    for method in ("gmc", "raw", "mvae", "state"):
        assert (run_dir / "agents" / f"{method}-seed0" / "agent.zip").is_file()
    assert to_dict(read_run_config(run_dir)) == to_dict(config)
    ran = [m for m in messages if "] running" in m]
    assert len(ran) == 3 + 4 + 4 + 1  # collect, gmc, mvae; 4 agents; 4 evaluations; report

    # A rerun with the same config skips every stage and gives the same results.
    messages.clear()
    again = run_pipeline(config, run_dir, progress=False, log=messages.append)
    assert not [m for m in messages if "] running" in m or "] resuming" in m]
    assert len([m for m in messages if "skipped" in m]) == len(ran)
    assert again["results"] == results["results"]

    # The evaluations of the agents with an encoder (GMC, MVAE) carry their transfer diagnostics for each modality
    # subset, and the report shows them.
    for method in ("gmc", "mvae"):
        record = json.loads((run_dir / "eval" / "runs" / f"{method}-seed0.json").read_text())
        assert set(record["diagnostics"]) == {"image", "sound"}
        assert all(math.isfinite(v) for gaps in record["diagnostics"].values() for v in gaps.values())
    assert sorted(results["diagnostics"]) == ["gmc", "mvae"]
    assert "## Transfer diagnostics" in (run_dir / "eval" / "results.md").read_text()
    assert main(["align", "--agent", str(run_dir / "agents" / "gmc-seed0"), "--episodes", "2", "--horizon", "5"]) == 0
    assert "Transfer diagnostics" in capsys.readouterr().out

    # An agent directory reloads on its own and reproduces the pipeline's evaluation.
    record = evaluate_agent(run_dir / "agents" / "gmc-seed0", ["complete", "sound"], 2, [0], 2, progress=False)
    for condition in ("complete", "sound"):
        assert record["evaluation"][condition]["per_seed"][0]["returns"] == \
            results["results"]["gmc"][condition]["per_seed"][0]["returns"]


def test_tiny_pipeline_three_modality_env(tmp_path):
    config = tiny_config("gmc_rl/CartPoleSensors-v0", ["gmc", "state"], evaluate={"conditions": []})
    results = run_pipeline(config, tmp_path / "run", progress=False, log=lambda m: None)
    # Gymnasium's Dict sorts its keys: the canonical modality order is image, joints, sound.
    check_results(results, ["gmc", "state"], ["complete", "image", "joints", "sound", "image+joints",
                                              "image+sound", "joints+sound"])
    # CartPole pays 1 per step, so the per-step reward is exactly 1 whatever the sensors.
    assert results["results"]["gmc"]["image"]["per_step_reward"]["mean"] == pytest.approx(1.0)


def test_changed_config_is_refused_unless_update(tmp_path):
    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"], evaluate={"conditions": ["complete", "image"]})
    run_dir = tmp_path / "run"
    run_pipeline(config, run_dir, progress=False, log=lambda m: None)
    changed = tiny_config("gmc_rl/PendulumSound-v0", ["state"],
                          evaluate={"conditions": ["complete", "image"], "episodes": 3})
    with pytest.raises(ConfigError, match=r"evaluate.episodes: 2 -> 3"):
        run_pipeline(changed, run_dir, progress=False, log=lambda m: None)
    messages: list[str] = []
    results = run_pipeline(changed, run_dir, update=True, progress=False, log=messages.append)
    assert any("[train state-seed0] up to date" in m for m in messages)  # the agent is kept
    assert any("[evaluate state-seed0] running" in m for m in messages)  # its evaluation is redone
    assert results["results"]["state"]["complete"]["episodes"] == 3


def test_foreign_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a pipeline run directory"):
        run_pipeline(tiny_config("gmc_rl/PendulumSound-v0", ["state"]), tmp_path, progress=False,
                     log=lambda m: None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_stage_markers_resume_and_invalidate(tmp_path):
    output = tmp_path / "gmc"
    stage = Stage(tmp_path, "pretrain", output, {"epochs": 1})
    assert not stage.is_done()
    assert stage.begin() is False  # nothing to resume
    output.mkdir()
    (output / "partial").write_text("x")  # the stage is interrupted here
    same = Stage(tmp_path, "pretrain", output, {"epochs": 1})
    assert not same.is_done()
    assert same.begin() is True  # same inputs, output left behind: resume
    assert (output / "partial").exists()
    assert Stage(tmp_path, "pretrain", output, {"epochs": 1}).begin(resumable=False) is False
    assert not output.exists()  # a stage that cannot resume starts from scratch
    output.mkdir()
    same.finish(1.0)
    assert Stage(tmp_path, "pretrain", output, {"epochs": 1}).is_done()
    other = Stage(tmp_path, "pretrain", output, {"epochs": 2})
    assert not other.is_done()
    assert other.begin() is False and not output.exists()  # made with other inputs: removed, redone
