"""The Ray backend of the stage runner: every task of the pipeline as a Ray task, on one machine or a cluster.

:func:`gmc_rl.backends.run_tasks` calls :func:`run_tasks_ray` for ``backend="ray"`` (``gmc-rl pipeline --backend
ray [--address ADDRESS]``). Ray is an optional dependency (``pip install -e ".[ray]"``); this module imports it
only when a run asks for it, so the rest of gmc-rl never needs it.

What stays as with the local process pool (:func:`gmc_rl.stages._run_parallel`):

- This process (the driver) decides what runs: it skips finished stages, calls :meth:`Stage.begin` before a task
  is submitted and :meth:`Stage.finish` after it returned, so only the driver writes done-markers, a rerun skips
  what is done and resumes what was interrupted, and ``--update`` works unchanged.
- A task is submitted as soon as the tasks it waits for are done.
- On a failure no new task is submitted, the running ones finish and are marked done, and the first error is
  raised (the stage's own exception, not Ray's wrapper).

What Ray adds:

- Resources. Each task asks for ``worker_threads(jobs)`` CPUs (the local runner's share: the driver's CPUs
  divided by ``jobs``, at least one) and runs torch with that many threads, so ``--backend ray --jobs N`` gives
  the same numbers as ``--backend local --jobs N`` on the same machine. A training or pretraining stage whose
  device is ``cuda`` or ``auto`` asks for :data:`GPU_SHARE` of a GPU when the cluster has GPUs (Ray then shows the
  task its GPU as ``cuda:0``); collection and evaluation always run on the CPU. The driver keeps at most as many
  tasks in flight as the cluster's CPUs hold, so "running" in the log means running, not queued.
- Retries. A task whose worker process or node dies is retried by Ray up to :data:`MAX_RETRIES` times; the retry
  resumes the output the lost attempt left (writes are atomic, so that output is whole). A task lost on every
  attempt fails the run with a :class:`WorkerLostError` (one line: rerun to resume), as a lost worker of the local
  runner does. A task that raises is not retried (``retry_exceptions=False``): a bad config fails the run once,
  with its message.
- Storage. Every worker must see the run directory at the same path (a shared filesystem). The driver writes a
  probe file with a random token into ``RUN_DIR/stages/`` before it submits anything, and every task checks it
  before it touches the run directory; a node that cannot read it fails the run with a clear error instead of
  writing results onto its own local disk.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gmc_rl import stages
from gmc_rl.config import ExperimentConfig
from gmc_rl.errors import ConfigError
from gmc_rl.io import read_json, write_json_atomic
from gmc_rl.stage_files import STAGES_DIR
from gmc_rl.stages import Log, Task, progress_file, worker_threads

INSTALL_HINT = 'pip install -e ".[ray]"'
GPU_SHARE = 0.25
"""Fraction of a GPU that a stage computing on ``cuda``/``auto`` asks for: gmc-rl's encoders and SB3 policies are
small, so four stages share one GPU."""
MAX_RETRIES = 2
"""How often Ray reruns a task whose worker process or node died (never for an exception the stage raised)."""
PROBE_FILE = "ray-probe.json"
"""In ``RUN_DIR/stages/``: written by the driver, read by every task to prove that it sees the run directory."""
WAIT_SECONDS = 0.5
"""How long the driver waits for a task to end at a time; between waits it handles signals and the heartbeat."""
CONNECT_TIMEOUT_SECONDS = 5.0
"""How long the driver tries to reach a cluster's ``HOST:PORT`` before it gives up with an error."""
CANCEL_GRACE_SECONDS = 30.0
"""After Ctrl-C, how long the running tasks get to stop (saving a checkpoint) before they are killed."""


