"""Atomic file writes: a file is either completely written or not there at all.

Everything gmc-rl produces (datasets, checkpoints, agents, results) goes through :func:`atomic_path`: the content
is written to a temporary file in the destination directory, flushed and fsync'ed, then renamed over the
destination. A crash or SIGKILL mid-write leaves at most a stray ``.tmp-*`` file, never a truncated result.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``destination``; on success it is fsync'ed and renamed onto it.

    Example:
        >>> with atomic_path("out/result.json") as tmp:   # doctest: +SKIP
        ...     tmp.write_text("{}")

    If the body raises, the temporary file is removed and ``destination`` is left untouched.
    """
    destination = Path(destination)
    directory = destination.parent if str(destination.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{destination.name}.", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(destination: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``destination`` atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``destination`` atomically."""
    write_bytes_atomic(destination, text.encode("utf-8"))


def write_json_atomic(destination: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``destination`` atomically (NaN and inf are refused)."""
    write_text_atomic(destination, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing or malformed file into a clear :class:`ValueError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc}); it may be truncated or edited.") from exc


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` if needed and check that files can be written there, with a clear error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create {what} {path}: {exc.strerror or exc}") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-write-probe.", dir=path)
    except OSError as exc:
        raise PermissionError(f"{what} {path} is not writable: {exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(probe)
    return path
