"""Tests of the Ray backend of the stage runner (gmc_rl.ray_backend, ``gmc-rl pipeline --backend ray``).

The first tests run everywhere (the clear error without Ray, the backend checks, which stages ask for a GPU); the
others run real Ray tasks on a local Ray instance and are skipped where Ray is not installed
(``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from helpers import check_results, stamp, stamp_task, tiny_config

from gmc_rl.backends import check_ray_address, run_tasks
from gmc_rl.config import ExperimentConfig, from_dict, to_dict
from gmc_rl.errors import ConfigError
from gmc_rl.stage_files import STAGES_DIR
from gmc_rl.stages import Stage, Task

ENV_ID = "gmc_rl/PendulumSound-v0"
CONDITIONS = ["complete", "image", "sound", "dropout:0.5"]


# ---------------------------------------------------------------------------------------------------------------
# Without Ray.


def test_ray_backend_without_ray_is_one_clear_error(tmp_path, monkeypatch):
    from gmc_rl.pipeline import run_pipeline

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when it is missing
    with pytest.raises(ConfigError) as caught:
        run_pipeline(tiny_config(ENV_ID, ["state"]), tmp_path / "run", progress=False, backend="ray")
    message = str(caught.value)
    assert 'pip install -e ".[ray]"' in message and "\n" not in message
    assert not (tmp_path / "run").exists(), "refused before anything is written"
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[ray\]"'):
        run_tasks([stamp_task(tmp_path, "a")], jobs=2, backend="ray")
    assert not (tmp_path / "out").exists()


def test_unknown_backend_and_address_without_ray_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'dask'"):
        run_tasks([stamp_task(tmp_path, "a")], backend="dask")
    with pytest.raises(ConfigError, match="needs --backend ray"):
        run_tasks([stamp_task(tmp_path, "a")], backend="local", address="10.0.0.1:6379")
    assert not (tmp_path / "out").exists()


def test_only_training_and_pretraining_on_cuda_or_auto_ask_for_a_gpu(tmp_path):
    from gmc_rl.pipeline import _plan
    from gmc_rl.ray_backend import GPU_SHARE, task_resources

    config = tiny_config(ENV_ID, ["gmc", "state"], pretrain={"device": "auto"}, agent={"device": "cuda"})
    tasks, _, _ = _plan(config, tmp_path, CONDITIONS)
    gpu = {task.stage.name: task_resources(task, 3, cluster_has_gpu=True)["num_gpus"] for task in tasks}
    assert gpu == {"collect": 0, "pretrain": GPU_SHARE, "train_gmc-seed0": GPU_SHARE, "train_state-seed0": GPU_SHARE,
                   "action_fit_gmc-seed0": 0, "evaluate_gmc-seed0": 0, "evaluate_state-seed0": 0}
    assert all(task_resources(task, 3, cluster_has_gpu=False) == {"num_cpus": 3, "num_gpus": 0} for task in tasks)
    data = to_dict(config)
    data["agent"]["device"] = "cpu"
    cpu_tasks, _, _ = _plan(from_dict(ExperimentConfig, data), tmp_path, CONDITIONS)
    assert [t.stage.name for t in cpu_tasks if task_resources(t, 1, True)["num_gpus"]] == ["pretrain"]


# ---------------------------------------------------------------------------------------------------------------
# With Ray: real Ray tasks on a local instance.


def per_step_means(results: dict) -> dict[tuple[str, str], float]:
    return {(method, condition): summary["per_step_reward"]["mean"]
            for method, row in results["results"].items() for condition, summary in row.items()}


def test_tiny_pipeline_on_ray_matches_the_local_runner_and_a_rerun_skips_everything(tmp_path):
    pytest.importorskip("ray")
    from gmc_rl.pipeline import run_pipeline

    config = tiny_config(ENV_ID, ["gmc", "state"])
    # The same jobs give both runners the same torch threads per stage (one each on 2 cores), so the numbers
    # must be equal, not just close.
    local = run_pipeline(config, tmp_path / "local", progress=False, log=lambda message: None, jobs=2)
    log: list[str] = []
    on_ray = run_pipeline(config, tmp_path / "ray", progress=False, log=log.append, jobs=2, backend="ray")
    check_results(on_ray, ["gmc", "state"], CONDITIONS)
    assert per_step_means(on_ray) == per_step_means(local)
    text = "\n".join(log)
    assert "Ray: started a local instance" in text
    assert "[train gmc-seed0] done in" in text and f"s on {socket.gethostname()}" in text
    # The true-state agent needs no encoder, so it starts before GMC pretraining is done, as with the local runner.
    assert text.index("[train state-seed0] running") < text.index("[pretrain GMC] done")
    stages_dir = tmp_path / "ray" / STAGES_DIR
    assert not (stages_dir / "ray-probe.json").exists(), "the probe file is removed after the run"
    markers = [json.loads(path.read_text()) for path in stages_dir.glob("*.json")]
    assert len(markers) == 8 and all(marker["status"] == "done" for marker in markers)  # 7 + the action fit

    log.clear()
    again = run_pipeline(config, tmp_path / "ray", progress=False, log=log.append, jobs=2, backend="ray")
    assert not any("] running" in line or "] resuming" in line for line in log)
    assert sum("up to date, skipped" in line for line in log) == 8
    assert per_step_means(again) == per_step_means(on_ray)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the runner tests below (run_tasks uses a session this process holds)."""
    ray = pytest.importorskip("ray")
    from gmc_rl.ray_backend import connect_ray

    assert connect_ray(None, log=lambda message: None), "a local instance of its own"
    yield ray
    ray.shutdown()


