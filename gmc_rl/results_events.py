"""The TensorBoard event files of a results folder's ``tb/``: the new results' events in, the earlier results' out.

TensorBoard shows every event file of a folder, so events of earlier results left beside the new ones show two
values at one step, or methods the results no longer have (red-team six F13: ``pipeline --update``, ``gmc-rl
evaluate`` into the same ``--out``). :func:`replace_results_events` writes the new events into a staging folder,
renames them into ``tb/`` and then removes the earlier results' events; :func:`remove_results_events` removes them
where no new ones follow (``gmc-rl report`` writes no TensorBoard data).

Only event files gmc-rl wrote for results are removed (:func:`is_results_events`: their first scalars are
gmc-rl's robustness or hparams metrics); a user's event files, and every other file, in ``tb/`` stay.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gmc_rl.io import REGULAR_FILE, make_staging_dir, path_kind

EVENTS_PREFIX = "events.out.tfevents."
"""How TensorBoard names its event files."""

RESULTS_TAGS = ("robustness_per_step/", "robustness_return/", "robustness_loss/", "robustness/", "hparams/return/",
                "hparams/loss/")
"""The tags :func:`gmc_rl.results.write_tensorboard` writes (besides the hparams plugin's own ``_hparams_/``)."""

_HPARAMS_PLUGIN = "_hparams_/"
_EVENTS_READ = 16
"""Events read at most to tell a file's kind: gmc-rl's files name their kind within the first five."""


def is_results_events(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TensorBoard event file that gmc-rl wrote for results: a regular file named
    ``events.out.tfevents.*`` whose first tag outside the hparams plugin's is one of :data:`RESULTS_TAGS`.

    Only the first few events are read, so a large file of a user's costs nothing; an unreadable file is not
    gmc-rl's."""
    path = Path(path)
    if not path.name.startswith(EVENTS_PREFIX) or path_kind(path) != REGULAR_FILE:
        return False
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    try:
        for count, event in enumerate(EventFileLoader(str(path)).Load()):
            tags = [value.tag for value in event.summary.value if not value.tag.startswith(_HPARAMS_PLUGIN)]
            if tags:
                return tags[0].startswith(RESULTS_TAGS)
            if count >= _EVENTS_READ:
                return False
    except Exception:  # noqa: BLE001  (a damaged or foreign file: not one gmc-rl wrote)
        return False
    return False


def results_event_files(log_dir: str | os.PathLike) -> list[Path]:
    """The event files directly in ``log_dir`` that gmc-rl wrote for results (:func:`is_results_events`)."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir() or log_dir.is_symlink():
        return []
    return sorted(path for path in log_dir.iterdir() if is_results_events(path))


def replace_results_events(log_dir: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Let ``write`` put the new results' event files into a staging folder next to ``log_dir``, rename them into
    ``log_dir``, then remove the earlier results' event files there; return ``log_dir``.

    Each event file lands by a rename, complete. The new files are in place before the earlier ones go, so an
    interrupt in between leaves both (as before a rerun), never none; a failing ``write`` changes nothing.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    earlier = results_event_files(log_dir)
    staging = make_staging_dir(log_dir)
    try:
        write(staging)
        written = [log_dir / path.name for path in sorted(staging.iterdir()) if path.name.startswith(EVENTS_PREFIX)]
        for path in written:
            os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for path in earlier:
        if path not in written:
            path.unlink(missing_ok=True)
    return log_dir


def remove_results_events(log_dir: str | os.PathLike) -> list[Path]:
    """Remove the event files gmc-rl wrote for results in ``log_dir``, and the folder if that empties it; return
    the removed files (results written without TensorBoard data replace the earlier results' events too)."""
    log_dir = Path(log_dir)
    removed = results_event_files(log_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    if removed and not any(log_dir.iterdir()):
        log_dir.rmdir()
    return removed
