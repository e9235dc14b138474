"""A Ray cluster that loses a node, a worker or its driver: ``gmc-rl pipeline --backend ray`` on several nodes.

The cluster is Ray's own multi-node test cluster on this machine (``ray.cluster_utils.Cluster``): a head node with no
CPUs (it runs no stage, only the driver's connection) and worker nodes of one CPU each, all sharing this machine's
filesystem as the nodes of a real cluster share a network filesystem. With one worker node at a time the test knows
where a stage runs, waits for a real mid-stage moment (a pretraining or training checkpoint on disk), kills every
process of that node with SIGKILL (as a machine that is switched off) and, since the cluster then has no CPU left,
adds a replacement node that Ray's retry runs on. What each test compares with an uninterrupted run is what
the project guarantees (docs/scale_out.md, "When a node, a worker or the driver is lost").

Every stage asks for one CPU: the runs use ``jobs = usable_cpus()``, so ``worker_threads(jobs)`` is 1 on any
machine, as are the nodes' CPUs, and the uninterrupted reference run computes with the same single torch thread.

Slow (about 3 minutes in all on 2 cores): deselected by default, run with ``python -m pytest -m slow
tests/test_ray_cluster.py`` (as .ci/run does). Skipped where Ray is not installed or the system has no ``/proc``
(where the tests find a node's processes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import check_results, same_tensors, stamp_task, tiny_config

from gmc_rl.config import ExperimentConfig, to_dict
from gmc_rl.errors import ConfigError, WorkerLostError
from gmc_rl.stage_files import STAGES_DIR
from gmc_rl.stages import usable_cpus

pytestmark = pytest.mark.slow

ENV_ID = "gmc_rl/PendulumSound-v0"
CONDITIONS = ["complete", "image", "sound", "dropout:0.5"]
JOBS = usable_cpus()
"""One CPU (and one torch thread) per stage, on any machine: the worker nodes have one CPU each."""
GMC_CONFIG = tiny_config(ENV_ID, ["gmc"], pretrain={"epochs": 3, "modality_fit_epochs": 1})
"""Collect, pretrain GMC (three epochs, a checkpoint after each, and one epoch of modality fit), train, action fit,
evaluate, report."""
GMC_STAGES = ["collect", "pretrain", "train_gmc-seed0", "action_fit_gmc-seed0", "evaluate_gmc-seed0", "report"]
STATE_CONFIG = tiny_config(ENV_ID, ["state"], agent={"total_timesteps": 400, "checkpoint_freq": 100})
"""Train a true-state SAC agent (400 steps, a checkpoint every 100; it needs no dataset), evaluate, report."""
TIMING_KEYS = ("train_seconds", "perf/samples_per_s")
LAUNCHER = "import sys; from gmc_rl.cli import main; sys.exit(main(sys.argv[1:]))"
NODE_TIMEOUT = 300.0
"""Seconds a run may take on the cluster, and that a wait for a checkpoint may last, before the test fails."""


# ---------------------------------------------------------------------------------------------------------------
# The cluster and its nodes.


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node without CPUs, this process connected to it as the driver; shut down (every node) at the end.

    The GCS declares a node dead after 3 missed health checks 0.5 s apart (Ray's default: 5 missed checks 3 s apart),
    so a lost node's task is retried within seconds; only the time to notice the loss changes.
    """
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc: the tests find a node's processes there")
    if ray.is_initialized():
        pytest.skip("this process already holds a Ray session")
    health = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 500, "health_check_timeout_ms": 2000,
              "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "_system_config": health})
    try:
        # The workers import the test helpers (the tiny envs that this process registers travel with every task).
        path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        ray.init(address=cluster.address, logging_level="WARNING", runtime_env={"env_vars": {"PYTHONPATH": path}})
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture
def node(cluster: Any) -> Iterator[Any]:
    """A worker node with one CPU; every worker node left at the end of the test is removed."""
    yield cluster.add_node(num_cpus=1)
    for left in list(cluster.worker_nodes):
        cluster.remove_node(left, allow_graceful=False)