def test_an_address_where_no_cluster_listens_is_refused_at_once(tmp_path):
    pytest.importorskip("ray")
    from gmc_rl.pipeline import run_pipeline

    with socket.socket() as unused:  # a free port: nothing listens on it once this socket is closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        run_pipeline(tiny_config(ENV_ID, ["state"]), tmp_path / "run", progress=False, log=lambda message: None,
                     backend="ray", address=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "run" / STAGES_DIR).exists(), "no stage was started"


def count_then_fail(attempts: Path, *, resume: bool, progress: bool) -> None:
    """Stage work that records each attempt, then raises the error of a bad setting."""
    with attempts.open("a") as file:
        file.write("attempt\n")
    raise ConfigError("agent.hyperparams: SAC got an unexpected keyword 'learning_rte'")


def test_a_stage_that_raises_fails_the_run_once_with_its_message(tmp_path, ray_session, monkeypatch):
    from gmc_rl import stages

    monkeypatch.setattr(stages, "HEARTBEAT_SECONDS", 0.3)
    attempts = tmp_path / "attempts.txt"
    broken = Stage(tmp_path, "broken", tmp_path / "out" / "broken.json", {"name": "broken"})
    tasks = [stamp_task(tmp_path, "slow", delay=2.0),
             Task(broken, "broken", partial(count_then_fail, attempts)),
             stamp_task(tmp_path, "after_broken", after=("broken",))]
    log: list[str] = []
    with pytest.raises(ConfigError, match="unexpected keyword 'learning_rte'") as caught:
        run_tasks(tasks, jobs=2, log=log.append, backend="ray")
    assert type(caught.value) is ConfigError, "the stage's own exception, not Ray's wrapper"
    assert attempts.read_text().count("attempt") == 1, "an error the stage raises is not retried"
    assert tasks[0].stage.is_done(), "the stage running beside the failure is finished and kept"
    assert not broken.is_done() and not tasks[2].stage.output.exists()
    text = "\n".join(log)
    assert "[broken] failed: ConfigError: agent.hyperparams" in text
    assert "still running: slow" in text
    assert stamp(tmp_path, "slow")["pid"] != os.getpid()


def die_once(attempts: Path, out_dir: Path, *, resume: bool, progress: bool) -> None:
    """Stage work whose first attempt leaves partial output and kills its worker process (as a lost node would);
    the next attempt records the resume flag it got and finishes."""
    with attempts.open("a") as file:
        file.write(f"resume={resume}\n")
    out_dir.mkdir(parents=True, exist_ok=True)
    if attempts.read_text().count("resume=") == 1:
        (out_dir / "partial").write_text("half")
        os._exit(1)
    (out_dir / "done").write_text("whole")


def test_a_worker_that_dies_is_retried_and_resumes_what_it_left(tmp_path, ray_session):
    attempts = tmp_path / "attempts.txt"
    stage = Stage(tmp_path, "fragile", tmp_path / "out" / "fragile", {"name": "fragile"})
    log: list[str] = []
    run_tasks([Task(stage, "fragile", partial(die_once, attempts, stage.output))], jobs=2, log=log.append,
              backend="ray")
    assert attempts.read_text().splitlines() == ["resume=False", "resume=True"]
    assert stage.is_done() and (stage.output / "partial").exists() and (stage.output / "done").exists()


def always_die(attempts: Path, *, resume: bool, progress: bool) -> None:
    """Stage work whose every attempt kills its worker process."""
    with attempts.open("a") as file:
        file.write("attempt\n")
    os._exit(1)


