"""Tests of the stage runner (gmc_rl.stages): ordering, skipping, parallel jobs in worker processes, failures."""

from __future__ import annotations

import json
import os
import shutil
import time
from functools import partial
from pathlib import Path

import pytest
from helpers import check_results, die_unless_resumed, stamp, stamp_task, tiny_config

from gmc_rl.errors import ConfigError, WorkerLostError
from gmc_rl.stages import Stage, Task, run_tasks, worker_threads


def test_sequential_runs_in_order_in_this_process_and_skips_on_rerun(tmp_path):
    tasks = [stamp_task(tmp_path, "a"), stamp_task(tmp_path, "b", after=("a",))]
    log: list[str] = []
    run_tasks(tasks, jobs=1, log=log.append)
    assert stamp(tmp_path, "a")["pid"] == os.getpid() and stamp(tmp_path, "a")["progress"] is True
    assert stamp(tmp_path, "a")["end"] <= stamp(tmp_path, "b")["end"]
    assert all(task.stage.is_done() for task in tasks)
    log.clear()
    run_tasks(tasks, jobs=1, log=log.append)
    assert sum("skipped" in line for line in log) == 2


def test_parallel_respects_order_and_runs_in_workers(tmp_path):
    # "first" finishes only once "independent" has written its output: the two must run at the same time (however
    # slowly the worker processes start), else "first" times out.
    tasks = [stamp_task(tmp_path, "first", wait_for=tmp_path / "out" / "independent.json"),
             stamp_task(tmp_path, "independent"),
             stamp_task(tmp_path, "second", after=("first",))]
    log: list[str] = []
    run_tasks(tasks, jobs=2, log=log.append)
    first, independent, second = (stamp(tmp_path, n) for n in ("first", "independent", "second"))
    assert {first["pid"], independent["pid"], second["pid"]}.isdisjoint({os.getpid()})
    assert first["progress"] is False
    assert first["end"] <= second["end"]
    # The independent task did not wait for the one that waited for it.
    assert independent["end"] <= first["end"]
    assert all(task.stage.is_done() for task in tasks)
    assert sum("done in" in line for line in log) == 3


def test_parallel_failure_keeps_running_work_and_raises(tmp_path):
    tasks = [stamp_task(tmp_path, "slow", delay=1.0),
             stamp_task(tmp_path, "broken", fail=True),
             stamp_task(tmp_path, "after_broken", after=("broken",))]
    log: list[str] = []
    with pytest.raises(RuntimeError, match="deliberate failure of broken"):
        run_tasks(tasks, jobs=2, log=log.append)
    assert tasks[0].stage.is_done(), "the task running beside the failure is finished and kept"
    assert not tasks[1].stage.is_done() and not tasks[2].stage.output.exists()
    assert any("failed: RuntimeError" in line for line in log)
    # Fixing the cause and rerunning does only what is left.
    tasks[1] = stamp_task(tmp_path, "broken")
    log.clear()
    run_tasks(tasks, jobs=2, log=log.append)
    assert "[slow] up to date, skipped" in "\n".join(log)
    assert all(task.stage.is_done() for task in tasks)


def test_bad_task_graphs_and_jobs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown tasks"):
        run_tasks([stamp_task(tmp_path, "a", after=("missing",))], jobs=2)
    with pytest.raises(ValueError, match="cycle"):
        run_tasks([stamp_task(tmp_path, "a", after=("b",)), stamp_task(tmp_path, "b", after=("a",))], jobs=2)
    with pytest.raises(ConfigError, match="jobs"):
        run_tasks([stamp_task(tmp_path, "a")], jobs=0)


def test_worker_threads_share_the_cpus():
    cpus = len(os.sched_getaffinity(0))
    assert worker_threads(1) == cpus
    assert worker_threads(cpus * 4) == 1


def test_tiny_pipeline_with_two_jobs_matches_the_sequential_layout(tmp_path):
    from gmc_rl.pipeline import run_pipeline

    config = tiny_config("gmc_rl/PendulumSound-v0", ["gmc", "state"])
    log: list[str] = []
    results = run_pipeline(config, tmp_path / "run", progress=False, log=log.append, jobs=2)
    check_results(results, ["gmc", "state"], ["complete", "image", "sound", "dropout:0.5"])
    text = "\n".join(log)
    # The true-state agent needs no encoder, so it starts before GMC pretraining is done.
    assert text.index("[train state-seed0] running") < text.index("[pretrain GMC] done")
    log.clear()
    run_pipeline(config, tmp_path / "run", progress=False, log=log.append, jobs=2)
    assert not any("] running" in line for line in log)


