"""What marks a gmc-rl artifact directory, and where results and plots may be written beside them.

gmc-rl writes four kinds of artifact directory (an agent, a pretraining checkpoint, a dataset, a pipeline run), each
marked by one file. Their folders (``RUN/data``, ``RUN/eval``, ``AGENT/checkpoints``...) belong to the code that
wrote them: a results table or a plot put there by hand would stand as the artifact's own, or be replaced by the
next run. The rules live here, below the writers (:func:`gmc_rl.results.write_results`,
:func:`gmc_rl.metrics.plot_latents_pca`), so that a call from Python is held to the same rules as the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

from gmc_rl.errors import ConfigError
from gmc_rl.io import refuse_long_name, resolve_path
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE

RUN_MARKER = "gmc-rl-run.json"
"""Written when the pipeline creates a run directory: only such a directory is ever reused or cleaned up."""
LOCK_FILES = (LOCK_FILE, HOLDER_FILE)

ARTIFACT_MARKERS = {"agent.json": "an agent", "model.safetensors": "a checkpoint", "metadata.json": "a dataset",
                    RUN_MARKER: "a pipeline run"}
"""The file that marks each kind of gmc-rl artifact directory, and the kind's name."""

AGENT_OWN_FOLDERS = ("checkpoints", "tb", "encoder", "action_fit", "eval")
"""The folders of an agent directory that its training writes (``gmc_rl.agents.agent_dir``); results go beside them."""

DATASET_FILES = ("metadata.json", "train.npz", "val.npz")
CHECKPOINT_FILES = ("config.json", "model.safetensors")
AGENT_FILES = ("agent.json", "agent.zip")
"""The files of a dataset, a checkpoint (GMC, MVAE, MUSE, an action fit) and an agent that loading them reads: what
a finished pipeline stage must still hold (:class:`gmc_rl.stages.Stage`). Logs, plots and resume points are not
among them."""


def artifact_kind(directory: Path) -> tuple[str, str] | None:
    """``(kind, marker file)`` if ``directory`` is a gmc-rl artifact (an agent, a checkpoint, a dataset, a pipeline
    run's root), else None."""
    for marker, kind in ARTIFACT_MARKERS.items():
        if (directory / marker).is_file():
            return kind, marker
    return None


def artifact_folder_holding(resolved: Path) -> tuple[Path, str, Path] | None:
    """``(artifact, kind, folder)`` if the resolved path ``resolved`` lies below a gmc-rl artifact (an agent, a
    checkpoint or pretraining run, a dataset, a pipeline run) inside one of that artifact's existing folders
    (``RUN/data``, ``RUN/stages``, ``PRETRAINING/tb``, ``AGENT/checkpoints``...), else None. A folder of gmc-rl
    results inside an artifact (``AGENT/robustness``, which holds a ``results.json``) is not one of its folders."""
    for artifact in resolved.parents:
        found = artifact_kind(artifact)
        if found is None:
            continue
        folder = artifact / resolved.relative_to(artifact).parts[0]
        if (folder.exists() or folder.is_symlink()) and not _holds_results_only(folder):
            return artifact, found[0], folder
    return None


def _holds_results_only(folder: Path) -> bool:
    """True for a folder of gmc-rl results: one holding a ``results.json``, or nothing yet but a results lock."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / "results.json").is_file() or all(entry.name in LOCK_FILES for entry in folder.iterdir())


def check_results_folder(out: str | os.PathLike, label: str, writer: str) -> None:
    """Refuse a folder of results ``out`` (``label`` names it in the message, e.g. ``--out``; ``writer`` is what
    writes there) that is another artifact's directory (an agent, a checkpoint, a dataset, a pipeline run's root),
    lies in a pipeline run's ``eval/`` folder or an agent's own folders, or in any other folder of an artifact.

    A pipeline run's ``eval/`` belongs to the run's evaluation and report stages: results written there by hand would
    stand as the run's own (its report stage, already done, skips and shows them) and be replaced by the next
    ``--update``. Any spelling counts (relative, ``..``, symbolic links): the check compares resolved paths.

    Raises:
        ConfigError: naming the folder, the artifact and the way round.
    """
    if str(out) == "":
        raise ConfigError(f"{label} is empty; name the folder {writer} writes its results into")
    refuse_long_name(out, label, ConfigError)
    resolved = resolve_path(out)
    found = artifact_kind(resolved)
    if found is not None:
        kind, marker = found
        raise ConfigError(f"{label} {out} is {kind} directory ({marker}); {writer} writes its results into "
                          f"a folder of their own: choose another {label}")
    _refuse_artifact_folder(resolved, out, label, writer)


def check_plot_path(path: str | os.PathLike, label: str) -> None:
    """Refuse a plot file ``path`` that would lie directly in an artifact directory or in one of its folders.

    Raises:
        ConfigError: naming the path and the artifact.
    """
    refuse_long_name(path, label, ConfigError)
    resolved = resolve_path(path)
    found = artifact_kind(resolved.parent)
    if found is not None:
        kind, marker = found
        raise ConfigError(f"{label} {path} lies in {kind} directory ({marker}), which gmc-rl does not add files to: "
                          f"choose another {label}")
    _refuse_artifact_folder(resolved, path, label, "gmc-rl")  # the plot's own name is never a folder's: *.png


def _refuse_artifact_folder(resolved: Path, given: str | os.PathLike, label: str, writer: str) -> None:
    """Raise ConfigError if ``resolved`` lies in an agent's own folders, a pipeline run's ``eval/`` or any other
    existing folder of an artifact."""
    for folder in (resolved, *resolved.parents):
        owner = folder.parent
        if folder.name in AGENT_OWN_FOLDERS and (owner / "agent.json").is_file():
            raise ConfigError(
                f"{label} {given} lies in {folder}, the agent's own {folder.name}/ folder, which its training writes; "
                f"{writer} writes elsewhere: choose another {label} (e.g. {owner / 'robustness'})"
            )
        if folder.name == "eval" and (owner / RUN_MARKER).is_file():
            elsewhere = owner.parent / f"{owner.name}_results"
            raise ConfigError(
                f"{label} {given} lies in {folder}, the evaluation folder of the pipeline run {owner}, which its "
                f"stages own; {writer} writes elsewhere: choose another {label} (e.g. {elsewhere})"
            )
    inside = artifact_folder_holding(resolved)
    if inside is not None:
        artifact, kind, folder = inside
        raise ConfigError(f"{label} {given} lies in {folder}, a folder of {kind} directory ({artifact}), which "
                          f"{writer} does not add files to: choose another {label} (e.g. {artifact / 'robustness'})")