def test_a_worker_lost_on_every_attempt_fails_the_run_with_one_line_that_says_rerun(tmp_path, ray_session,
                                                                                      monkeypatch):
    """Once Ray stops retrying, the run fails as with a lost worker of the local runner: a WorkerLostError naming the
    stage (the command line prints it as one line), not Ray's WorkerCrashedError and its traceback."""
    from gmc_rl import ray_backend
    from gmc_rl.errors import WorkerLostError

    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 1)
    attempts = tmp_path / "attempts.txt"
    stage = Stage(tmp_path, "doomed", tmp_path / "out" / "doomed", {"name": "doomed"})
    log: list[str] = []
    with pytest.raises(WorkerLostError) as caught:
        run_tasks([Task(stage, "doomed", partial(always_die, attempts))], jobs=2, log=log.append, backend="ray")
    message = str(caught.value)
    assert message.startswith("the Ray worker running stage doomed died before the stage finished (Ray's ")
    assert "gave up after 2 attempt(s)" in message and message.endswith("rerun the same command to resume")
    assert "\n" not in message and f"[doomed] failed: WorkerLostError: {message}" in log
    assert attempts.read_text().count("attempt") == 2 and not stage.is_done()


def hide_probe(run_dir: Path, *, resume: bool, progress: bool) -> None:
    """Stage work that removes the driver's probe file, so later tasks see the run directory as a node without the
    shared filesystem would: without the driver's file."""
    (run_dir / STAGES_DIR / "ray-probe.json").unlink()


def test_a_node_that_does_not_see_the_run_directory_fails_with_a_clear_error(tmp_path, ray_session):
    hider = Stage(tmp_path, "hider", tmp_path / "out" / "hider", {"name": "hider"})
    tasks = [Task(hider, "hider", partial(hide_probe, tmp_path), resumable=False),
             stamp_task(tmp_path, "writer", after=("hider",))]
    with pytest.raises(ConfigError, match=f"run directory {tmp_path} is not visible on node "
                                          f"{socket.gethostname()}: put it on a shared filesystem"):
        run_tasks(tasks, jobs=2, log=lambda message: None, backend="ray")
    assert not tasks[1].stage.output.exists(), "nothing is written by a task that does not see the run directory"


def test_sigterm_stops_the_ray_tasks_and_a_rerun_resumes_them(tmp_path):
    """``kill`` of ``gmc-rl pipeline --backend ray``: the Ray tasks get a KeyboardInterrupt (training saves a
    checkpoint), the command ends at once with code 130, and the rerun resumes the interrupted stages."""
    pytest.importorskip("ray")
    import yaml

    from gmc_rl.pipeline import run_pipeline

    config = tiny_config(ENV_ID, ["state"], agent={"total_timesteps": 1500, "checkpoint_freq": 100})
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    run_dir = tmp_path / "run"
    launcher = "import sys; from gmc_rl.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", launcher, "pipeline", "--config", str(config_path), "--out",
                                str(run_dir), "--backend", "ray", "--jobs", "2", "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "agents" / "state-seed0" / "checkpoints" / "latest.json").exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert process.wait(timeout=60) == 130
        # Well within the 30 s that a task which ignores the interrupt would be given before it is killed.
        assert time.monotonic() - stopped < 25
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    marker = json.loads((run_dir / STAGES_DIR / "train_state-seed0.json").read_text())
    assert marker["status"] == "running"
    log: list[str] = []
    results = run_pipeline(config, run_dir, progress=False, log=log.append, jobs=2, backend="ray")
    check_results(results, ["state"], CONDITIONS)
    assert "[train state-seed0] resuming" in "\n".join(log)


@pytest.mark.parametrize("address", ["not a host:!!", "host", "host:0", "host:99999", "", ":6379", "http://h:1",
                                     "h:12 ", "ray://", "head:6379/path"])
def test_an_address_that_names_no_cluster_is_refused_before_anything_is_written(tmp_path, address, capsys):
    """Before, Ray's own ValueError came as a traceback after the run directory had been written."""
    from gmc_rl.cli import main

    run = tmp_path / "run"
    assert main(["pipeline", "--backend", "ray", "--address", address, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    refusal = "flag --address is given an empty value" if not address else \
        f"--address {address!r} is not a Ray cluster address"  # an empty value is refused for every flag alike
    assert err.startswith(f"gmc-rl pipeline: error: {refusal}")
    assert "\n" not in err and not run.exists()


@pytest.mark.parametrize("address", ["auto", "local", "10.0.0.1:6379", "ray://head:10001", "[::1]:6379",
                                     "head-node.cluster.local:6379"])
def test_ray_address_forms_are_accepted(address):
    check_ray_address(address)