def stage_workers(node: Any) -> list[int]:
    """The process ids of the Ray workers of ``node`` that are running a stage now (``ray::_ray_stage``)."""
    raylet = node.all_processes["raylet"][0].process.pid
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):  # the process ended while it was read
            continue
        if parent == raylet and title.startswith(b"ray::_ray_stage"):
            workers.append(int(entry.name))
    return workers


def wait_for(condition: Callable[[], bool], what: str, still_running: Callable[[], bool],
             timeout: float = NODE_TIMEOUT) -> None:
    """Poll until ``condition()``; fail if ``still_running()`` turns false (the run ended first) or on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert still_running(), f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.05)


def gone(pids: list[int], timeout: float = 30.0) -> bool:
    """Whether every process of ``pids`` has ended within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_node(cluster: Any, node: Any) -> None:
    """Kill every process of ``node`` with SIGKILL, as a machine that is switched off: its raylet and the stage's
    worker first, one right after the other, then its other Ray processes (``remove_node``); return once all ended,
    so that nothing of the node writes after this returns."""
    workers = stage_workers(node)
    assert workers, "the node runs a stage"
    for pid in [node.all_processes["raylet"][0].process.pid, *workers]:
        os.kill(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)
    assert gone(workers), f"stage worker(s) {workers} still running 30 s after SIGKILL"


class BackgroundRun:
    """``run_pipeline(..., backend="ray")`` in a thread of this process (the driver), so that the test can kill a node
    while it runs; :meth:`result` waits for it and returns its results (or raises its error)."""

    def __init__(self, config: ExperimentConfig, run_dir: Path) -> None:
        from gmc_rl.pipeline import run_pipeline

        self.log: list[str] = []
        self.outcome: dict[str, Any] = {}

        def drive() -> None:
            try:
                self.outcome["results"] = run_pipeline(config, run_dir, progress=False, log=self.log.append,
                                                       jobs=JOBS, backend="ray")
            except BaseException as exc:  # noqa: BLE001 (handed to the test's thread by result())
                self.outcome["error"] = exc

        self.thread = threading.Thread(target=drive, daemon=True)
        self.thread.start()

    def running(self) -> bool:
        return self.thread.is_alive()

    def result(self, timeout: float = NODE_TIMEOUT) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not finish within {timeout:.0f} s"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["results"]


# ---------------------------------------------------------------------------------------------------------------
# What a finished run holds, and the run it must equal.


def markers(run_dir: Path) -> dict[str, str]:
    """Every stage's status in ``run_dir/stages/`` (``{stage: status}``; the driver's probe file is not a stage)."""
    from gmc_rl.ray_backend import PROBE_FILE

    return {path.stem: json.loads(path.read_text())["status"] for path in (run_dir / STAGES_DIR).glob("*.json")
            if path.name != PROBE_FILE}


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in history]


def pretraining_history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "gmc" / "history.json").read_text())


def pretraining_checkpoint(run_dir: Path) -> dict:
    """The epoch and history of the pretraining's resume state (``gmc/last/``), as a resumed run reads them."""
    from gmc_rl.checkpoint import load_training_state

    return load_training_state(run_dir / "gmc" / "last")


