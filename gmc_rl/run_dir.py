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

from gmc_rl.artifacts import (  # noqa: F401  (re-exported for the orchestration)
    AGENT_OWN_FOLDERS,
    ARTIFACT_MARKERS,
    LOCK_FILES,
    RUN_MARKER,
    artifact_folder_holding,
    artifact_kind,
    check_results_folder,
)
from gmc_rl.config import ExperimentConfig, dump_yaml, load_yaml, stored_config, to_dict
from gmc_rl.errors import ConfigError
from gmc_rl.io import (
    ensure_writable_dir,
    refuse_long_name,
    refuse_non_file,
    require_existing,
    resolve_path,
    write_json_atomic,
    write_text_atomic,
)
from gmc_rl.stage_files import STAGES_DIR

CONFIG_FILE = "config.yaml"


def agent_name(method: str, seed: int) -> str:
    """Directory name of the agent of ``method`` trained with ``seed`` (``agents/<method>-seed<N>``); its evaluation
    record is ``eval/runs/<name>.json``."""
    return f"{method}-seed{seed}"


def flatten_keys(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested settings as dotted keys, for naming the ones that differ."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten_keys(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Human-readable ``key: old -> new`` lines for every config key that differs."""
    a, b = flatten_keys(to_dict(old)), flatten_keys(to_dict(new))
    return [f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def read_run_config(run_dir: str | os.PathLike) -> ExperimentConfig:
    """The config stored in a run directory's ``config.yaml``."""
    path = require_existing(run_dir, "run directory") / CONFIG_FILE
    refuse_non_file(path, "run config", ConfigError, "restore the run's config.yaml from a copy")
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
    refuse_long_name(run_dir, "run directory", ConfigError)  # before it is probed or a parent made
    if is_run_dir(run_dir):
        changes = config_differences(read_run_config(run_dir), config)
        if changes and not update:
            shown = "\n  ".join(changes[:12]) + ("\n  ..." if len(changes) > 12 else "")
            raise ConfigError(
                f"run directory {run_dir} was made with a different config; changed keys:\n  {shown}\n"
                "Use another --out directory, or pass --update to redo only the stages whose settings changed."
            )
    else:
        _refuse_a_new_run_inside_an_artifact(run_dir)
        if run_dir.is_dir() and any(entry.name not in LOCK_FILES for entry in run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} exists, is not empty and is not a pipeline run directory (no {RUN_MARKER}); "
                "choose a new or empty --out directory"
            )


def check_results_out(out: str | os.PathLike, command: str) -> None:
    """Refuse an ``--out`` of ``gmc-rl evaluate`` or ``report`` that is another artifact's directory or lies in one
    of its folders (:func:`gmc_rl.artifacts.check_results_folder`).

    Raises:
        ConfigError: naming the folder, the artifact and the way round.
    """
    check_results_folder(out, "--out", f"gmc-rl {command}")


def prepare_run_dir(config: ExperimentConfig, run_dir: str | os.PathLike, update: bool = False) -> Path:
    """Check ``run_dir`` (:func:`check_run_dir`), create or reopen it, and write its marker and ``config.yaml``."""
    check_run_dir(config, run_dir, update)
    run_dir = Path(run_dir)
    ensure_writable_dir(run_dir, "run directory")
    if not (run_dir / RUN_MARKER).is_file():
        write_json_atomic(run_dir / RUN_MARKER, {"format": "gmc-rl-run", "version": 1})
    # dump_yaml: a string such as "1e3" is quoted, so load_yaml reads it back as the string (not the float 1000.0)
    write_text_atomic(run_dir / CONFIG_FILE, dump_yaml(to_dict(config), sort_keys=False))
    return run_dir
