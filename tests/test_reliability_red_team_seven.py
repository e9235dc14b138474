"""Red-team pass seven: what a run directory holds must stay what its stages made, and one row one method.

Each test failed before its fix (R1, R2, R5, R6, R10, R11 of the pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import tiny_state_config

from gmc_rl.cli import main

TINY = tiny_state_config("tiny_r7")


def _run(tmp_path: Path, name: str = "run", **changes) -> tuple[Path, Path]:
    """A tiny state-only pipeline run made from ``TINY`` updated with ``changes`` (sections merged); returns the
    run directory and its config file."""
    data = json.loads(json.dumps(TINY))
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(data))
    run = tmp_path / name
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress", "--jobs", "1"]) == 0
    return run, config


def test_an_agent_trained_further_by_another_command_is_not_reported_or_deleted(tmp_path, capsys):
    """R1: `report RUN` showed the evaluation of the 150-step agent after `train --resume` made it 300 steps; R6:
    `pipeline --update` then deleted the user's 300-step agent and trained a new one."""
    run, config = _run(tmp_path, agent={"checkpoint_freq": 100})
    agent = run / "agents" / "state-seed0"
    assert main(["train", "--out", str(agent), "--resume", "--total-timesteps", "300", "--no-progress"]) == 0
    trained = (agent / "agent.zip").read_bytes()
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    assert "agents/state-seed0/agent.zip (stage train_state-seed0) changed" in capsys.readouterr().err
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress", "--update",
                 "--agent.total_timesteps", "300"]) == 2
    assert "agents/state-seed0/agent.zip (stage train_state-seed0) changed" in capsys.readouterr().err
    assert (agent / "agent.zip").read_bytes() == trained


def test_a_hand_edited_record_is_not_reported(tmp_path, capsys):
    run, _ = _run(tmp_path)
    record = run / "eval" / "runs" / "state-seed0.json"
    data = json.loads(record.read_text())
    data["evaluation"]["complete"]["per_seed"][0]["returns"] = [-5.0]
    record.write_text(json.dumps(data))
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    assert "eval/runs/state-seed0.json (stage evaluate_state-seed0) changed" in capsys.readouterr().err


def test_update_without_config_adds_seeds_to_the_runs_own_experiment(tmp_path):
    """R10: `pipeline --out RUN --seeds 0 1 --update` (the help's example) replaced RUN's config by the embedded
    quick config, deleted its data and retrained everything; R9: `pipeline --out RUN` was refused as another
    config."""
    run, _ = _run(tmp_path)
    agent0 = (run / "agents" / "state-seed0" / "agent.zip").read_bytes()
    assert main(["pipeline", "--out", str(run), "--seeds", "0", "1", "--update", "--no-progress", "--jobs", "1"]) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["name"] == "tiny_r7" and stored["seeds"] == [0, 1]
    assert stored["agent"]["total_timesteps"] == 150
    assert (run / "agents" / "state-seed0" / "agent.zip").read_bytes() == agent0  # kept
    assert (run / "agents" / "state-seed1" / "agent.zip").is_file()
    assert main(["pipeline", "--out", str(run), "--no-progress", "--jobs", "1"]) == 0  # its own config: up to date


def test_a_deleted_video_is_made_again(tmp_path):
    """R11: the video stage recorded no files, so a deleted video stayed deleted ("up to date")."""
    run, config = _run(tmp_path, evaluate={"video": True})
    videos = sorted((run / "eval" / "videos").glob("*.mp4"))
    assert videos
    videos[0].unlink()
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress", "--jobs", "1"]) == 0
    assert videos[0].is_file()


def test_runs_scored_under_another_action_limit_are_not_pooled(tmp_path, capsys):
    """R2: one agent scored with the full torque and one clipped to 0.1 were pooled into one cell."""
    run, _ = _run(tmp_path)
    other, _ = _run(tmp_path, "other", seeds=[1], evaluate={"action_limit": 0.1})
    capsys.readouterr()
    assert main(["report", str(run), str(other), "--out", str(tmp_path / "rep")]) == 2
    assert "evaluate.action_limit: 'unset' vs 0.1" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "says"), [
    ({"agent": {"total_timesteps": 200}}, "are state agents made with different settings"),
    ({"env_kwargs": {"max_episode_steps": 40}}, "the agents were trained on different environments"),
])
def test_evaluate_does_not_pool_agents_made_with_other_settings(tmp_path, capsys, change, says):
    """R5: `evaluate --agent A B` pooled a 150-step and a 200-step agent (or agents of other env_kwargs) into one
    row."""
    run, _ = _run(tmp_path)
    other, _ = _run(tmp_path, "other", seeds=[1], **change)
    capsys.readouterr()
    assert main(["evaluate", "--agent", str(run / "agents" / "state-seed0"), str(other / "agents" / "state-seed1"),
                 "--episodes", "1", "--n-envs", "1", "--out", str(tmp_path / "ev"), "--no-progress"]) == 2
    assert says in capsys.readouterr().err


def test_evaluate_does_not_put_agents_of_other_env_kwargs_in_one_table(tmp_path, capsys):
    """Pass eight, F3: agents of two methods trained with other env_kwargs shared one table (one env named)."""
    run, _ = _run(tmp_path)
    other, _ = _run(tmp_path, "other", seeds=[1], methods=["raw"], env_kwargs={"max_episode_steps": 40},
                    agent={"total_timesteps": 120, "hyperparams": {"learning_starts": 100, "buffer_size": 200,
                                                                   "batch_size": 8}})
    capsys.readouterr()
    assert main(["evaluate", "--agent", str(run / "agents" / "state-seed0"), str(other / "agents" / "raw-seed1"),
                 "--episodes", "1", "--n-envs", "1", "--out", str(tmp_path / "ev"), "--no-progress"]) == 2
    assert "the agents were trained on different environments" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["eval/runs/state-seed0.json", "agents/state-seed0/agent.zip"])
def test_a_recorded_file_replaced_by_a_folder_is_not_up_to_date(tmp_path, name):
    """Pass eight, F5: a recorded file replaced by an empty folder counted as there ("up to date")."""
    run, config = _run(tmp_path)
    (run / name).unlink()
    (run / name).mkdir()
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress", "--jobs", "1"]) == 0
    assert (run / name).is_file()