def assert_same_as_uninterrupted(run_dir: Path, results: dict, reference: Path) -> None:
    """Every number of the run equals the uninterrupted run's: the report (every reward, return and statistic of
    every condition), the encoder's weights and its loss history; only timings differ."""
    check_results(results, ["gmc"], CONDITIONS)
    expected = json.loads((reference / "eval" / "results.json").read_text())
    assert results["results"] == expected["results"]
    assert same_tensors(run_dir / "gmc" / "model.safetensors", reference / "gmc" / "model.safetensors")
    assert without_timings(pretraining_history(run_dir)) == without_timings(pretraining_history(reference))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GMC_CONFIG's run without interruption, stage after stage in this process (``jobs=1``, no worker to start):
    with one torch thread, as every Ray task of these tests, it computes the same numbers."""
    from gmc_rl.pipeline import run_pipeline
    from gmc_rl.state_probe import StateProbeWarning

    assert torch.get_num_threads() == 1  # conftest.py
    run_dir = tmp_path_factory.mktemp("cluster") / "reference"
    with warnings.catch_warnings():  # three epochs of a tiny encoder are not meant to make the state readable
        warnings.simplefilter("ignore", StateProbeWarning)
        results = run_pipeline(GMC_CONFIG, run_dir, progress=False, log=lambda message: None, jobs=1)
    check_results(results, ["gmc"], CONDITIONS)
    return run_dir


# ---------------------------------------------------------------------------------------------------------------
# A worker node lost mid-stage.


def test_a_node_lost_mid_pretraining_is_retried_on_a_new_node_and_gives_the_uninterrupted_results(
        cluster, node, reference, tmp_path):
    run_dir = tmp_path / "run"
    run = BackgroundRun(GMC_CONFIG, run_dir)
    wait_for(lambda: (run_dir / "gmc" / "last" / "trainer_state.pt").is_file(), "pretraining checkpoint",
             run.running)
    kill_node(cluster, node)
    state = pretraining_checkpoint(run_dir)
    done = int(state["epoch"])
    assert 1 <= done < GMC_CONFIG.pretrain.epochs, "killed mid-pretraining"
    assert markers(run_dir)["pretrain"] == "running"
    assert run.running(), "the driver waits for Ray's retry instead of failing"

    cluster.add_node(num_cpus=1)  # the cluster has no CPU left: the retry runs on a replacement node
    results = run.result()

    assert markers(run_dir) == dict.fromkeys(GMC_STAGES, "done")
    assert_same_as_uninterrupted(run_dir, results, reference)
    # Resumed from its checkpoint, not started over: the epochs done before the kill are kept as they were written,
    # their timings included.
    assert pretraining_history(run_dir)[:done] == state["history"]
    assert "[pretrain GMC] done in" in "\n".join(run.log)


def policy_weights(agent_dir: Path) -> dict[str, torch.Tensor]:
    from gmc_rl.agents import load_agent

    return load_agent(agent_dir).model.policy.state_dict()


def test_a_node_lost_mid_training_is_retried_and_resumes_from_the_last_checkpoint(cluster, node, tmp_path):
    from gmc_rl.agents import train_agent

    run_dir = tmp_path / "run"
    agent_dir = run_dir / "agents" / "state-seed0"
    latest = agent_dir / "checkpoints" / "latest.json"

    def learning_checkpointed() -> bool:  # a checkpoint after SAC's updates began (learning_starts is 100)
        try:
            return json.loads(latest.read_text())["num_timesteps"] >= 200
        except (OSError, ValueError, KeyError):
            return False

    run = BackgroundRun(STATE_CONFIG, run_dir)
    wait_for(learning_checkpointed, "training checkpoint at step 200", run.running)
    kill_node(cluster, node)
    checkpoint = json.loads(latest.read_text())["num_timesteps"]
    assert checkpoint < STATE_CONFIG.agent.total_timesteps, "killed mid-training"
    assert markers(run_dir)["train_state-seed0"] == "running"
    killed = tmp_path / "killed_agent"
    shutil.copytree(agent_dir, killed)  # what the lost node left, for the comparison below

    cluster.add_node(num_cpus=1)
    results = run.result()

    check_results(results, ["state"], CONDITIONS)
    assert markers(run_dir) == dict.fromkeys(["train_state-seed0", "evaluate_state-seed0", "report"], "done")
    info = json.loads((agent_dir / "agent.json").read_text())
    assert info["status"] == "complete" and info["num_timesteps"] == STATE_CONFIG.agent.total_timesteps
    # The retry resumed from the checkpoint the lost node left: its agent is the one that resuming that checkpoint
    # here computes, weight for weight. (Not the uninterrupted run's agent: a resumed agent starts a fresh episode.)
    train_agent(STATE_CONFIG, "state", 0, killed, resume=True, progress_bar=False)
    resumed, here = policy_weights(agent_dir), policy_weights(killed)
    assert resumed.keys() == here.keys() and all(torch.equal(resumed[key], here[key]) for key in resumed)


def wait_then_stamp_partial(out: Path, go: Path, *, resume: bool, progress: bool) -> None:
    """Stage work that leaves partial output, waits for the file ``go``, then finishes (recording ``resume``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "partial").write_text("half")
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go} was not written within 120 s")
        time.sleep(0.05)
    (out / "done").write_text(json.dumps({"resume": resume}))


