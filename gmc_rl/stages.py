"""Pipeline stages with done-markers, and the runner that executes them in order or several at once.

A :class:`Stage` is one output of the pipeline (a dataset, a checkpoint, an agent, an evaluation) with the hash of
everything it depends on and a done-marker ``stages/<name>.json``. A :class:`Task` pairs a stage with the function
that makes its output and the names of the tasks it waits for. :func:`run_tasks` runs a list of tasks:

- ``jobs=1``: one after the other in this process, in list order, with progress bars;
- ``jobs>1``: up to ``jobs`` tasks at once, each in its own process (``spawn``), as soon as the tasks it waits for
  are done. Each worker process gets ``cpu_count // jobs`` torch threads, so two jobs on two cores do not fight
  over them. Progress bars are off in workers; the runner prints a line when a task starts and when it ends, and
  every 30 s lists the running ones with their percentage, rate and ETA (from their progress files).

With ``backend="ray"`` the same tasks run as Ray tasks, on this machine or a cluster (:mod:`gmc_rl.ray_backend`,
imported only then).

Only this process writes done-markers, so a marker never claims a stage that did not finish. When a task fails,
no new task is started, the running ones are allowed to finish (their work is kept and marked done), and the
first error is raised. A rerun then skips what is done and resumes what was interrupted.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from gmc_rl.config import config_hash
from gmc_rl.errors import ConfigError, WorkerLostError
from gmc_rl.io import remove_path, write_json_atomic
from gmc_rl.npz_files import file_sha256
from gmc_rl.progress import PROGRESS_FILE_ENV, format_progress, read_progress
from gmc_rl.stage_files import (
    OUTDATED,
    changed_files,
    changed_message,
    marker_path,
    read_marker,
    recorded_files,
)

Log = Callable[[str], None]

NOT_FINISHED = "not finished with these inputs"
""":meth:`Stage.why_not_done` of a stage that never finished with the current inputs (no rerun to explain)."""

HEARTBEAT_SECONDS = 30.0
"""With ``jobs > 1``, how often the runner lists the stages still running with their progress (workers show no
progress bars; each writes its progress to ``stages/<stage>.progress.json``, :mod:`gmc_rl.progress`)."""


class Stage:
    """One step of the pipeline: its output path, the hash of everything it depends on, and its done-marker.

    The marker ``stages/<name>.json`` says ``{"hash": ..., "status": "running" | "done"}``. A stage is done when
    the marker is "done" with the current hash, its output is whole and the stages it waits for are the very runs
    it was made from; a "running" marker with the current hash means an interrupted attempt that can be resumed.

    "Whole": ``needs`` names the files (or folders: every file in them) of the output that later stages read (an
    agent's ``agent.zip``, the data's ``val.npz``); a finished marker records each with its SHA-256. One that is
    gone makes the stage run again; one whose bytes changed (another command wrote it, or it was edited) is refused
    by :meth:`check_unchanged`, since gmc-rl overwrites only what it wrote. Logs, plots and resume points are not
    needed by anyone: deleting them keeps the stage done. "The very runs": each finished marker carries a new
    ``token`` and the tokens of the stages it waited for (``after``); when one of those ran again (its output had
    been deleted, say), the stages made from the old one run again too.
    """

    def __init__(self, run_dir: Path, name: str, output: Path, inputs: Any, needs: Sequence[Path] = ()) -> None:
        self.run_dir = run_dir
        self.name = name
        self.output = output
        self.hash = config_hash(inputs)
        self.marker = marker_path(run_dir, name)
        self.needs = [str(Path(path).relative_to(run_dir)) for path in needs]

    def _marker(self) -> dict[str, Any]:
        """The marker's content if it is a marker of this stage and output; {} if it is missing or unreadable."""
        data = read_marker(self.marker)
        if data.get("stage") != self.name or data.get("output") != str(self.output.relative_to(self.run_dir)):
            return {}
        return data

    def is_done(self, after: Sequence[str] | None = None) -> bool:
        """True if the marker is "done" with this stage's hash, the output is whole, and the stages ``after``
        (the names of the stages this one waits for; None: not checked) are those it was made from."""
        return not self.why_not_done(after)

    def why_not_done(self, after: Sequence[str] | None = None) -> str:
        """Why the stage must run: "" if it is done (see :meth:`is_done`); otherwise the reason, worded for the log
        when a stage that had finished runs again."""
        marker = self._marker()
        if marker.get("hash") != self.hash or marker.get("status") != "done":
            return NOT_FINISHED
        if not self.output.exists():
            return "its output is gone"
        missing = [name for name in recorded_files(marker) if not (self.run_dir / name).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            return f"files it made are gone ({shown})"
        # a marker written before markers carried tokens has no "upstream": it stays done
        if after is not None and "upstream" in marker and marker["upstream"] != self._upstream(after):
            return "a stage it was made from ran again"
        return ""

    def changed_files(self) -> list[str]:
        """The recorded files of a finished stage whose bytes are no longer those it wrote. Also for a stage that
        ``--update`` is about to redo: redoing it removes its output, and a file another command wrote there must
        not go with it."""
        marker = self._marker()
        if marker.get("status") not in ("done", OUTDATED):
            return []
        return changed_files(self.run_dir, recorded_files(marker))

    def mark_outdated(self) -> None:
        """Say in the marker that a finished output was made with other inputs (the run's config was changed with
        ``--update``), before the stage is redone: until then ``gmc-rl report`` must not read it as current."""
        marker = self._marker()
        if marker.get("status") == "done" and marker.get("hash") != self.hash:
            write_json_atomic(self.marker, {**marker, "status": OUTDATED})

    def begin(self, resumable: bool = True) -> bool:
        """Prepare to run the stage; return ``resume``.

        gmc-rl deletes only what it provably wrote: output recorded by this stage's marker. With such a marker,
        ``resume`` is True when an interrupted attempt with the same inputs left output behind and the stage is
        ``resumable``; any other recorded output (made with other inputs, or a partial output of a stage that
        cannot resume) is removed first, so the stage starts from scratch.

        Output that no readable marker records (the marker was deleted or corrupted, or the files are not
        gmc-rl's) is never removed: a ``resumable`` stage resumes it, and the stage's own checks then keep it
        only if it is this very stage's output (a checkpoint or agent of the same settings) and refuse anything
        else; a stage that cannot resume refuses.

        Raises:
            ConfigError: unrecorded output of a stage that cannot resume.
        """
        marker = self._marker()
        if self.output.exists() and not marker:
            if not resumable:
                raise ConfigError(
                    f"{self.output} exists but no stage marker ({self.marker}) records it as the output of stage "
                    f"{self.name!r}; gmc-rl never deletes files it did not write: move it away and rerun"
                )
            resume = True
        else:
            same = marker.get("hash") == self.hash
            resume = resumable and same and marker.get("status") == "running" and self.output.exists()
            if not resume:  # a directory, a file, or a link the user put there: the link goes, never its target
                remove_path(self.output)
        write_json_atomic(self.marker, {"stage": self.name, "hash": self.hash, "status": "running",
                                        "output": str(self.output.relative_to(self.run_dir))})
        return resume

    def finish(self, seconds: float, after: Sequence[str] = ()) -> None:
        """Record the stage as done: the digests of its needed files, a new token, and the tokens of the stages
        ``after``."""
        files = {name: file_sha256(self.run_dir / name) for name in self._needed_files()}
        write_json_atomic(self.marker, {"stage": self.name, "hash": self.hash, "status": "done",
                                        "output": str(self.output.relative_to(self.run_dir)),
                                        "seconds": round(seconds, 2), "files": files,
                                        "token": uuid.uuid4().hex, "upstream": self._upstream(after)})

    def _needed_files(self) -> list[str]:
        """The files of ``needs`` that are there, a folder in ``needs`` standing for every file in it (hidden ones,
        such as locks and temporaries, left out)."""
        files = []
        for name in self.needs:
            path = self.run_dir / name
            if path.is_dir() and not path.is_symlink():
                files += sorted(str(inner.relative_to(self.run_dir)) for inner in path.rglob("*") if inner.is_file()
                                and not any(part.startswith(".") for part in inner.relative_to(path).parts))
            elif path.is_file():
                files.append(name)
        return files

    def _upstream(self, after: Sequence[str]) -> dict[str, str | None]:
        """The tokens of the finished stages ``after`` (None for one without a finished marker)."""
        tokens: dict[str, str | None] = {}
        for name in after:
            marker = read_marker(marker_path(self.run_dir, name))
            token = marker.get("token") if marker.get("status") == "done" else None
            tokens[name] = token if isinstance(token, str) else None
        return tokens


def check_unchanged(stages: Sequence[Stage]) -> None:
    """Refuse to go on when a finished stage's needed files were changed after it wrote them.

    The run would otherwise be "up to date" while holding another command's output (``gmc-rl train --out
    RUN/agents/... --resume``, ``gmc-rl collect --out RUN/data --update``) or a hand-edited record, and every result
    made from it would be silently stale. Checked before anything runs.

    Raises:
        ConfigError: naming the changed files, their stages, and the two ways on.
    """
    changed = [(stage, name) for stage in stages for name in stage.changed_files()]
    if changed:
        raise ConfigError(changed_message(changed[0][0].run_dir, [(stage.name, name) for stage, name in changed]))


@dataclass
class Task:
    """A stage, the function that makes its output and the tasks it waits for.

    ``work`` is called as ``work(resume=..., progress=...)``. With ``jobs > 1`` it runs in another process, so it
    must be picklable: a module-level function or a ``functools.partial`` of one, with picklable arguments.
    """

    stage: Stage
    label: str
    work: Callable[..., Any]
    after: tuple[str, ...] = ()
    """Names (``stage.name``) of the tasks that must be done first."""
    resumable: bool = True


def run_stage(stage: Stage, log: Log, label: str, work: Callable[[bool], Any],
              resumable: bool = True, after: Sequence[str] = ()) -> tuple[Any, bool]:
    """Run ``work(resume)`` for ``stage`` in this process unless it is done (``after``: the names of the stages it
    waits for, see :meth:`Stage.is_done`); return (its result, whether it ran)."""
    check_unchanged([stage])
    return _run_unless_done(stage, log, label, work, resumable, after)


def _run_unless_done(stage: Stage, log: Log, label: str, work: Callable[[bool], Any], resumable: bool,
                     after: Sequence[str]) -> tuple[Any, bool]:
    """:func:`run_stage` once the stage's files were checked (:func:`run_tasks` checks every stage's at the start)."""
    why = stage.why_not_done(after)
    if not why:
        _log_skipped(stage, log, label)
        return None, False
    log_rerun(log, label, why)
    resume = _begin(stage, log, label, resumable)
    start = time.perf_counter()
    result = work(resume)
    _finish(stage, log, label, time.perf_counter() - start, after=after)
    return result, True


def _run_here(work: Callable[..., Any], resume: bool, *, progress: bool) -> Any:
    """Run a task's work in this process (``jobs=1``)."""
    return work(resume=resume, progress=progress)


def check_tasks(tasks: Sequence[Task], jobs: int) -> None:
    """Refuse ``jobs < 1`` and a task that waits for a task not in ``tasks``."""
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    names = {task.stage.name for task in tasks}
    for task in tasks:
        unknown = [name for name in task.after if name not in names]
        if unknown:
            raise ValueError(f"task {task.stage.name!r} waits for unknown tasks {unknown}")


def run_tasks(tasks: Sequence[Task], *, jobs: int = 1, progress: bool = True, log: Log = print) -> None:
    """Run every task whose stage is not done on this machine: in order here (``jobs=1``) or up to ``jobs`` at once
    in worker processes (see module). :func:`gmc_rl.backends.run_tasks` also runs them on Ray."""
    check_tasks(tasks, jobs)
    check_unchanged([task.stage for task in tasks])
    if jobs == 1:
        for task in tasks:
            _run_unless_done(task.stage, log, task.label, partial(_run_here, task.work, progress=progress),
                             task.resumable, task.after)
        return
    _run_parallel(list(tasks), jobs, log)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` worker processes: the usable CPUs shared out, at least one."""
    return max(1, usable_cpus() // jobs)


def _log_skipped(stage: Stage, log: Log, label: str) -> None:
    log(f"[{label}] up to date, skipped ({stage.output.relative_to(stage.run_dir)})")


def log_rerun(log: Log, label: str, why: str) -> None:
    """Say why a stage that had finished runs again (``why``: :meth:`Stage.why_not_done`; nothing for a stage that
    never finished)."""
    if why != NOT_FINISHED:
        log(f"[{label}] finished before, but {why}: running it again")


def _begin(stage: Stage, log: Log, label: str, resumable: bool) -> bool:
    resume = stage.begin(resumable)
    log(f"[{label}] {'resuming' if resume else 'running'} -> {stage.output.relative_to(stage.run_dir)}")
    return resume


def _finish(stage: Stage, log: Log, label: str, seconds: float, where: str = "", after: Sequence[str] = ()) -> None:
    stage.finish(seconds, after)
    log(f"[{label}] done in {seconds:.0f} s{where}")


def next_ready_task(tasks: list[Task], done: set[str], log: Log) -> Task | None:
    """Remove and return the first task whose inputs are done and whose own stage is not (None if none is ready).

    Ready tasks whose stage is already done on the way are logged as skipped, removed and added to ``done``. The
    local worker pool and the Ray backend schedule with it.
    """
    while True:
        task = next((t for t in tasks if all(name in done for name in t.after)), None)
        if task is None:
            return None
        tasks.remove(task)
        why = task.stage.why_not_done(task.after)
        if why:
            log_rerun(log, task.label, why)
            return task
        _log_skipped(task.stage, log, task.label)
        done.add(task.stage.name)


def check_progress(tasks: list[Task], error: BaseException | None) -> None:
    """Raise ValueError when nothing runs, nothing failed and tasks are left: they wait for each other."""
    if error is None and tasks:
        raise ValueError(f"tasks wait for each other in a cycle: {[t.stage.name for t in tasks]}")


def task_failed(task: Task, exc: BaseException, error: BaseException | None, still_running: int,
                log: Log) -> BaseException:
    """Log a stage's failure; return the run's first error (``error`` if there already was one, else ``exc``)."""
    log(f"[{task.label}] failed: {type(exc).__name__}: {exc}")
    if error is not None:
        return error
    if still_running:
        log(f"waiting for {still_running} running stage(s) to finish before stopping")
    return exc


def worker_lost(task: Task, worker: str = "worker process", why: str = "killed, or out of memory") -> WorkerLostError:
    """The error of a task whose ``worker`` died (``why``): what happened, and that a rerun resumes it. Shared by the
    local runner and the Ray backend."""
    return WorkerLostError(f"the {worker} running stage {task.label} died before the stage finished ({why}); what it "
                           "wrote is whole: rerun the same command to resume")


def task_done(task: Task, seconds: float, done: set[str], log: Log, where: str = "") -> None:
    """Mark a finished task's stage done, log it, remove its progress file and add it to ``done``."""
    _finish(task.stage, log, task.label, seconds, where, task.after)
    progress_file(task.stage).unlink(missing_ok=True)
    done.add(task.stage.name)


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """Stop this worker process once its parent (the pipeline) is gone, e.g. killed with SIGKILL.

    A worker must not outlive the pipeline: it would keep writing into a run directory that a rerun then
    resumes or cleans up. What it wrote so far is complete (atomic writes) and its stage stays marked as
    running, so the rerun resumes it.
    """
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def _init_worker(threads: int, env_specs: list[Any], parent: int) -> None:
    """Worker set-up: exit with the parent, share out the CPUs, and register the parent's Gymnasium envs that a
    fresh process lacks."""
    import gymnasium as gym
    import torch

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="exit-with-parent").start()
    torch.set_num_threads(threads)
    # The built-in gmc_rl/ ids are registered by ``import gmc_rl`` (this module's package) with Gymnasium's import.
    for spec in env_specs:
        if spec.id not in gym.registry:
            gym.registry[spec.id] = spec


def _run_task(work: Callable[..., Any], resume: bool, progress_file: str) -> float:
    """Run a stage in a worker, its progress recorded in ``progress_file`` for the runner to show."""
    os.environ[PROGRESS_FILE_ENV] = progress_file
    start = time.perf_counter()
    try:
        work(resume=resume, progress=False)
    finally:
        os.environ.pop(PROGRESS_FILE_ENV, None)
    return time.perf_counter() - start


def progress_file(stage: Stage) -> Path:
    """Where a stage running in a worker records its progress."""
    return stage.marker.with_suffix(".progress.json")


def _running_line(running: dict[Future, tuple[Task, float]]) -> str:
    """``still running: train gmc-seed0 45% (6,750/15,000 step, 28.1 step/s, ETA 5 min) [4 min]; ...``."""
    now = time.perf_counter()
    parts = []
    for task, start in running.values():
        state = read_progress(progress_file(task.stage))
        shown = format_progress({**state, "desc": task.label}) if state else task.label
        parts.append(f"{shown} [{(now - start) / 60:.0f} min]")
    return "still running: " + "; ".join(parts)


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 (any failure means "cannot be sent to a worker")
        return False
    return True


def _run_parallel(tasks: list[Task], jobs: int, log: Log) -> None:
    import gymnasium as gym

    env_specs = [spec for spec in gym.registry.values() if _picklable(spec)]
    done: set[str] = set()
    running: dict[Future, tuple[Task, float]] = {}  # future -> (task, start time)
    error: BaseException | None = None
    context = get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                               initargs=(worker_threads(jobs), env_specs, os.getpid()))
    try:
        while tasks or running:
            while error is None and len(running) < jobs:
                task = next_ready_task(tasks, done, log)
                if task is None:
                    break
                resume = _begin(task.stage, log, task.label, task.resumable)
                progress_file(task.stage).unlink(missing_ok=True)
                running[pool.submit(_run_task, task.work, resume, str(progress_file(task.stage)))] = (
                    task, time.perf_counter())
            if not running:
                check_progress(tasks, error)
                break
            finished, _ = wait(running, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED)
            if not finished:
                log(_running_line(running))
            for future in finished:
                task, _ = running.pop(future)
                try:
                    seconds = future.result()
                except BrokenProcessPool:  # the worker was killed (SIGKILL, out of memory): no traceback to show
                    error = task_failed(task, worker_lost(task), error, len(running), log)
                    continue
                except BaseException as exc:  # noqa: BLE001 (re-raised below once the running tasks end)
                    error = task_failed(task, exc, error, len(running), log)
                    continue
                task_done(task, seconds, done, log)
    except BaseException:
        # Interrupted (Ctrl-C, or SIGTERM, which the CLI turns into KeyboardInterrupt): stop the workers too
        # instead of waiting for their stages; their stages stay marked as running and a rerun resumes them.
        _terminate_workers(pool)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error


def _terminate_workers(pool: ProcessPoolExecutor, grace: float = 30.0) -> None:
    """Stop the pool's worker processes without waiting for their tasks to finish.

    Each worker first gets SIGINT, so a training stage saves a checkpoint as it does on Ctrl-C; a worker still
    alive after ``grace`` seconds is terminated. Its outputs are whole either way (atomic writes).
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)