def require_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (one line, with the command that installs it).
    """
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def stage_device(task: Task) -> str:
    """The device a pipeline task computes on, to decide whether it asks Ray for a GPU.

    Training stages (``train_*``) use ``agent.device`` and encoder pretraining stages ``pretrain.device`` of the
    experiment config that their work function receives; collection, evaluation and the action fit (agents are
    loaded on the CPU) and any task without a config run on the CPU.
    """
    arguments = getattr(task.work, "args", ())
    config = next((value for value in arguments if isinstance(value, ExperimentConfig)), None)
    name = task.stage.name
    if config is None or name == "collect" or name.startswith(("evaluate_", "action_fit_")):
        return "cpu"
    return config.agent.device if name.startswith("train_") else config.pretrain.device


def task_resources(task: Task, cpus: int, cluster_has_gpu: bool) -> dict[str, float]:
    """``num_cpus`` and ``num_gpus`` of a task: ``cpus`` CPUs, and :data:`GPU_SHARE` of a GPU when its device is
    ``cuda[:N]`` or ``auto`` and the cluster has a GPU."""
    wants_gpu = cluster_has_gpu and (stage_device(task) == "auto" or stage_device(task).startswith("cuda"))
    return {"num_cpus": cpus, "num_gpus": GPU_SHARE if wants_gpu else 0}


def check_run_dir_visible(probe: str, token: str, run_dir: str) -> None:
    """Raise unless this process reads the driver's probe file with the driver's token (see the module).

    Raises:
        ConfigError: the run directory is not the driver's one here (not on a shared filesystem).
    """
    try:
        seen = read_json(probe, "Ray probe file").get("token")
    except (OSError, ValueError, AttributeError):
        seen = None
    if seen != token:
        raise ConfigError(f"run directory {run_dir} is not visible on node {socket.gethostname()}: put it on a "
                          "shared filesystem mounted at the same path on every Ray node")


def _ray_stage(work: Callable[..., Any], resume: bool, resumable: bool, output: str, progress: str, probe: str,
               token: str, run_dir: str, threads: int, env_specs: list[Any]) -> tuple[str, float]:
    """The body of one Ray task: check the storage, set up the worker like the local runner's, run the stage.

    Returns (this node's hostname, the stage's seconds).
    """
    check_run_dir_visible(probe, token, run_dir)
    import gymnasium as gym
    import torch

    torch.set_num_threads(threads)
    if threading.current_thread() is threading.main_thread():
        # ray.cancel stops a task with a KeyboardInterrupt (training then saves a checkpoint), which Python only
        # raises where SIGINT is handled: a run started in the background (`cmd &`, nohup) ignores it otherwise.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for spec in env_specs:  # envs the driver registered that this fresh worker may lack (as the local runner)
        if spec.id not in gym.registry:
            gym.registry[spec.id] = spec
    path = Path(output)
    if path.exists():
        # The driver's Stage.begin removed any output it did not mean to resume, so output here was left by an
        # earlier attempt of this very task that Ray retries: continue it, or start over if the stage cannot.
        if resumable:
            resume = True
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    seconds = stages._run_task(work, resume, progress)
    return socket.gethostname(), seconds


def connect_ray(address: str | None, log: Log = print) -> bool:
    """Start a local Ray instance or join the cluster at ``address``; return whether this call started Ray.

    A Ray session this process already holds (``ray.init`` called by the user or a test) is used as it is. A local
    instance gets every CPU this process may use, and its workers this process's ``sys.path`` (as the local
    runner's spawned workers do), so an env registered from a script's own module can be made there too.

    Raises:
        ConfigError: Ray is missing, or the cluster at ``address`` cannot be reached.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    with _keep_signal_handlers():
        _init(ray, address, log)
    return True


@contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """Restore this process's SIGINT and SIGTERM handlers after the block.

    ``ray.init`` installs Ray's own SIGTERM handler, which ends the process at once; gmc-rl's command line turns
    SIGTERM into KeyboardInterrupt instead, so that the runner cancels its Ray tasks (a training stage then saves a
    checkpoint) before it stops.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            if handler is not None:
                signal.signal(number, handler)


def _init(ray: Any, address: str | None, log: Log) -> None:
    """``ray.init`` for a local instance (``address`` None) or the cluster at ``address``, and a line saying which."""
    if address is None:
        path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
        # address="local": always a new instance, even where `ray start` runs a cluster that ray.init() would join.
        ray.init(address="local", num_cpus=stages.usable_cpus(), include_dashboard=False,
                 logging_level=logging.WARNING, runtime_env={"env_vars": {"PYTHONPATH": path}})
        log(f"Ray: started a local instance with {stages.usable_cpus()} CPUs")
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as exc:
            raise ConfigError(f"cannot join the Ray cluster at {address}: {exc}") from exc
        resources = ray.cluster_resources()
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        log(f"Ray: joined the cluster at {address}: {nodes} node(s), {resources.get('CPU', 0):.0f} CPUs, "
            f"{resources.get('GPU', 0):.0f} GPUs")


def _check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` address where nothing listens, at once: ``ray.init`` would retry it for minutes.

    Other forms (``auto``, ``ray://...``) are left to Ray.

    Raises:
        ConfigError: no connection to ``HOST:PORT`` within :data:`CONNECT_TIMEOUT_SECONDS`.
    """
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it there with "
                          "`ray start --head`, or check --address") from None


def _write_probes(tasks: Sequence[Task]) -> dict[Path, tuple[Path, str]]:
    """Write a probe file with a fresh token into each run directory of ``tasks``: ``{run_dir: (probe, token)}``."""
    probes = {}
    for run_dir in {task.stage.run_dir for task in tasks}:
        token = uuid.uuid4().hex
        probe = run_dir / STAGES_DIR / PROBE_FILE
        write_json_atomic(probe, {"token": token, "driver": socket.gethostname()})
        probes[run_dir] = (probe, token)
    return probes


LOST_ERRORS = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError")
"""The ``ray.exceptions`` that say a task's worker process or node died (Ray raises them once it no longer retries)."""