def test_workers_see_envs_registered_only_in_the_calling_process(tmp_path):
    """An env registered by the user's own script (no "module:id" form) must reach the worker processes."""
    import gymnasium as gym

    from gmc_rl.envs.pendulum_sound import PendulumSoundEnv
    from gmc_rl.pipeline import run_pipeline

    env_id = "test_only/PendulumAlias-v0"
    gym.register(env_id, entry_point=PendulumSoundEnv, max_episode_steps=300)
    try:
        config = tiny_config(env_id, ["state"])
        results = run_pipeline(config, tmp_path / "run", progress=False, log=lambda message: None, jobs=2)
        check_results(results, ["state"], ["complete", "image", "sound", "dropout:0.5"])
    finally:
        del gym.registry[env_id]


def test_parallel_lists_running_stages_while_waiting(tmp_path, monkeypatch):
    from gmc_rl import stages

    monkeypatch.setattr(stages, "HEARTBEAT_SECONDS", 0.2)
    log: list[str] = []
    run_tasks([stamp_task(tmp_path, "slow", delay=1.5)], jobs=2, log=log.append)
    assert any(line.startswith("still running: slow [0 min]") for line in log)


def half_done(path: Path, *, resume: bool, progress: bool) -> None:
    """Stage work for the tests: report 5 of 10 steps (progress file only: workers show nothing), then wait."""
    import gmc_rl.progress

    gmc_rl.progress.LINE_INTERVAL = 0.0  # record every update (in this worker process)
    bar = gmc_rl.progress.progress_bar(10, "counting", "step", enabled=progress)
    bar.update(5)
    time.sleep(2.0)
    bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_a_worker_killed_mid_stage_is_one_clear_error_and_the_rerun_resumes_it(tmp_path):
    """Before, the process pool's BrokenProcessPool came out as a traceback."""
    victim = Stage(tmp_path, "victim", tmp_path / "out" / "victim.json", {"name": "victim"})
    killed = Task(victim, "victim", partial(die_unless_resumed, victim.output), resumable=True)
    tasks = [killed, stamp_task(tmp_path, "after", after=("victim",))]
    log: list[str] = []
    with pytest.raises(WorkerLostError, match="stage victim died before the stage finished .* rerun the same "
                                              "command to resume"):
        run_tasks(tasks, jobs=2, log=log.append)
    assert not victim.is_done() and victim.output.read_text() == "partial" and not tasks[1].stage.output.exists()
    assert any(line.startswith("[victim] failed: WorkerLostError") for line in log)
    run_tasks(tasks, jobs=2, log=log.append)
    assert stamp(tmp_path, "victim")["resume"] is True and all(task.stage.is_done() for task in tasks)


