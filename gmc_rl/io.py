"""Safe file input/output: atomic writes, and reads that never unpickle.

Writes: everything gmc-rl produces (datasets, checkpoints, agents, results) goes through :func:`atomic_path`: the
content is written to a temporary file in the destination directory, flushed and fsync'ed, then renamed over the
destination. A crash or SIGKILL mid-write leaves at most a stray ``.tmp-*`` file, never a truncated result.

Reads: JSON with :func:`read_json`, and JSON objects of a known structure with :func:`read_json_object` and
:func:`require_fields` (every file gmc-rl reads back is checked for its required keys and their types, so a file
of the wrong shape is refused with the project's error naming the file and the key, not a raw KeyError later);
Stable-Baselines3 ``.zip`` models of unknown origin with :func:`load_sb3_zip` (:mod:`gmc_rl.sb3_zip`), which
rebuilds the model without running the pickles such a file may contain.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gmc_rl.paths import (  # noqa: F401  (re-exported: gmc_rl.io is where callers import them)
    DIRECTORY,
    LINK_LOOP,
    NAME_MAX,
    PATH_MAX,
    REGULAR_FILE,
    _dangling_link,
    mode_kind,
    name_too_long,
    path_kind,
    refuse_long_name,
    refuse_non_file,
    require_existing,
    require_path,
    resolve_path,
    wrong_path,
)
from gmc_rl.png_marks import (  # noqa: F401  (re-exported: gmc_rl.io is where callers import them)
    LATENTS_PCA,
    PNG_KIND_KEY,
    PNG_KINDS,
    PNG_SOFTWARE,
    RESULTS_FIGURE,
    UNMARKED,
    is_own_png,
    png_kind,
    png_metadata,
    png_not_own,
)
from gmc_rl.sb3_zip import (  # noqa: F401  (re-exported: gmc_rl.io is where callers import them)
    check_sb3_spaces,
    load_sb3_zip,
    read_sb3_data,
)


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


def _umask() -> int:
    """The process's umask (read by setting it and putting it back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    return 0o666 & ~_umask()


def _default_dir_mode() -> int:
    """The mode a plain ``mkdir(path)`` would give a new directory (0o777 less the umask)."""
    return 0o777 & ~_umask()


def make_staging_dir(destination: str | os.PathLike) -> Path:
    """Create an empty temporary directory next to ``destination``, to be filled and renamed onto it.

    ``tempfile.mkdtemp`` makes the directory private (0700); a staged directory becomes a result (an agent's
    ``encoder/``), so it gets the mode an ordinary ``mkdir`` would give it, as the umask allows.
    """
    destination = Path(destination)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{destination.name}.", dir=destination.parent))
    os.chmod(staging, _default_dir_mode())
    return staging


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
    refuse_long_name(destination, "file", PermissionError)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{destination.name}.", dir=directory)
    except OSError as exc:
        raise PermissionError(f"cannot write {destination}: {_reason(exc, directory)}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
        except OSError as exc:  # a full disk, a quota or a file-size limit: name the file being written
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror or str(exc), str(destination)) from exc
            raise
        # mkstemp makes the file private (0600), and some writers (safetensors) replace the file with a new private
        # one; results are ordinary files, so the mode is set once the content is in place, as the umask allows.
        os.chmod(tmp, _default_file_mode())
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, destination)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def remove_path(path: Path) -> None:
    """Remove what stands at ``path``: a directory tree, a file, or a symbolic link (the link, never its target)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Write errors that mean there is no room for the file: a full disk, a full quota, the file-size limit."""


def write_error(exc: BaseException, path: str | os.PathLike) -> OSError:
    """An OSError naming ``path`` for a writer's own write failure (safetensors' SafetensorError, torch.save's
    RuntimeError), so that callers and the command line handle every failed write alike.

    The OS error number is taken from the message where the writer gives one ("os error 28"), else EIO.
    """
    match = re.search(r"os error (\d+)", str(exc))
    number = int(match.group(1)) if match else errno.EIO
    reason = os.strerror(number) if match else f"{str(exc).splitlines()[0]} (is the disk full?)"
    return OSError(number, reason, str(path))


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


class _NonStandardConstant(Exception):
    """Python's json module reads NaN, Infinity and -Infinity, which are not JSON; gmc-rl's files never hold them."""


def _refuse_constant(name: str) -> Any:
    raise _NonStandardConstant(name)