def _stage_error(ray: Any, task: Task, exc: BaseException) -> BaseException:
    """The run's error for a task that failed with ``exc``.

    The exception the stage itself raised, unwrapped from Ray's ``RayTaskError``; a task whose worker process or
    node died more often than Ray retries it, a :class:`WorkerLostError` (one line that says a rerun resumes, as
    the local runner's lost worker: the command line prints it without a traceback); other errors (a cancelled
    task) as they are.
    """
    lost = tuple(getattr(ray.exceptions, name) for name in LOST_ERRORS if hasattr(ray.exceptions, name))
    if isinstance(exc, lost):
        return stages.worker_lost(task, "Ray worker", f"Ray's {type(exc).__name__}: its process was killed or ran out "
                                  f"of memory, or its node was lost; Ray gave up after {MAX_RETRIES + 1} attempt(s)")
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def run_tasks_ray(tasks: Sequence[Task], jobs: int, log: Log, address: str | None = None) -> None:
    """Run every task whose stage is not done as a Ray task (see the module); raise the first stage's error.

    Args:
        tasks: the tasks, their ``after`` names already checked by :func:`gmc_rl.stages.check_tasks`.
        jobs: sets each task's CPUs (and torch threads) to ``worker_threads(jobs)``.
        log: where progress lines go.
        address: a Ray cluster to join (``ray start --head`` printed it); None starts a local instance.

    Raises:
        ConfigError: Ray is missing, the cluster cannot be reached, or a node does not see the run directory.
    """
    ray = require_ray()
    started = connect_ray(address, log)
    try:
        _run(ray, list(tasks), jobs, log)
    finally:
        if started:
            ray.shutdown()


def _run(ray: Any, tasks: list[Task], jobs: int, log: Log) -> None:
    import gymnasium as gym

    env_specs = ray.put([spec for spec in gym.registry.values() if stages._picklable(spec)])
    threads = worker_threads(jobs)
    resources = ray.cluster_resources()
    limit = max(1, int(resources.get("CPU", 1) // threads))
    has_gpu = resources.get("GPU", 0) > 0
    remote = ray.remote(_ray_stage)
    probes = _write_probes(tasks)
    done: set[str] = set()
    running: dict[Any, tuple[Task, float]] = {}  # ObjectRef -> (task, start time)
    error: BaseException | None = None
    quiet_since = time.perf_counter()  # when a task last ended or the running ones were last listed
    try:
        while tasks or running:
            while error is None and len(running) < limit:
                task = stages.next_ready_task(tasks, done, log)
                if task is None:
                    break
                need = task_resources(task, threads, has_gpu)
                resume = task.stage.begin(task.resumable)
                gpu = f", {need['num_gpus']:g} GPU" if need["num_gpus"] else ""
                log(f"[{task.label}] {'resuming' if resume else 'running'} -> "
                    f"{task.stage.output.relative_to(task.stage.run_dir)} (Ray task: {threads} CPU{gpu})")
                progress = progress_file(task.stage)
                progress.unlink(missing_ok=True)
                probe, token = probes[task.stage.run_dir]
                ref = remote.options(**need, max_retries=MAX_RETRIES, retry_exceptions=False).remote(
                    task.work, resume, task.resumable, str(task.stage.output), str(progress), str(probe), token,
                    str(task.stage.run_dir), threads, env_specs)
                running[ref] = (task, time.perf_counter())
            if not running:
                stages.check_progress(tasks, error)
                break
            # Short waits: a signal (Ctrl-C, SIGTERM) is only handled between them, not inside ray.wait.
            finished, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_SECONDS)
            if not finished:
                if time.perf_counter() - quiet_since >= stages.HEARTBEAT_SECONDS:
                    log(stages._running_line(running))
                    quiet_since = time.perf_counter()
                continue
            quiet_since = time.perf_counter()
            for ref in finished:
                task, _ = running.pop(ref)
                try:
                    node, seconds = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 (re-raised below once the running tasks end)
                    error = stages.task_failed(task, _stage_error(ray, task, exc), error, len(running), log)
                    continue
                stages.task_done(task, seconds, done, log, where=f" on {node}")
    except BaseException:
        # Interrupted (Ctrl-C, or SIGTERM, which the CLI turns into KeyboardInterrupt): stop the running tasks;
        # their stages stay marked as running and a rerun resumes them.
        _cancel(ray, list(running))
        raise
    finally:
        for probe, _ in probes.values():
            probe.unlink(missing_ok=True)
    if error is not None:
        raise error


def _cancel(ray: Any, refs: list[Any], grace: float = CANCEL_GRACE_SECONDS) -> None:
    """Stop running Ray tasks: first a KeyboardInterrupt in each (a training stage saves a checkpoint, as on
    Ctrl-C), then, for those still running after ``grace`` seconds, their worker processes are killed."""
    for ref in refs:
        ray.cancel(ref)
    if not refs:
        return
    _, left = ray.wait(refs, num_returns=len(refs), timeout=grace)
    for ref in left:
        ray.cancel(ref, force=True)
