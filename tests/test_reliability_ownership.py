"""Never delete or mix a user's work: run-directory ownership, stage markers, one process per directory, workers
that do not outlive the pipeline, and reruns after a failure that saved nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_ID, config_for, tiny_config
from safetensors.torch import load_file

from gmc_rl.collect import COLLECTING_MARKER, collect
from gmc_rl.errors import ConfigError, DatasetError
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock
from gmc_rl.pipeline import RUN_MARKER, run_pipeline
from gmc_rl.pretrain import pretrain
from gmc_rl.results import build_results, write_results
from gmc_rl.stages import Stage

LOCK_FILES = (LOCK_FILE, HOLDER_FILE)


def _user_file(path: Path, text: str = "my notes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the pipeline only works in a directory it made -------------------------------------------------------------


def test_a_users_directory_with_a_matching_config_is_not_taken_for_a_run_directory(tmp_path):
    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"])
    import yaml

    from gmc_rl.config import to_dict

    user_config = _user_file(tmp_path / "config.yaml", "# my experiment\n" + yaml.safe_dump(to_dict(config)))
    user_data = _user_file(tmp_path / "data" / "notes.txt")
    before = user_config.read_text()
    with pytest.raises(ConfigError, match="not a pipeline run directory"):
        run_pipeline(config, tmp_path, progress=False, log=lambda _: None)
    assert user_config.read_text() == before and user_data.read_text() == "my notes"
    assert not (tmp_path / RUN_MARKER).exists() and not (tmp_path / ".gmc-rl.lock").exists()


# --- stage outputs that no marker records are never deleted -----------------------------------------------------


@pytest.mark.parametrize("marker_text", [None, "{ not json", json.dumps({"stage": "other", "output": "gmc"})])
def test_unrecorded_output_is_refused_by_a_stage_that_cannot_resume(tmp_path, marker_text):
    stage = Stage(tmp_path, "collect", tmp_path / "data", {"a": 1})
    user_file = _user_file(tmp_path / "data" / "train.npz", "user bytes")
    if marker_text is not None:
        _user_file(stage.marker, marker_text)
    with pytest.raises(ConfigError, match="never deletes files it did not write"):
        stage.begin(resumable=False)
    assert user_file.read_text() == "user bytes"


def test_unrecorded_output_is_resumed_not_wiped_by_a_resumable_stage(tmp_path):
    stage = Stage(tmp_path, "pretrain", tmp_path / "gmc", {"a": 1})
    kept = _user_file(tmp_path / "gmc" / "model.safetensors", "weights")
    assert stage.begin(resumable=True) is True
    assert kept.read_text() == "weights"


def test_recorded_output_with_other_inputs_is_redone(tmp_path):
    old = Stage(tmp_path, "collect", tmp_path / "data", {"steps": 1})
    old.begin(resumable=False)
    _user_file(tmp_path / "data" / "train.npz", "old data")
    old.finish(1.0)
    new = Stage(tmp_path, "collect", tmp_path / "data", {"steps": 2})
    assert not new.is_done()
    assert new.begin(resumable=False) is False
    assert not (tmp_path / "data").exists()


def test_finished_pipeline_output_with_a_deleted_marker_is_resumed_not_wiped(tmp_path):
    config = tiny_config("gmc_rl/PendulumSound-v0", ["gmc"])
    run = tmp_path / "run"
    run_pipeline(config, run, progress=False, log=lambda _: None)
    weights = load_file(run / "gmc" / "model.safetensors")
    extra = _user_file(run / "gmc" / "my_analysis.txt")
    (run / "stages" / "pretrain.json").unlink()
    log: list[str] = []
    run_pipeline(config, run, progress=False, log=log.append)
    assert extra.read_text() == "my notes"
    resumed = load_file(run / "gmc" / "model.safetensors")
    assert resumed.keys() == weights.keys() and all(torch.equal(resumed[k], weights[k]) for k in weights)
    assert any(line.startswith("[pretrain GMC] resuming") for line in log)


# --- collect and report never overwrite files they did not write ------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_collect_does_not_overwrite_a_users_file_in_a_non_dataset_directory(tmp_path, overwrite):
    user = _user_file(tmp_path / "out" / "train.npz", "user bytes")
    with pytest.raises(DatasetError, match="holds no gmc-rl dataset"):
        collect(config_for(TINY_ID, 40), tmp_path / "out", overwrite=overwrite, progress=False)
    assert user.read_text() == "user bytes"


def test_collect_overwrites_its_own_interrupted_collection(tmp_path):
    out = tmp_path / "out"
    _user_file(out / COLLECTING_MARKER, "{}")
    _user_file(out / "train.npz", "partial")
    collect(config_for(TINY_ID, 40), out, progress=False)
    assert (out / "metadata.json").is_file() and not (out / COLLECTING_MARKER).exists()
    assert np.load(out / "train.npz")["rewards"].shape[0] > 0


def test_results_are_written_over_gmc_rl_results_only(tmp_path):
    results = build_results({"m": {}}, env_id="x")
    write_results(results, tmp_path / "a", plot=False)
    write_results(results, tmp_path / "a", plot=False)  # its own results: replaced
    user = _user_file(tmp_path / "b" / "results.md", "# my results")
    with pytest.raises(ConfigError, match="gmc-rl did not write"):
        write_results(results, tmp_path / "b", plot=False)
    assert user.read_text() == "# my results" and not (tmp_path / "b" / "results.json").exists()


# --- pretraining reruns ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return collect(config_for(TINY_ID, 120), tmp_path_factory.mktemp("own") / "data", progress=False)


def test_rerunning_a_finished_pretraining_without_resume_keeps_its_model(tiny_data, tmp_path):
    out = pretrain(config_for(TINY_ID, 120, epochs=1), tiny_data, tmp_path / "gmc", progress=False)
    weights = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="pass --resume"):
        pretrain(config_for(TINY_ID, 120, epochs=1), tiny_data, out, progress=False)
    assert (out / "model.safetensors").read_bytes() == weights


def test_a_pretraining_that_failed_before_saving_weights_can_be_rerun_corrected(tiny_data, tmp_path):
    out = tmp_path / "gmc"
    with pytest.raises(ConfigError, match="lower pretrain.lr"):
        pretrain(config_for(TINY_ID, 120, epochs=1, lr=1e30), tiny_data, out, progress=False)
    assert (out / "run.json").is_file() and not (out / "model.safetensors").exists()
    pretrain(config_for(TINY_ID, 120, epochs=1), tiny_data, out, progress=False)
    assert (out / "model.safetensors").is_file()


def test_an_agent_run_that_failed_before_saving_weights_can_be_rerun_corrected(tmp_path):
    from gmc_rl.agents.training import train_agent

    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"])
    out = tmp_path / "agent"
    out.mkdir()
    (out / "agent.json").write_text(json.dumps({"format": "gmc-rl-agent", "status": "training"}))
    (out / "tb").mkdir()
    train_agent(config, "state", 0, out, progress_bar=False)
    assert (out / "agent.zip").is_file()


# --- one process per directory --------------------------------------------------------------------------------------


def test_a_second_holder_is_refused_with_the_holders_name(tmp_path):
    with directory_lock(tmp_path / "run"):
        holder = json.loads((tmp_path / "run" / HOLDER_FILE).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=f"in use by process {os.getpid()}"):
            with directory_lock(tmp_path / "run"):
                pass
    with directory_lock(tmp_path / "run"):  # released
        pass


def test_a_second_pipeline_on_the_same_directory_is_refused(tmp_path):
    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"])
    with directory_lock(tmp_path / "run", "run directory"):
        with pytest.raises(ConfigError, match="run directory .* is in use by process"):
            run_pipeline(config, tmp_path / "run", progress=False, log=lambda _: None)
    assert not (tmp_path / "run" / "stages").exists()


def test_a_second_collect_on_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "data"
    with directory_lock(out, "dataset directory"):
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match=f"dataset directory {out} is in use by process {os.getpid()}"):
                collect(config_for(TINY_ID, 40), out, overwrite=overwrite, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(LOCK_FILES)  # no marker, no archive
    collect(config_for(TINY_ID, 40), out, progress=False)  # released: stale lock files are no obstacle
    assert (out / "metadata.json").is_file()
    with directory_lock(out, "dataset directory"):  # holding this very dataset: refused, not "kept" half-written
        with pytest.raises(ConfigError, match="is in use by"):
            collect(config_for(TINY_ID, 40), out, overwrite=True, progress=False)
    assert collect(config_for(TINY_ID, 40), out, progress=False) == out  # kept


def test_a_collect_command_beside_another_is_one_clear_error(tmp_path, monkeypatch, capsys):
    from gmc_rl.cli import main

    monkeypatch.chdir(tmp_path)
    with directory_lock(tmp_path / "data", "dataset directory"):
        assert main(["collect", "--env", TINY_ID, "--steps", "40", "--out", "data", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gmc-rl collect: error: dataset directory data is in use by process ") and "\n" not in err


@pytest.fixture(scope="module")
def tiny_agent(tmp_path_factory) -> Path:
    from gmc_rl.agents.training import train_agent

    out = tmp_path_factory.mktemp("agents") / "state-seed0"
    train_agent(tiny_config("gmc_rl/PendulumSound-v0", ["state"]), "state", 0, out, progress_bar=False)
    return out


@pytest.mark.parametrize("out", ["cmp", None])
def test_a_second_evaluate_on_the_same_out_is_refused(tiny_agent, tmp_path, capsys, out):
    from gmc_rl.cli import main

    target = tmp_path / out if out else tiny_agent / "robustness"
    argv = ["evaluate", "--agent", str(tiny_agent), "--episodes", "1", "--conditions", "complete", "--no-progress"]
    argv += ["--out", str(target)] if out else []
    with directory_lock(target, "results directory"):
        assert main(argv) == 2
    assert f"gmc-rl evaluate: error: results directory {target} is in use by process" in capsys.readouterr().err
    assert not (target / "results.json").exists()
    assert main(argv) == 0  # released
    assert (target / "results.json").is_file()


def test_a_second_report_on_the_same_out_is_refused(tmp_path, capsys):
    from helpers import fake_run

    from gmc_rl.cli import main

    run = fake_run(tmp_path / "run", "gmc-seed0", [-1.0, -2.0])
    with directory_lock(tmp_path / "cmp", "results directory"):
        assert main(["report", str(run), "--out", str(tmp_path / "cmp")]) == 2
    assert f"results directory {tmp_path / 'cmp'} is in use by process" in capsys.readouterr().err
    assert not (tmp_path / "cmp" / "results.json").exists()
    assert main(["report", str(run), "--out", str(tmp_path / "cmp")]) == 0


def _wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_a_killed_holder_releases_the_lock(tmp_path):
    script = f"from gmc_rl.locking import directory_lock\nimport time\nwith directory_lock({str(tmp_path)!r}):\n" \
             f"    open({str(tmp_path / 'ready')!r}, 'w').close()\n    time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert _wait_for((tmp_path / "ready").exists)
        with pytest.raises(ConfigError, match=f"process {holder.pid}"):
            with directory_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with directory_lock(tmp_path):
        pass


# --- stage workers do not outlive the pipeline --------------------------------------------------------------------

WORKER_SCRIPT = """
import json, os, sys, time
from functools import partial
from pathlib import Path
from gmc_rl.cli import _interrupt
from gmc_rl.stages import Stage, Task, run_tasks
import signal

