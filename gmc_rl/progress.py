"""Progress of long work (collection, pretraining, training, evaluation), suited to where it is shown.

- On a terminal: a tqdm bar, updated in place.
- Anywhere else (a log file, CI, ``nohup``): one plain line at most every :data:`LINE_INTERVAL` seconds and one at
  the end, e.g. ``pretrain epoch 3/10: 45% (1,234/2,700 batch, 85.2 batch/s, ETA 17 s)``, instead of the carriage
  returns of a bar that pile up into one huge line.
- In a worker process of ``gmc-rl pipeline`` (where nothing is shown): the same numbers are written to the JSON file
  named by the environment variable :data:`PROGRESS_FILE_ENV`, which the pipeline reads to print each running
  stage's percentage and rate (:mod:`gmc_rl.stages`).

Use :func:`progress_bar` like ``tqdm``: ``update(n)``, ``set_description(text)``, ``set_postfix(**values)``,
``close()`` (or a ``with`` block).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

from gmc_rl.io import read_json, write_json_atomic

LINE_INTERVAL = 30.0
"""Seconds between two progress lines (or progress-file updates) when no terminal shows a bar."""
PROGRESS_FILE_ENV = "GMC_RL_PROGRESS_FILE"
"""Environment variable naming the JSON file a pipeline worker's progress is written to."""


def _is_terminal() -> bool:
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def format_progress(state: dict[str, Any]) -> str:
    """One line for a progress state: ``desc: 45% (1,234/2,700 batch, 85.2 batch/s, ETA 17 s)``."""
    done, total, unit, rate = state["n"], state.get("total"), state.get("unit", "it"), state.get("rate", 0.0)
    parts = [f"{done:,}/{total:,} {unit}" if total else f"{done:,} {unit}", f"{rate:.1f} {unit}/s"]
    if total and rate > 0 and done < total:
        parts.append(f"ETA {_duration((total - done) / rate)}")
    percent = f"{100 * done / total:.0f}% " if total else ""
    postfix = f" [{state['postfix']}]" if state.get("postfix") else ""
    return f"{state.get('desc', '')}: {percent}({', '.join(parts)}){postfix}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def read_progress(path: str | os.PathLike) -> dict[str, Any] | None:
    """The progress state a worker last wrote to ``path``, or None (not written yet, or unreadable)."""
    try:
        state = read_json(path, "progress file")
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("n"), int) else None


class LineProgress:
    """A tqdm-like progress report that prints plain lines and/or writes a progress file (see the module)."""

    def __init__(self, total: int | None, desc: str, unit: str, *, print_lines: bool, file: str | None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.postfix = 0, ""
        self._print, self._file = print_lines, file
        self._start = self._last = time.monotonic()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= LINE_INTERVAL:
            self._emit()

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def state(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return {"desc": self.desc, "n": self.n, "total": self.total, "unit": self.unit,
                "rate": self.n / elapsed, "elapsed": elapsed, "postfix": self.postfix}

    def _emit(self) -> None:
        self._last = time.monotonic()
        state = self.state()
        if self._print:
            print(format_progress(state), file=sys.stderr, flush=True)
        if self._file:
            try:
                write_json_atomic(self._file, state)
            except OSError:  # progress is informative: never let it stop the work
                pass

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 leave: bool = True) -> Any:
    """A progress report for ``total`` units of work (see the module for where it goes).

    ``enabled=False`` shows nothing, but a pipeline worker still records its progress in its progress file.
    """
    file = os.environ.get(PROGRESS_FILE_ENV) or None
    if enabled and _is_terminal():
        return tqdm(total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(total, desc, unit, print_lines=enabled, file=file)
