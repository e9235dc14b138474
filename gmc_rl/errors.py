"""Exception types raised by gmc-rl.

Every input error subclasses :class:`ValueError` (or :class:`OSError` for file problems) so that callers who catch
the standard types keep working, while tests and users can catch the precise kind. Messages always name the culprit:
the modality, key, file or argument that was wrong, and what was expected instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GMCError(ValueError):
    """Base class of gmc-rl's input errors."""


class ConfigError(GMCError):
    """A configuration file, key or value is invalid."""


class ModalityError(GMCError):
    """An observation space or observation does not fit the modalities that were expected."""


class DatasetError(GMCError):
    """A dataset file is missing, empty, truncated or inconsistent with its metadata."""


class CheckpointError(GMCError):
    """A checkpoint is missing, corrupted, unsafe to load, or does not match the environment."""


class SensorValueError(GMCError):
    """A sensor produced a non-finite value (NaN or inf)."""


class WorkerLostError(RuntimeError):
    """A worker process running a pipeline stage died before the stage finished (killed, or out of memory).

    Not an input error (hence not a :class:`GMCError`): the same command, rerun, resumes the stage from what the
    worker wrote, which is whole (atomic writes).
    """


def suggest(name: str, valid: Iterable[str]) -> str:
    """Return a ' Did you mean ...?' hint for ``name`` among ``valid`` (empty string if nothing is close)."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