def slow(path, *, resume, progress):
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    run = Path(sys.argv[1])
    tasks = [Task(Stage(run, name, run / name, {}), name, partial(slow, run / name)) for name in ("a", "b")]
    run_tasks(tasks, jobs=2, log=lambda _: None)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and sends POSIX signals")
@pytest.mark.parametrize("parent_signal", [signal.SIGTERM, signal.SIGKILL])
def test_stage_workers_stop_when_the_pipeline_is_killed(tmp_path, parent_signal):
    module = tmp_path / "slow_stages.py"
    module.write_text(textwrap.dedent(WORKER_SCRIPT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(module), str(tmp_path / "run")], env=env)
    try:
        outputs = [tmp_path / "run" / name for name in ("a", "b")]
        assert _wait_for(lambda: all(p.exists() and p.read_text() for p in outputs), 120)
        workers = [int(p.read_text()) for p in outputs]
        parent.send_signal(parent_signal)
        parent.wait(timeout=60)
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 45), "stage workers outlived the pipeline"
    finally:
        parent.kill()
        parent.wait()


def test_an_agent_run_that_stopped_before_its_first_record_is_started_again_without_resume(tmp_path):
    from gmc_rl.agents.training import train_agent

    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"])
    out = tmp_path / "agent"
    (out / "tb").mkdir(parents=True)  # what a run killed while building its buffer leaves behind
    (out / "checkpoints").mkdir()
    train_agent(config, "state", 0, out, progress_bar=False)
    assert (out / "agent.zip").is_file()
    with pytest.raises(ConfigError, match="not empty; pass resume=True"):  # a finished agent is not overwritten
        train_agent(config, "state", 0, out, progress_bar=False)