MAX_JSON_BYTES = 256 * 2**20
"""Largest JSON file :func:`read_json` reads by default (256 MiB): a dataset's ``metadata.json``, a checkpoint's
``config.json``, an agent's ``agent.json``, a pretraining ``run.json``, stage markers, lock and progress files, an
agent's evaluation history, the ``data`` entry of an SB3 ``.zip``. The largest of these measured in real runs are
3-10 KB; those that grow hold a copy of a config (capped at 1 MiB, MAX_CONFIG_BYTES), two numbers per feature of
the vector modalities (normalisation statistics: 256 MiB is millions of features), pickled spaces, or a few values
per evaluation of an agent's training."""

MAX_RESULTS_JSON_BYTES = 2 * 2**30
"""Largest ``results.json`` and agent evaluation record (``eval/runs/<agent>.json``) read (2 GiB): they hold every
episode's return and length, about 20 bytes per episode and condition. The largest measured (4 methods x 5 seeds
x 8 conditions x 100 episodes) is 0.7 MB; an evaluation of MAX_EPISODES (1,000,000) episodes under 50 conditions
is about 1 GB."""


def _size_text(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{count} bytes"


def _read_at_most(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``, or None if it holds more than ``limit``; read in 1 MiB pieces, so that no more than
    what the file holds is ever allocated (``read(limit)`` would allocate ``limit`` bytes at once)."""
    pieces, total = [], 0
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            total += len(piece)
            if total > limit:
                return None
            pieces.append(piece)
    return b"".join(pieces)


def _too_large(path: Path, what: str, size: int, cap: int) -> str:
    name = "MAX_RESULTS_JSON_BYTES" if cap == MAX_RESULTS_JSON_BYTES else "MAX_JSON_BYTES"
    return (f"{what} {path} is {_size_text(size)} ({size:,} bytes), more than the {_size_text(cap)} such a file can "
            f"be ({name} in gmc_rl.io); it is not a file gmc-rl wrote: restore it from a copy or make it again")


_JSON_STARTS = frozenset(b'{["-0123456789tfn')
"""The bytes a JSON document can start with, after white space."""


def _refuse_what_cannot_start_json(path: Path, what: str) -> None:
    """Raise ValueError if the first 4 KiB of ``path`` already show it is not JSON (NUL bytes, binary data): a large
    file that is not JSON is refused without reading it whole."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b" \t\r\n")
    if head and head[0] not in _JSON_STARTS:
        raise ValueError(f"{what} {path} is not valid JSON (it starts with byte {head[:1]!r}); it may be truncated or "
                         "edited, or it is not a file gmc-rl wrote")


def read_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file, turning a missing, malformed or oversized file into a clear :class:`ValueError`.

    Nesting too deep for Python's parser (a crafted ``[[[[...]]]]``) is a malformed file too, not a RecursionError;
    so are ``NaN`` and ``Infinity``, which Python's parser accepts but JSON does not. A file larger than
    ``max_bytes`` (:data:`MAX_JSON_BYTES`, :data:`MAX_RESULTS_JSON_BYTES` for results) is refused before a byte of
    it is read, and one that does not fit in memory is refused too, never a raw MemoryError.
    """
    path = require_existing(path, what, "file")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(_too_large(path, what, size, max_bytes))
    _refuse_what_cannot_start_json(path, what)
    try:
        raw = _read_at_most(path, max_bytes)
        if raw is None:  # it grew past the cap since it was measured
            raise ValueError(_too_large(path, what, path.stat().st_size, max_bytes))
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except MemoryError:
        raise ValueError(f"{what} {path} ({_size_text(size)}) does not fit in the memory available to read it; "
                         "free memory (or raise the limit) and rerun") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc}); it may be truncated or edited.") from exc
    except _NonStandardConstant as exc:
        raise ValueError(f"{what} {path} holds {exc.args[0]}, which is not JSON (gmc-rl writes only finite "
                         "numbers); it was edited or not written by gmc-rl") from None
    except RecursionError:
        raise ValueError(f"{what} {path} is nested too deeply to be read; it is not a file gmc-rl wrote") from None


FieldType = type | tuple[type, ...]
"""The type (or types) a JSON value must have: ``str``, ``int``, ``float`` (any number), ``bool``, ``list``,
``dict`` or ``type(None)``. ``int`` and ``float`` never accept a boolean."""

_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "true or false", type(None): "null"}


def _has_type(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _expected_text(expected: FieldType) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)


def _value_text(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{_expected_text(type(value)) if type(value) in _JSON_NAMES else type(value).__name__} {text}"


def require_fields(
    data: Any,
    required: Mapping[str, FieldType],
    source: str | os.PathLike,
    error: type[Exception] = ValueError,
    *,
    optional: Mapping[str, FieldType] | None = None,
    where: str = "",
) -> dict[str, Any]:
    """Check that ``data`` is a JSON object holding every key of ``required`` with its type; return it.

    Keys of ``optional`` are checked only when present. ``source`` (the file) and ``where`` (the path of ``data``
    inside it, e.g. ``"files.train.npz"``) name the culprit in the message; ``error`` is the project's error class
    for that kind of file (CheckpointError, ConfigError, DatasetError).

    Example:
        >>> require_fields({"epoch": "3"}, {"epoch": int}, "state.json")
        Traceback (most recent call last):
        ...
        ValueError: state.json: key 'epoch' must be an integer, got a string '3'
    """
    if not isinstance(data, dict):
        inside = f" key {where!r}" if where else ""
        raise error(f"{source}{inside} must be a JSON object, got {_value_text(data)}")
    for fields, needed in ((required, True), (optional or {}, False)):
        for key, expected in fields.items():
            name = f"{where}.{key}" if where else key
            if key not in data:
                if needed:
                    raise error(f"{source} lacks the required key {name!r} ({_expected_text(expected)})")
                continue
            types = expected if isinstance(expected, tuple) else (expected,)
            if not any(_has_type(data[key], t) for t in types):
                raise error(f"{source}: key {name!r} must be {_expected_text(expected)}, got {_value_text(data[key])}")
    return data


def read_json_object(
    path: str | os.PathLike,
    what: str,
    required: Mapping[str, FieldType],
    error: type[Exception],
    *,
    optional: Mapping[str, FieldType] | None = None,
    max_bytes: int = MAX_JSON_BYTES,
) -> dict[str, Any]:
    """Read a JSON file that must hold an object with the ``required`` keys and types (see :func:`require_fields`),
    of at most ``max_bytes`` (:func:`read_json`).

    Raises:
        FileNotFoundError: no file at ``path``.
        error: the file is not valid JSON, is nested too deeply, is not an object, or lacks a key or has one of
            the wrong type (the message names the file and the key), or is larger than ``max_bytes``.
    """
    try:
        data = read_json(path, what, max_bytes)
    except FileNotFoundError:
        raise
    except ValueError as exc:
        raise error(str(exc)) from exc
    return require_fields(data, required, path, error, optional=optional)


def _reason(exc: OSError, path: Path) -> str:
    """Why writing under ``path`` failed, in words (naming a parent that is not a directory by what it is, a regular
    file, a FIFO, a socket, a device or a broken symbolic link, which ``mkdir`` reports vaguely: "File exists")."""
    for parent in (path, *path.parents):
        dangling = _dangling_link(parent)
        if dangling is not None:
            return f"{parent} is {dangling}; remove it or choose another path"
        try:
            mode = os.stat(parent).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            return f"{parent} is {mode_kind(mode)}, not a directory"
    return f"{exc.strerror or exc} ({type(exc).__name__})"


def ensure_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``path`` if needed and check that files can be written there, with a clear error otherwise.

    Raises:
        PermissionError: the directory cannot be created (e.g. a parent is a regular file) or written to
            (permissions, an immutable directory, a read-only file system); the message names ``path`` and why.
    """
    path = Path(path)
    refuse_long_name(path, what, PermissionError)  # before a parent is made: nothing is left behind
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create {what} {path}: {_reason(exc, path)}") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-write-probe.", dir=path)
    except OSError as exc:
        raise PermissionError(f"{what} {path} is not writable: {_reason(exc, path)}") from exc
    os.close(fd)
    os.unlink(probe)
    return path


def _identity_of(path: Path) -> tuple[Any, ...]:
    """What makes ``path`` the file or directory it is: its device and inode where it exists (so symlinks, bind
    mounts and every spelling of it agree), else its absolute resolved form."""
    try:
        info = path.stat()
    except OSError:
        return ("missing", str(resolve_path(path)))
    return ("inode", info.st_dev, info.st_ino)


def distinct_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """``paths`` with every file or directory kept once, in the order given, each under its first spelling.

    ``RUN``, ``RUN/``, ``./RUN``, ``RUN/.``, its absolute path and a symlink to it are the same directory: a command
    that pools what several directories hold (``gmc-rl report RUN RUN/``, ``gmc-rl evaluate --agent A A/``) must count
    it once, not pool its agents twice and shrink the intervals as if there were twice the data.
    """
    seen: set[tuple[Any, ...]] = set()
    kept: list[Path] = []
    for path in map(Path, paths):
        identity = _identity_of(path)
        if identity not in seen:
            seen.add(identity)
            kept.append(path)
    return kept
