"""What a pipeline run's stage markers record of the files they made, and which of those changed since.

A finished stage's marker ``stages/<stage>.json`` records the SHA-256 of each file later stages read
(:class:`gmc_rl.stages.Stage`). A file there with other bytes was written by another command or edited: the pipeline
(:func:`gmc_rl.stages.check_unchanged`) and ``gmc-rl report`` (:func:`changed_run_files`) refuse to go on with it.
Kept apart from :mod:`gmc_rl.stages`, the runner, so that ``report`` reads markers without the runner's machinery.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gmc_rl.io import read_json
from gmc_rl.npz_files import file_sha256

STAGES_DIR = "stages"
"""The folder of a run directory that holds the stage markers."""
OUTDATED = "outdated"
"""A marker's status for a finished output made with inputs the run's config no longer has
(:meth:`gmc_rl.stages.Stage.mark_outdated`)."""


def marker_path(run_dir: Path, stage: str) -> Path:
    """Where the marker of ``stage`` lies in ``run_dir``."""
    return run_dir / STAGES_DIR / f"{stage.replace('/', '_')}.json"


def read_marker(path: Path) -> dict[str, Any]:
    """The stage marker at ``path``; {} when it is missing, unreadable or not a JSON object."""
    try:
        data = read_json(path, "stage marker")
    except (OSError, ValueError):  # missing, unreadable, or not a file
        return {}
    return data if isinstance(data, dict) else {}


def recorded_files(marker: dict[str, Any]) -> dict[str, str]:
    """The files a finished marker recorded (path relative to the run directory -> SHA-256); {} for markers that
    record none (written before markers carried digests)."""
    files = marker.get("files")
    if not isinstance(files, dict):
        return {}
    return {name: digest for name, digest in files.items() if isinstance(name, str) and isinstance(digest, str)}


def changed_files(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    """The files of ``recorded`` (path relative to ``run_dir`` -> SHA-256) that are there with other bytes."""
    return [name for name, digest in recorded.items()
            if (run_dir / name).is_file() and file_sha256(run_dir / name) != digest]


def changed_run_files(run_dir: Path) -> list[tuple[str, str]]:
    """``(stage, file)`` for every file a finished stage of ``run_dir`` recorded whose bytes changed since: what
    ``gmc-rl report`` checks before it reads a run's records (the pipeline checks its own stages,
    :func:`check_unchanged`)."""
    changed = []
    for marker_file in sorted((run_dir / STAGES_DIR).glob("*.json")):
        marker = read_marker(marker_file)
        if marker.get("status") in ("done", OUTDATED):
            stage = str(marker.get("stage", marker_file.stem))
            changed += [(stage, name) for name in changed_files(run_dir, recorded_files(marker))]
    return changed


def changed_message(run_dir: Path, changed: Sequence[tuple[str, str]], verb: str = "go on") -> str:
    """The refusal for ``changed`` ``(stage, file)`` pairs of ``run_dir`` (see :func:`check_unchanged`)."""
    shown = "; ".join(f"{name} (stage {stage})" for stage, name in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return (f"run directory {run_dir} no longer holds what its stages made: {shown}{more} changed after the stage "
            f"wrote it (another command wrote there, or it was edited), so gmc-rl will not {verb}. gmc-rl does not "
            "overwrite it: move the file (or its folder) away and rerun the pipeline to have the stage made again, "
            "or use a new --out")