def test_an_env_that_refuses_its_kwargs_is_one_config_error_on_the_command_line(tmp_path, capsys):
    from gmc_rl.cli import main

    code = main(["pipeline", "--env-kwargs", '{"image_size": 100000}', "--out", str(tmp_path / "run")])
    assert code == 2
    assert "config key 'env_kwargs': cannot make 'gmc_rl/PendulumSound-v0'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# --- checkpoint rotation deletes only gmc-rl's checkpoints -----------------------------------------------------------

USER_FOLDERS = ("step_100_mybackup", "step_old", "step_", "step_12a", "Step_5", "step_-3", "my_step_7")


def _user_folders(checkpoints: Path) -> None:
    """A user's folders beside gmc-rl's checkpoints: names that start like one, and a step_<N> with notes in it."""
    for name in (*USER_FOLDERS, "step_1"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "notes.txt").write_text("mine")
    (checkpoints / "step_1" / "model.zip").write_bytes(b"a model the user keeps beside notes")
    (checkpoints / "elsewhere").mkdir()
    (checkpoints / "elsewhere" / "model.zip").write_bytes(b"reached through a symlink")
    (checkpoints / "step_2").symlink_to(checkpoints / "elsewhere", target_is_directory=True)


def _assert_user_folders_kept(checkpoints: Path) -> None:
    for name in (*USER_FOLDERS, "step_1"):
        assert (checkpoints / name / "notes.txt").read_text() == "mine", name
    assert (checkpoints / "step_1" / "model.zip").is_file()
    assert (checkpoints / "step_2").is_symlink() and (checkpoints / "elsewhere" / "model.zip").is_file()


