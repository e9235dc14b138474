"""Tests of the one-command pipeline (gmc_rl.pipeline) on tiny real runs: every stage runs for real, with
hundreds of steps instead of tens of thousands."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers import check_results, tiny_config

from gmc_rl.cli import main
from gmc_rl.config import to_dict
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.pipeline import Stage, evaluate_agent, read_run_config, resolve_conditions, run_pipeline


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
    # collect, gmc, mvae; 4 agents; the GMC agent's action fit; 4 evaluations; report
    assert len(ran) == 3 + 4 + 1 + 4 + 1
    assert (run_dir / "agents" / "gmc-seed0" / "action_fit" / "model.safetensors").is_file()

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

    # Resume points, plots and logs may go: still up to date.
    shutil.rmtree(run_dir / "gmc" / "last")
    for plot in [run_dir / "gmc" / "latents_pca.png", *run_dir.glob("agents/*/eval/*.zip")]:
        plot.unlink()
    messages.clear()
    run_pipeline(config, run_dir, progress=False, log=messages.append)
    assert not [m for m in messages if "] running" in m or "] resuming" in m]

    # A deleted agent.zip is not "up to date": the agent is trained again, and what was made from it is redone;
    # so is a deleted results.md.
    (run_dir / "agents" / "gmc-seed0" / "agent.zip").unlink()
    (run_dir / "eval" / "results.md").unlink()
    messages.clear()
    run_pipeline(config, run_dir, progress=False, log=messages.append)
    assert sorted(m.split("]")[0][1:] for m in messages if "] running ->" in m) == [
        "action fit gmc-seed0", "evaluate gmc-seed0", "report", "train gmc-seed0"]
    assert "[train gmc-seed0] finished before, but files it made are gone (agents/gmc-seed0/agent.zip): running " \
           "it again" in messages
    assert (run_dir / "agents" / "gmc-seed0" / "agent.zip").is_file()
    assert (run_dir / "eval" / "results.md").is_file()

    # An evaluation record edited by hand (its method) is refused, not reported as another method's agent.
    record_file = run_dir / "eval" / "runs" / "gmc-seed0.json"
    record_file.write_text(record_file.read_text().replace('"method": "gmc"', '"method": "state"'))
    with pytest.raises(ConfigError, match=r"eval/runs/gmc-seed0.json \(stage evaluate_gmc-seed0\) changed"):
        run_pipeline(config, run_dir, progress=False, log=messages.append)


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