def test_a_killed_worker_is_one_line_on_the_command_line(tmp_path, monkeypatch, capsys):
    from gmc_rl import cli, stages

    victim = Stage(tmp_path, "victim", tmp_path / "out" / "victim.json", {"name": "victim"})

    def pipeline_with_a_killed_worker(args):
        stages.run_tasks([Task(victim, "victim", partial(die_unless_resumed, victim.output))], jobs=2,
                         log=lambda line: None)

    monkeypatch.setattr(cli, "_run_command", lambda command, argv: pipeline_with_a_killed_worker(argv))
    assert cli.main(["pipeline"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gmc-rl pipeline: error: the worker process running stage victim died") and "\n" not in err


def test_parallel_shows_each_running_stages_percentage_and_rate(tmp_path, monkeypatch):
    from gmc_rl import stages

    monkeypatch.setattr(stages, "HEARTBEAT_SECONDS", 0.5)
    stage = Stage(tmp_path, "half", tmp_path / "out" / "half.json", {})
    log: list[str] = []
    run_tasks([Task(stage, "half", partial(half_done, stage.output))], jobs=2, log=log.append)
    shown = [line for line in log if line.startswith("still running: half: 50% (5/10 step, ")]
    assert shown and "step/s, ETA" in shown[0]
    assert not stages.progress_file(stage).exists()  # removed once the stage is done


@pytest.mark.parametrize("target_kind", ["directory", "file", "dangling"])
def test_redoing_a_stage_whose_output_is_a_link_removes_the_link_not_its_target(tmp_path, target_kind):
    """Before, --update on a run whose data/ was a symlink failed with rmtree's raw "Cannot call rmtree on a
    symbolic link" after the run's config.yaml had been rewritten."""
    run = tmp_path / "run"
    stage = Stage(run, "collect", run / "data", {"steps": 1})
    stage.begin()
    stage.finish(1.0)
    target = tmp_path / "shared"
    if target_kind == "directory":
        target.mkdir()
        (target / "train.npz").write_text("shared data")
    elif target_kind == "file":
        target.write_text("shared data")
    (run / "data").symlink_to(target)
    changed = Stage(run, "collect", run / "data", {"steps": 2})  # other inputs: the stage is redone
    assert changed.begin() is False
    assert not (run / "data").exists() and not (run / "data").is_symlink()
    if target_kind == "directory":
        assert (target / "train.npz").read_text() == "shared data"
    elif target_kind == "file":
        assert target.read_text() == "shared data"


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_finished_stage_whose_files_are_gone_runs_again_and_so_do_the_stages_made_from_it(tmp_path, jobs):
    """Before, a finished run said "up to date" after its agent.zip (or data/val.npz) was deleted, and the next
    stage to read it failed. The files later stages read count; logs, plots and resume points do not."""
    from helpers import folder_tasks

    log: list[str] = []
    run_tasks(folder_tasks(tmp_path), jobs=jobs, log=log.append)
    first = {name: stamp(tmp_path, name)["end"] for name in ("evaluate", "report")}

    # Logs, resume points and files a later stage adds to the folder: still done.
    (tmp_path / "agent" / "tb" / "events.out").unlink()
    shutil.rmtree(tmp_path / "agent" / "checkpoints")
    (tmp_path / "agent" / "action_fit").mkdir()
    log.clear()
    run_tasks(folder_tasks(tmp_path), jobs=jobs, log=log.append)
    assert sum("up to date, skipped" in line for line in log) == 3, log

    (tmp_path / "agent" / "encoder" / "model.safetensors").unlink()
    log.clear()
    run_tasks(folder_tasks(tmp_path), jobs=jobs, log=log.append)
    assert "[agent] finished before, but files it made are gone (agent/encoder/model.safetensors): running it " \
           "again" in log
    assert "[evaluate] finished before, but a stage it was made from ran again: running it again" in log
    assert (tmp_path / "agent" / "encoder" / "model.safetensors").is_file()
    assert not (tmp_path / "agent" / "action_fit").exists()  # the redone stage starts from an empty folder
    assert all(stamp(tmp_path, name)["end"] > first[name] for name in first)
    assert all(task.stage.is_done(task.after) for task in folder_tasks(tmp_path))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_finished_stage_whose_files_were_changed_is_refused_before_anything_runs(tmp_path, jobs):
    """Before, `gmc-rl train --out RUN/agents/... --resume` or `collect --out RUN/data --update` replaced a stage's
    output and the run stayed "up to date", its results made from the old files."""
    from helpers import folder_tasks

    run_tasks(folder_tasks(tmp_path), jobs=jobs, log=lambda line: None)
    model = tmp_path / "agent" / "agent.zip"
    model.write_text("another command's agent")
    report_before = stamp(tmp_path, "report")
    with pytest.raises(ConfigError, match=r"no longer holds what its stages made: agent/agent.zip \(stage agent\) "
                                          r"changed after the stage wrote it .* move the file"):
        run_tasks(folder_tasks(tmp_path), jobs=jobs, log=lambda line: None)
    assert model.read_text() == "another command's agent"  # not overwritten
    assert stamp(tmp_path, "report") == report_before  # nothing ran

    model.unlink()  # moved away, as the message says: the stage is made again
    log: list[str] = []
    run_tasks(folder_tasks(tmp_path), jobs=jobs, log=log.append)
    assert any(line.startswith("[agent] finished before, but files it made are gone") for line in log)
    assert model.read_text().startswith("agent.zip ")


def test_markers_written_before_tokens_keep_their_stages_done(tmp_path):
    """A run finished by an earlier version (markers with no files, token or upstream) is not redone."""
    from helpers import folder_tasks

    run_tasks(folder_tasks(tmp_path), jobs=1, log=lambda line: None)
    for marker in (tmp_path / "stages").glob("*.json"):
        data = json.loads(marker.read_text())
        marker.write_text(json.dumps({key: data[key] for key in ("stage", "hash", "status", "output", "seconds")}))
    log: list[str] = []
    run_tasks(folder_tasks(tmp_path), jobs=1, log=log.append)
    assert sum("up to date, skipped" in line for line in log) == 3, log
