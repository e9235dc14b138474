"""Pipeline run directories: what marks one, the config it remembers, and where the pipeline and the result commands
may write.

A run directory is made by :func:`prepare_run_dir` (its marker ``gmc-rl-run.json`` and ``config.yaml``); only such a
directory, or an empty one, is ever written into again (:func:`check_run_dir`). :func:`check_results_out` keeps
``gmc-rl evaluate`` and ``report`` out of other artifacts' directories. Kept apart from :mod:`gmc_rl.pipeline`, which
re-exports every name, so that the run-directory rules read as one unit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from gmc_rl.config import ExperimentConfig, load_yaml, stored_config, to_dict
from gmc_rl.errors import ConfigError
from gmc_rl.io import ensure_writable_dir, require_existing, resolve_path, write_json_atomic, write_text_atomic
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE
from gmc_rl.stages import STAGES_DIR

CONFIG_FILE = "config.yaml"
RUN_MARKER = "gmc-rl-run.json"
"""Written when the pipeline creates a run directory: only such a directory is ever reused or cleaned up."""
LOCK_FILES = (LOCK_FILE, HOLDER_FILE)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Human-readable ``key: old -> new`` lines for every config key that differs."""
    a, b = _flatten(to_dict(old)), _flatten(to_dict(new))
    return [f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def read_run_config(run_dir: str | os.PathLike) -> ExperimentConfig:
    """The config stored in a run directory's ``config.yaml``."""
    path = require_existing(run_dir, "run directory") / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a gmc-rl pipeline run directory")
    try:
        return stored_config(load_yaml(path, "run config"))
    except ConfigError as exc:
        raise ConfigError(f"{path} is not a valid experiment config: {exc}") from exc


def is_run_dir(run_dir: str | os.PathLike) -> bool:
    """True if ``run_dir`` was made by the pipeline: it holds the run marker (or, from before the marker existed,
    ``config.yaml`` beside the ``stages/`` markers)."""
    run_dir = Path(run_dir)
    return (run_dir / RUN_MARKER).is_file() or ((run_dir / CONFIG_FILE).is_file() and (run_dir / STAGES_DIR).is_dir())


def _refuse_a_new_run_inside_an_artifact(run_dir: Path) -> None:
    """Raise ConfigError if the new run directory ``run_dir`` would lie directly in another artifact or in one of its
    folders (``RUN/data/x`` would block that run's collect stage)."""
    resolved = resolve_path(run_dir)
    inside = artifact_folder_holding(resolved)
    if inside is not None:
        artifact, kind, folder = inside
        where = f"{folder}, a folder of {kind} directory ({artifact})"
    elif (found := artifact_kind(resolved.parent)) is not None:
        where = f"{resolved.parent}, {found[0]} directory"
    else:
        return
    raise ConfigError(f"run directory {run_dir} would lie in {where}; a pipeline run gets a folder of its own: "
                      "choose another --out")


def check_run_dir(config: ExperimentConfig, run_dir: str | os.PathLike, update: bool = False) -> None:
    """Refuse a ``run_dir`` the pipeline must not write into; writes nothing.

    Raises:
        ConfigError: the directory holds a run with another config (listing the changes) and ``update`` is False,
            or it is a non-empty directory that the pipeline did not make (a user's ``config.yaml`` there does not
            make it a run directory: nothing in it is overwritten or deleted).
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        _refuse_a_new_run_inside_an_artifact(run_dir)
    if is_run_dir(run_dir):
        changes = config_differences(read_run_config(run_dir), config)
        if changes and not update:
            shown = "\n  ".join(changes[:12]) + ("\n  ..." if len(changes) > 12 else "")
            raise ConfigError(
                f"run directory {run_dir} was made with a different config; changed keys:\n  {shown}\n"
                "Use another --out directory, or pass --update to redo only the stages whose settings changed."
            )
    elif run_dir.is_dir() and any(entry.name not in LOCK_FILES for entry in run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir} exists, is not empty and is not a pipeline run directory (no {RUN_MARKER}); "
            "choose a new or empty --out directory"
        )


ARTIFACT_MARKERS = {"agent.json": "an agent", "model.safetensors": "a checkpoint", "metadata.json": "a dataset",
                    RUN_MARKER: "a pipeline run"}
"""The file that marks each kind of gmc-rl artifact directory, and the kind's name."""


AGENT_OWN_FOLDERS = ("checkpoints", "tb", "encoder", "action_fit", "eval")
"""The folders of an agent directory that its training writes (``gmc_rl.agents.agent_dir``); results go beside them."""


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


def check_results_out(out: str | os.PathLike, command: str) -> None:
    """Refuse an ``--out`` of ``gmc-rl evaluate`` or ``report`` that is another artifact's directory (an agent, a
    checkpoint, a dataset, a pipeline run's root) or lies in a pipeline run's ``eval/`` folder.

    That folder belongs to the run's evaluation and report stages: results written there by hand would stand as the
    run's own (its report stage, already done, skips and shows them) and be replaced by the next ``--update``. Any
    spelling counts (relative, ``..``, symbolic links): the check compares resolved paths.

    Raises:
        ConfigError: naming the run and the way round.
    """
    if str(out) == "":
        raise ConfigError(f"--out is empty; name the folder gmc-rl {command} writes its results into")
    resolved = resolve_path(out)
    found = artifact_kind(resolved)
    if found is not None:
        kind, marker = found
        raise ConfigError(f"--out {out} is {kind} directory ({marker}); gmc-rl {command} writes its results into "
                          "a folder of their own: choose another --out")
    for folder in (resolved, *resolved.parents):
        run = folder.parent
        if folder.name in AGENT_OWN_FOLDERS and (run / "agent.json").is_file():
            raise ConfigError(
                f"--out {out} lies in {folder}, the agent's own {folder.name}/ folder, which its training writes; "
                f"gmc-rl {command} writes elsewhere: choose another --out (e.g. {run / 'robustness'})"
            )
        if folder.name == "eval" and (run / RUN_MARKER).is_file():
            elsewhere = run.parent / f"{run.name}_{command}"
            raise ConfigError(
                f"--out {out} lies in {folder}, the evaluation folder of the pipeline run {run}, which its stages "
                f"own; gmc-rl {command} writes elsewhere: choose another --out (e.g. {elsewhere})"
            )
    inside = artifact_folder_holding(resolved)
    if inside is not None:
        artifact, kind, folder = inside
        raise ConfigError(f"--out {out} lies in {folder}, a folder of {kind} directory ({artifact}); gmc-rl {command} "
                          f"writes into a folder of its own: choose another --out (e.g. {artifact / 'robustness'})")


def prepare_run_dir(config: ExperimentConfig, run_dir: str | os.PathLike, update: bool = False) -> Path:
    """Check ``run_dir`` (:func:`check_run_dir`), create or reopen it, and write its marker and ``config.yaml``."""
    check_run_dir(config, run_dir, update)
    run_dir = Path(run_dir)
    ensure_writable_dir(run_dir, "run directory")
    if not (run_dir / RUN_MARKER).is_file():
        write_json_atomic(run_dir / RUN_MARKER, {"format": "gmc-rl-run", "version": 1})
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(config), sort_keys=False))
    return run_dir