def test_checkpoint_rotation_deletes_only_the_checkpoints_it_wrote(tmp_path):
    from stable_baselines3 import PPO

    from gmc_rl.agents.checkpoints import latest_checkpoint, save_checkpoint

    checkpoints = tmp_path / "checkpoints"
    _user_folders(checkpoints)
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu")
    for step in (10, 20, 30):
        model.num_timesteps = step
        save_checkpoint(model, checkpoints)
    (checkpoints / "step_3").mkdir()  # an interrupted save left a temporary file: still gmc-rl's own
    (checkpoints / "step_3" / ".tmp-model.zip.abc").write_bytes(b"partial")
    model.num_timesteps = 40
    save_checkpoint(model, checkpoints)
    assert latest_checkpoint(checkpoints)["path"] == "step_40"
    assert not any((checkpoints / f"step_{n}").exists() for n in (3, 10, 20, 30))
    _assert_user_folders_kept(checkpoints)


def test_training_with_checkpoints_keeps_a_users_folders_in_checkpoints(tmp_path):
    from gmc_rl.agents.training import train_agent

    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"], agent={"checkpoint_freq": 50})
    out = tmp_path / "agent"
    _user_folders(out / "checkpoints")
    train_agent(config, "state", 0, out, progress_bar=False)
    assert (out / "agent.zip").is_file()
    _assert_user_folders_kept(out / "checkpoints")
    steps = sorted(p.name for p in (out / "checkpoints").iterdir() if re.fullmatch(r"step_\d+", p.name))
    assert steps == ["step_1", "step_150", "step_2"]  # the user's two, and the last of step_50, 100, 150
