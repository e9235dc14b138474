"""One process at a time per output directory: an OS-level lock that the kernel releases when its holder dies.

Two commands writing into the same run directory (two ``gmc-rl pipeline --out DIR``, or a ``gmc-rl train --resume``
beside a pipeline that is training the same agent) would interleave their files and leave results that disagree
with the models on disk. :func:`directory_lock` takes an exclusive lock on ``DIR/.gmc-rl.lock`` (``flock`` on POSIX,
``LockFileEx`` on Windows, through the ``filelock`` package) for as long as the command works in ``DIR``. A second
process is refused at once with a message naming the holder (its process id, host, command and start time, read
from ``DIR/.gmc-rl.lock.json``). A crash, ``kill -9`` or power loss releases the lock with the process, so there is
never a stale lock to delete by hand. The holder file is only informative; the lock itself decides.

The lock is per directory and per process: the pipeline holds its run directory's lock, and the worker processes
that run its stages take the locks of their own outputs (``gmc/``, ``agents/<name>/``, ``data/``). Every command that
writes into a directory holds its lock: ``collect`` (the dataset directory), ``pretrain``, ``train``, ``evaluate``
and ``report`` (their ``--out``) and ``pipeline``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from gmc_rl.errors import ConfigError
from gmc_rl.io import ensure_writable_dir, read_json, write_json_atomic

LOCK_FILE = ".gmc-rl.lock"
HOLDER_FILE = ".gmc-rl.lock.json"
RESULTS_LOCK = "results directory"
"""What :func:`directory_lock` calls the ``--out`` of ``gmc-rl evaluate`` and ``gmc-rl report`` in its messages."""


def _holder(directory: Path) -> str:
    """Who holds the lock of ``directory``, as well as its holder file tells."""
    try:
        info = read_json(directory / HOLDER_FILE, "lock holder file")
    except (OSError, ValueError):
        return "another process (its holder file is missing or unreadable)"
    if not isinstance(info, dict):
        return "another process"
    return (f"process {info.get('pid', '?')} on {info.get('host', '?')} ({info.get('command', '?')}, "
            f"since {info.get('started', '?')})")


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, what: str = "output directory") -> Iterator[Path]:
    """Hold the exclusive lock of ``directory`` (created if needed) for the body of the ``with`` statement.

    Raises:
        ConfigError: another process holds the lock; the message names it.
    """
    created = _first_missing(Path(directory))
    directory = ensure_writable_dir(directory, what)
    lock = FileLock(directory / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{what} {directory} is in use by {_holder(directory)}; wait for it to finish or stop it, "
            "then rerun (a killed holder releases the lock by itself)"
        ) from None
    failed = True
    try:
        write_json_atomic(directory / HOLDER_FILE, {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        })
        yield directory
        failed = False
    finally:
        lock.release()
        if failed and created is not None:
            _remove_created(directory, created)


def _first_missing(directory: Path) -> Path | None:
    """The outermost of ``directory`` and its parents that does not exist yet (what creating it creates), else
    None."""
    missing = None
    for path in (directory, *directory.parents):
        if os.path.lexists(path):
            break
        missing = path
    return missing


def _remove_created(directory: Path, created: Path) -> None:
    """Remove ``directory`` when it holds nothing but its lock files, then each parent up to ``created`` that is
    left empty: what a refused command created and left unused. A command refused after it took the lock (a bad
    value found once the envs were built) leaves no new folder behind; one that wrote anything keeps it."""
    try:
        if not {entry.name for entry in directory.iterdir()} <= {LOCK_FILE, HOLDER_FILE}:
            return
        for name in (HOLDER_FILE, LOCK_FILE):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        for folder in (directory, *directory.parents):
            folder.rmdir()  # OSError when not empty: stop there
            if folder == created:
                break
    except OSError:
        return


def holder_if_locked(directory: str | os.PathLike) -> str | None:
    """Who holds the lock of ``directory`` now (another process, or another lock in this one), else None.

    For readers that must not read what a writer is still writing (a Minari dataset being exported). It creates
    nothing: a directory without a lock file has never been locked, and a lock that can be taken at once is free
    (it is released again before returning).
    """
    lock_file = Path(directory) / LOCK_FILE
    if not lock_file.is_file():
        return None
    lock = FileLock(lock_file, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return _holder(Path(directory))
    lock.release()
    return None
