"""Reading and checking gmc-rl's result files: ``results.json`` and the per-agent evaluation records.

Every key the tables, plots and pooling read is checked for its JSON type, and every number for being finite, so
a damaged or hand-edited file is refused with a ConfigError naming the file and the key, not a raw KeyError later.
Kept apart from :mod:`gmc_rl.results`, which re-exports every name.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gmc_rl.errors import ConfigError
from gmc_rl.io import MAX_RESULTS_JSON_BYTES, FieldType, read_json, read_json_object, require_fields

FORMAT = "gmc-rl-results"
VERSION = 1

RESULTS_FIELDS: dict[str, Any] = {
    "format": str, "version": int, "env_id": (str, type(None)), "methods": list, "conditions": list,
    "settings": dict, "agents": dict, "results": dict,
}
"""Keys of ``results.json``, with their JSON types."""

_INTERVAL: dict[str, FieldType] = {"mean": float, "half_width": (float, type(None))}
_UNIT: dict[str, FieldType] = {"returns": list, "lengths": list}
_DIAGNOSTICS: dict[str, FieldType] = {"latent_gap": float, "action_gap": float, "drift": float,
                                      "reward_loss": (float, type(None))}
"""What the transfer-diagnostics table reads of each agent and condition (:func:`diagnostics_table`)."""


def check_summary(summary: Any, source: str | os.PathLike, where: str) -> None:
    """Raise ConfigError unless ``summary`` has the structure :func:`gmc_rl.evaluate.summarize` gives it.

    Checks what the tables, plots and pooling read: the pooled and per-seed metrics and each unit's episodes.
    ``where`` is the summary's key path in ``source``, named in the message.
    """
    require_fields(summary, {"per_seed": list}, source, ConfigError, where=where,
                   optional={"per_step_reward": dict, "episode_return": dict, "across_seeds": dict})
    for metric in ("per_step_reward", "episode_return"):
        if metric in summary:
            require_fields(summary[metric], _INTERVAL, source, ConfigError, where=f"{where}.{metric}")
    for metric, stats in summary.get("across_seeds", {}).items():
        require_fields(stats, _INTERVAL, source, ConfigError, where=f"{where}.across_seeds.{metric}")
    for index, unit in enumerate(summary["per_seed"]):
        name = f"{where}.per_seed[{index}]"
        require_fields(unit, _UNIT, source, ConfigError, where=name,
                       optional={"seed": (int, type(None)), "agent": str, "per_step_reward": float})
        values = [*unit["returns"], *unit["lengths"]]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{source}: key {name!r} must list numbers of returns and lengths")


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``results.json`` (or the directory holding it), checking that it is a gmc-rl results file.

    Every key the tables and plots read is checked for its type (:func:`check_summary`), so a damaged file is
    refused with a ConfigError naming the file and the key.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = read_json(path, "results file", MAX_RESULTS_JSON_BYTES)
    return check_results(data, path, "results file")


def check_results(data: Any, source: str | os.PathLike, what: str = "results document") -> dict[str, Any]:
    """Raise ConfigError (naming ``source`` and the key) unless ``data`` is a gmc-rl results document: its format
    and version, every key the tables and plots read with its type (:func:`check_summary`), and (read from a file or
    not) only finite numbers, which is all strict JSON holds. Return it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{source} is not a gmc-rl {what} (no 'format': {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ConfigError(f"{source} has results format version {data.get('version')}, this gmc-rl reads {VERSION}")
    require_fields(data, RESULTS_FIELDS, source, ConfigError, optional={"diagnostics": dict})
    for method in data["methods"]:
        per_condition = require_fields(data["results"], {str(method): dict}, source, ConfigError, where="results")
        for condition, summary in per_condition[str(method)].items():
            check_summary(summary, source, f"results.{method}.{condition}")
    for method, per_agent in data.get("diagnostics", {}).items():
        require_fields(per_agent, {}, source, ConfigError, where=f"diagnostics.{method}")
        for agent, per_condition in per_agent.items():
            require_fields(per_condition, {}, source, ConfigError, where=f"diagnostics.{method}.{agent}")
            for condition, gaps in per_condition.items():
                require_fields(gaps, _DIAGNOSTICS, source, ConfigError,
                               where=f"diagnostics.{method}.{agent}.{condition}")
    where = _not_finite(data)
    if where is not None:
        raise ConfigError(f"{source}: key {where!r} is not a finite number (NaN or infinity), which results cannot "
                          "hold (strict JSON has no NaN): drop or fix that value")
    return data


def _not_finite(value: Any, where: str = "") -> str | None:
    """The key path of the first NaN or infinite float in ``value`` (nested dicts and lists), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) \
        else ()
    for key, item in items:
        inner = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = _not_finite(item, inner)
        if found is not None:
            return found
    return None


RECORD_FIELDS: dict[str, Any] = {"agent": str, "method": str, "env_id": str, "seeds": list, "evaluation": dict}
"""Keys of an agent's evaluation record (the pipeline's ``eval/runs/<agent>.json``), with their JSON types."""


def read_evaluation_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read an agent's evaluation record (``eval/runs/<agent>.json``), checking every key that pooling reads.

    Raises:
        FileNotFoundError: no file at ``path``.
        ConfigError: invalid JSON, or a missing or mistyped key (the message names the file and the key).
    """
    record = read_json_object(path, "agent evaluation", RECORD_FIELDS, ConfigError,
                              optional={"diagnostics": (dict, type(None)), "rules": dict},
                              max_bytes=MAX_RESULTS_JSON_BYTES)
    for condition, summary in record["evaluation"].items():
        check_summary(summary, path, f"evaluation.{condition}")
    for rule, evaluation in record.get("rules", {}).items():
        if not isinstance(evaluation, dict):
            raise ConfigError(f"{path}: rules.{rule} must be a mapping of conditions, got {type(evaluation).__name__}")
        for condition, summary in evaluation.items():
            check_summary(summary, path, f"rules.{rule}.{condition}")
    return record