def test_a_node_lost_more_often_than_ray_retries_stops_the_run_with_one_line_and_a_rerun_resumes(
        cluster, node, tmp_path, monkeypatch):
    """When Ray gives up on a task (its node died more often than it retries), the run stops with a
    :class:`WorkerLostError` naming the stage (the CLI prints it as one line, as for a worker of the local runner),
    not with Ray's exception and traceback; the rerun resumes the stage."""
    from gmc_rl import ray_backend
    from gmc_rl.backends import run_tasks
    from gmc_rl.stages import Stage, Task

    monkeypatch.setattr(ray_backend, "MAX_RETRIES", 0)  # no retry: the first loss is Ray's last word
    go = tmp_path / "go"
    stage = Stage(tmp_path, "fragile", tmp_path / "out" / "fragile", {"name": "fragile"})
    tasks = [Task(stage, "fragile", partial(wait_then_stamp_partial, stage.output, go)),
             stamp_task(tmp_path, "after", after=("fragile",))]
    log: list[str] = []
    caught: dict[str, BaseException] = {}

    def drive() -> None:
        try:
            run_tasks(tasks, jobs=JOBS, log=log.append, backend="ray")
        except BaseException as exc:  # noqa: BLE001 (checked below)
            caught["error"] = exc

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    wait_for(lambda: bool(stage_workers(node)) and (stage.output / "partial").exists(), "running stage",
             thread.is_alive)
    kill_node(cluster, node)
    thread.join(NODE_TIMEOUT)
    assert not thread.is_alive()
    error = caught.get("error")
    assert type(error) is WorkerLostError, repr(error)
    message = str(error)
    assert "stage fragile" in message and "rerun the same command to resume" in message and "\n" not in message
    assert f"[fragile] failed: WorkerLostError: {message}" in log
    assert not stage.is_done() and not tasks[1].stage.output.exists()

    cluster.add_node(num_cpus=1)
    go.touch()
    run_tasks(tasks, jobs=JOBS, log=log.append, backend="ray")
    assert json.loads((stage.output / "done").read_text()) == {"resume": True}
    assert (stage.output / "partial").exists() and stage.is_done() and tasks[1].stage.is_done()


# ---------------------------------------------------------------------------------------------------------------
# The driver lost.


def pipeline_command(config_path: Path, run_dir: Path, address: str) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, "pipeline", "--config", str(config_path), "--out", str(run_dir),
            "--backend", "ray", "--address", address, "--jobs", str(JOBS), "--no-progress"]


