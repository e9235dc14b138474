"""Paths as the system sees them: what kind of thing stands at a path (a regular file, a directory, a FIFO, a broken
link...), the words that name it when it is not what a command expects, and the lengths the system refuses.

Every loader and writer of gmc-rl names a wrong path the same way (:func:`wrong_path`), and checks a name's length
before anything is created under it (:func:`refuse_long_name`). Kept apart from :mod:`gmc_rl.io`, which re-exports
every name.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any


def require_path(value: Any, rule: str, error: type[Exception]) -> Path:
    """``value`` as a Path if it is one (a ``str`` or ``os.PathLike``), else ``error``: ``rule`` (what the argument
    must be) and the type given. Loaders are called from Python too, where None, a number or bytes would otherwise
    reach pathlib's TypeError."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise error(f"{rule}, got {type(value).__name__} {value!r:.80}")
    if not os.fspath(value):
        raise error(f"{rule}, got an empty string (which would mean the current directory)")
    return Path(value)


def wrong_path(path: str | os.PathLike, what: str, kind: str = "directory") -> str:
    """Why ``path`` is not the ``kind`` ("directory" or "file") a caller expected, in words that start with
    ``what``: it does not exist, is a broken symbolic link (naming its target) or a loop, or is something else, named
    by what it is (:func:`path_kind`: a directory, a regular file, a FIFO, a socket, a device). Shared by every loader
    so that each names the same cases the same way. A name with a newline, another control character or blanks at
    either end is shown quoted."""
    path = Path(path)
    shown = str(path) if str(path).isprintable() and str(path) == str(path).strip() else repr(str(path))
    dangling = _dangling_link(path)
    if dangling is not None:
        return f"{what} not found: {shown} is {dangling}"
    actual = path_kind(path)
    if actual is None:
        return f"{what} not found: {shown}"
    if actual == (DIRECTORY if kind == "directory" else REGULAR_FILE):
        return f"{what} {shown} is {actual}"
    # "a file" is what a directory is not; anything else that is not a directory is not a *regular* file
    expected = kind if kind != "file" or actual == DIRECTORY else "regular file"
    return f"{what} {shown} is {actual}, not a {expected}"


DIRECTORY = "a directory"
REGULAR_FILE = "a regular file"
_MODE_KINDS = ((stat.S_ISDIR, DIRECTORY), (stat.S_ISREG, REGULAR_FILE), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def mode_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words: "a directory", "a regular file", "a FIFO (named pipe)",
    "a socket", "a character device" or "a block device"."""
    for test, kind in _MODE_KINDS:
        if test(mode):
            return kind
    return f"a special file (mode {stat.filemode(mode)})"


def path_kind(path: str | os.PathLike) -> str | None:
    """What stands at ``path`` (a symbolic link followed), in words: :func:`mode_kind`'s, or a broken symbolic link
    naming its target, or a link loop; None when nothing does. The one description of a path's kind that every
    message uses, so that a FIFO, a socket or a device is never called a file or said to be missing."""
    path = Path(path)
    dangling = _dangling_link(path)
    if dangling is not None:
        return dangling
    try:
        return mode_kind(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # e.g. a parent without search permission: what is there cannot be seen
        return f"a path that cannot be examined ({exc.strerror or exc})"


def refuse_non_file(path: str | os.PathLike, what: str, error: type[Exception], fix: str) -> None:
    """Raise ``error`` with :func:`wrong_path`'s message and ``fix`` (the way round) when something other than a
    regular file (or a symbolic link to one) stands at ``path``: a directory, a FIFO, a socket, a device, a broken
    link. Nothing there, or a regular file: return. For the files a directory must hold (a dataset's metadata, a
    checkpoint's config and weights, an agent's ``agent.zip``), called before "missing" is reported, so that a file
    replaced by a directory or a FIFO is named as such, not as missing or unfinished."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise error(f"{wrong_path(path, what, 'file')}; {fix}")


LINK_LOOP = "a symbolic link loop (it never reaches a file or directory)"


def _dangling_link(path: Path) -> str | None:
    """What a symbolic link that reaches nothing is (a loop, or broken with its target named), else None."""
    try:
        if not path.is_symlink() or path.exists():
            return None
    except OSError:  # e.g. a name too long to look up: no link there
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LINK_LOOP
    return f"a broken symbolic link (to {os.readlink(path)})"


def resolve_path(path: str | os.PathLike) -> Path:
    """``path`` made absolute with every symbolic link followed (``Path.resolve``), with a symbolic link loop
    reported as an OSError naming ``path`` instead of pathlib's RuntimeError."""
    try:
        return Path(path).resolve()
    except RuntimeError as exc:  # Python < 3.13 raises RuntimeError("Symlink loop from ...")
        raise OSError(f"{path} is {LINK_LOOP}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(f"{path} is {LINK_LOOP}") from exc
        raise


def require_existing(path: str | os.PathLike, what: str, kind: str = "directory",
                     error: type[Exception] = FileNotFoundError) -> Path:
    """``path`` as a Path if it is an existing ``kind`` ("directory" or "file"), else ``error`` with
    :func:`wrong_path`'s message (a missing path, a broken link, the other kind). With the default error, a path of
    the other kind raises NotADirectoryError or IsADirectoryError (OSErrors too, so callers handle them alike)."""
    path = Path(path)
    if path.is_dir() if kind == "directory" else path.is_file():
        return path
    if error is FileNotFoundError and path.exists():
        error = NotADirectoryError if kind == "directory" else IsADirectoryError
    raise error(wrong_path(path, what, kind))


NAME_MAX = 255
"""Longest file or directory name (bytes) where the file system does not say (``os.pathconf``'s PC_NAME_MAX)."""
PATH_MAX = 4096
"""Longest path (bytes) the system takes in one call (Linux's PATH_MAX)."""


def _name_max(path: Path) -> int:
    """PC_NAME_MAX of the file system of the nearest existing ancestor of ``path`` (NAME_MAX if it cannot say)."""
    for ancestor in (*path.parents, Path(".")):
        try:
            return int(os.pathconf(ancestor, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return NAME_MAX


def name_too_long(path: str | os.PathLike) -> str | None:
    """Why the system would refuse ``path`` for its length (a name of a component over the file system's limit,
    usually 255 bytes, or the whole path over PATH_MAX), in words naming the culprit; None when it would not.

    The system's own answer, ``[Errno 36] File name too long``, names the whole path (or a file inside it, such
    as ``.../metadata.json``) and comes only after the parents of the path were created: writers check the name
    first, so that nothing is made and the message says which part is too long."""
    path = Path(path)
    encoded = os.fsencode(str(path))
    if len(encoded) >= PATH_MAX:
        return (f"the path is {len(encoded):,} bytes long, more than the {PATH_MAX - 1:,} the system takes (PATH_MAX); "
                "choose a shorter path")
    limit = _name_max(path)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            shown = part if len(part) <= 40 else f"{part[:20]}...{part[-12:]}"
            return (f"its component {shown!r} is {size:,} bytes long, more than the {limit} bytes a file or "
                    "directory name can have on this file system (NAME_MAX); choose a shorter name")
    return None


def refuse_long_name(path: str | os.PathLike, what: str, error: type[Exception]) -> None:
    """Raise ``error`` naming ``what`` and the over-long part of ``path`` (:func:`name_too_long`), if there is one;
    called before anything is created or probed under ``path``."""
    reason = name_too_long(path)
    if reason is not None:
        shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:40]}...{str(path)[-20:]}"
        raise error(f"{what} {shown!r} is not a path the system takes: {reason}")