def test_a_driver_killed_mid_stage_leaves_no_task_running_and_a_rerun_resumes(cluster, node, reference, tmp_path):
    """``kill -9`` of ``gmc-rl pipeline --backend ray --address ...`` while a node pretrains: Ray ends the dead
    driver's task on the node at once (so nothing races the rerun), and the rerun skips what was done, resumes the
    pretraining from its checkpoint and ends with the uninterrupted run's results."""
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(GMC_CONFIG), sort_keys=False))
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    output = tmp_path / "driver.log"
    with output.open("w") as file:
        driver = subprocess.Popen(pipeline_command(config_path, run_dir, cluster.address), env=env, stdout=file,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (run_dir / "gmc" / "last" / "trainer_state.pt").is_file(),
                 f"pretraining checkpoint (the driver's output: {output})", lambda: driver.poll() is None)
        workers = stage_workers(node)
        assert workers, "the node runs the pretraining"
        driver.send_signal(signal.SIGKILL)
        assert driver.wait(timeout=30) == -signal.SIGKILL
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert gone(workers), "the dead driver's task still runs on the node"
    state = pretraining_checkpoint(run_dir)
    done = int(state["epoch"])
    assert 1 <= done < GMC_CONFIG.pretrain.epochs and markers(run_dir)["pretrain"] == "running"

    rerun = subprocess.run(pipeline_command(config_path, run_dir, cluster.address), env=env, capture_output=True,
                           text=True, timeout=NODE_TIMEOUT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[collect] up to date, skipped" in rerun.stdout
    assert "[pretrain GMC] resuming" in rerun.stdout
    assert markers(run_dir) == dict.fromkeys(GMC_STAGES, "done")
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert_same_as_uninterrupted(run_dir, results, reference)
    assert pretraining_history(run_dir)[:done] == state["history"]


# ---------------------------------------------------------------------------------------------------------------
# A node that does not see the run directory.


def can_hide_a_directory() -> bool:
    """Whether this process may start a process in mount and process namespaces of its own and mount a tmpfs there
    (it needs CAP_SYS_ADMIN: root, as in CI): how the test builds a node with another filesystem."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_node_that_does_not_see_the_run_directory_is_refused_before_any_stage_writes(cluster, tmp_path):
    """A real second node whose filesystem differs at the run directory: ``ray start`` joins the cluster from a mount
    namespace of its own in which an empty tmpfs is mounted over the test's directory, as a machine whose local disk
    has that path but not the shared filesystem. Its only CPU takes the first stage, which refuses to start."""
    import ray

    from gmc_rl.pipeline import run_pipeline

    if not can_hide_a_directory():
        pytest.skip("cannot mount in namespaces of its own here (needs CAP_SYS_ADMIN, e.g. root)")

    def cpu_nodes() -> set[str]:
        return {entry["NodeID"] for entry in ray.nodes() if entry["Alive"] and entry["Resources"].get("CPU", 0) > 0}

    before = cpu_nodes()
    hidden = tmp_path / "shared"
    hidden.mkdir()
    run_dir = hidden / "run"
    ray_command = Path(sys.executable).with_name("ray")
    blind = (f"mount -t tmpfs gmc-rl-blind-node {hidden} && exec {ray_command} start --address={cluster.address} "
             f"--num-cpus=1 --object-store-memory={100 * 1024 * 1024} --block")
    # --pid --fork --kill-child: the node's processes live in a process namespace of their own, which ends with
    # every process in it when the unshare process is killed (no Ray process of the node can outlive the test).
    with (tmp_path / "blind_node.log").open("w") as output:
        node = subprocess.Popen(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c",
                                 blind], stdout=output, stderr=subprocess.STDOUT)
    log: list[str] = []
    try:
        # The blind node is the only node with a CPU once it has joined (a node removed before has left).
        wait_for(lambda: len(cpu_nodes()) == 1 and not cpu_nodes() & before,
                 f"blind node in the cluster (its output: {tmp_path / 'blind_node.log'})", lambda: node.poll() is None,
                 timeout=120)
        with pytest.raises(ConfigError, match=f"run directory {run_dir} is not visible on node .*: put it on a "
                                              "shared filesystem mounted at the same path on every Ray node"):
            run_pipeline(GMC_CONFIG, run_dir, progress=False, log=log.append, jobs=JOBS, backend="ray")
    finally:
        node.kill()
        node.wait(timeout=60)
    assert "[collect] running" in "\n".join(log) and "[collect] failed: ConfigError" in "\n".join(log)
    assert not any(status == "done" for status in markers(run_dir).values())
    assert not (run_dir / "data").exists() and not (run_dir / "gmc").exists(), "no stage wrote output"
    assert not (run_dir / STAGES_DIR / "ray-probe.json").exists()
