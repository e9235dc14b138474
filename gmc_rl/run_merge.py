"""One results document from the agent evaluations of several pipeline run directories (``gmc-rl report``).

:func:`merge_runs` pools the agents of each method across runs, as one run with more seeds would, and refuses a run
or record given twice (:func:`_refuse_a_second_copy`). :mod:`gmc_rl.pipeline` re-exports :func:`merge_runs`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gmc_rl.config import (
    ACTION_FIT_KEYS,
    ExperimentConfig,
    agent_identity,
    collect_identity,
    pretrain_identity,
    to_dict,
)
from gmc_rl.errors import ConfigError
from gmc_rl.io import distinct_paths, require_existing
from gmc_rl.methods import encoder_method_names
from gmc_rl.run_dir import agent_name, flatten_keys, read_run_config
from gmc_rl.stage_files import changed_message, changed_run_files, marker_path, read_marker


def _refuse_a_second_copy(record: Mapping[str, Any], path: Path, seen: dict[str, Path]) -> None:
    """Refuse ``record`` (read from ``path``) when a record already read holds the same agent evaluation.

    A run copied with ``cp -r`` (or one record copied, renamed or re-indented) holds the same agent, seeds and
    episodes as the original: pooling both would count every episode twice and shrink the intervals as if there were
    twice the data. Records are compared by content (every key, canonical JSON), not by file name or bytes; two
    distinct agents never share the agent path recorded at evaluation time together with every episode's return.
    """
    key = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
    first = seen.setdefault(key, path)
    if first is not path:
        raise ConfigError(
            f"{first} and {path} hold the same agent evaluation (agent {record['agent']!r}, method "
            f"{record['method']!r}, seeds {record['seeds']}): one run is a copy of the other, or a record was "
            "copied; pooling both would count its episodes twice. Give each run once (drop the copy)")


def _refuse_other_env_kwargs(env_kwargs: Mapping[str, dict[str, Any]]) -> None:
    """Refuse runs of one env id made with different ``env_kwargs`` (gravity, episode length, ...): their agents
    solve different tasks, and pooled into one cell their returns would be averaged as if they were seeds of one.

    ``env_kwargs`` maps each run directory to its config's ``env_kwargs``; they must be equal as written (a value
    left at its default and the same value given explicitly count as different: give the runs the same
    ``--env-kwargs``)."""
    (first, first_kwargs), *rest = env_kwargs.items()
    for run_dir, kwargs in rest:
        if kwargs != first_kwargs:
            def shown(values: Mapping[str, Any], key: str) -> str:
                return repr(values[key]) if key in values else "unset"

            differ = ", ".join(f"{key}: {shown(first_kwargs, key)} vs {shown(kwargs, key)}"
                               for key in sorted({*first_kwargs, *kwargs}, key=str)
                               if shown(first_kwargs, key) != shown(kwargs, key))
            raise ConfigError(
                f"{first} and {run_dir} were made with different env_kwargs ({differ}; {first}: {first_kwargs}, "
                f"{run_dir}: {kwargs}): their agents solve differently configured envs, and pooling them "
                "would average different tasks as one; report them separately")


def _refuse_unequal_conditions(conditions: Mapping[str, list[tuple[str, list[str]]]]) -> None:
    """Refuse a table row whose agents were evaluated under different conditions (runs evaluated with different
    ``evaluate.conditions``): its cells would pool different sets of agents (the complete cell two, the sound cell
    one), and the change relative to complete would compare different agents.

    ``conditions`` maps each row to its ``(agent, conditions)`` pairs in reading order."""
    for row, items in conditions.items():
        first_name, first_conditions = items[0]
        for name, own in items[1:]:
            if set(own) != set(first_conditions):
                raise ConfigError(
                    f"{first_name} and {name} ({row!r} agents) were evaluated under different conditions "
                    f"({first_conditions} vs {own}): pooled, each condition's cell would hold a different set of "
                    f"agents and the change relative to complete would compare different agents; evaluate the runs "
                    "under the same evaluate.conditions (e.g. rerun one with `gmc-rl pipeline --update "
                    "--evaluate.conditions ...`) or report them separately")


def agent_settings(config: ExperimentConfig, method: str) -> dict[str, Any]:
    """Every setting ``method``'s agents in a run with ``config`` were made from, but the seeds: the agent section
    (with the method's hyperparameters, its distillation and action fit), for a method that reads an encoder the
    collect and pretrain sections, and the evaluation's action limit. Agents of one method pooled from several runs
    must agree on all of it."""
    agent = to_dict(config.agent)
    settings: dict[str, Any] = {"agent": {**agent_identity(config.agent, method),
                                          **{key: agent[key] for key in ACTION_FIT_KEYS if method == "gmc"}}}
    if config.evaluate.action_limit > 0:  # scores under a clipped action are another measurement
        settings["evaluate"] = {"action_limit": config.evaluate.action_limit}
    if method in encoder_method_names():
        if config.distill_teacher():
            settings["agent"].update({key: agent[key] for key in ("distill_rounds", "distill_steps")},
                                     distill_from=config.distill_teacher())
        settings["collect"] = {key: value for key, value in collect_identity(config.collect).items() if key != "seed"}
        settings["pretrain"] = {key: value for key, value in pretrain_identity(config.pretrain, method).items()
                                if key != "seed"}
    return json.loads(json.dumps(settings))


def _refuse_other_settings(settings: Mapping[str, list[tuple[str, dict[str, Any]]]]) -> None:
    """Refuse a method whose agents come from runs made with different settings (another latent size, another
    number of training steps): one row would average different methods as if they were seeds of one.

    ``settings`` maps each method to its ``(run directory, agent_settings)`` pairs in reading order."""
    for method, items in settings.items():
        first_run, first = items[0]
        for run_dir, own in items[1:]:
            if own != first:
                a, b = flatten_keys(first), flatten_keys(own)
                differ = "; ".join(f"{key}: {a.get(key, 'unset')!r} vs {b.get(key, 'unset')!r}"
                                   for key in sorted({*a, *b}) if a.get(key, "unset") != b.get(key, "unset"))
                raise ConfigError(
                    f"the {method} agents of {first_run} and {run_dir} were made with different settings ({differ}): "
                    "pooled, one row would average different methods as if they were seeds of one; report them "
                    "separately (or leave the method out of one with --methods)")


def _configured_records(run_dir: Path, config: ExperimentConfig) -> list[Path]:
    """The evaluation records of the agents ``config`` names (every method x seed), in that order.

    Records of agents the config no longer names (left by a run whose seeds or methods were changed with
    ``--update``) are not read: they were made with other settings. A named agent without a record means the run is
    not finished, and is refused rather than silently left out of the table.
    """
    changed = changed_run_files(run_dir)
    if changed:
        raise ConfigError(changed_message(run_dir, changed, "report it"))
    folder = run_dir / "eval" / "runs"
    names = [agent_name(method, int(seed)) for method in config.methods for seed in config.seeds]
    missing = [name for name in names if not (folder / f"{name}.json").is_file()]
    if missing:
        raise ConfigError(f"{run_dir} is not finished: no evaluation of {', '.join(missing[:5])}"
                          f"{' and more' if len(missing) > 5 else ''} (eval/runs/); rerun `gmc-rl pipeline --out "
                          f"{run_dir}` to finish it, then report")
    outdated = [name for name in names if _marker_status(run_dir, f"evaluate_{name}") not in (None, "done")]
    if outdated:
        raise ConfigError(f"{run_dir} is not finished: the evaluation of {', '.join(outdated[:5])}"
                          f"{' and more' if len(outdated) > 5 else ''} was made with settings the run's config no "
                          f"longer has, or is under way; rerun `gmc-rl pipeline --out {run_dir}` to finish it, then "
                          "report")
    return [folder / f"{name}.json" for name in names]


def _marker_status(run_dir: Path, stage: str) -> str | None:
    """The status in the stage marker of ``stage`` in ``run_dir`` (None when there is none to read)."""
    status = read_marker(marker_path(run_dir, stage)).get("status")
    return status if isinstance(status, str) else None


def merge_runs(run_dirs: Sequence[str | os.PathLike], methods: Sequence[str] | None = None) -> dict[str, Any]:
    """One results document from the agent evaluations of several pipeline run directories.

    Reads every ``RUN_DIR/eval/runs/<agent>.json`` (written by the pipeline's evaluate stages), pools the agents of
    each method across the runs (as one run with more seeds would) and returns the document :func:`write_results`
    takes. Use it to put baselines trained in separate runs (another machine, another time budget) into one table.

    Args:
        run_dirs: pipeline run directories of the same env; a directory given twice (in any spelling, or through a
            symlink) is read once.
        methods: keep only these methods, in this order (default: every method, in first-seen order).

    Raises:
        ConfigError: a directory without evaluations, runs of different envs (another env id, or the same id with
            other ``env_kwargs``), agents of one method evaluated under different conditions, or a requested
            method missing.
    """
    from gmc_rl.results import build_results, pool_runs, read_evaluation_record, record_rows

    run_dirs = distinct_paths(run_dirs)
    runs: dict[str, list[tuple[str, Any]]] = {}
    agents: dict[str, list[str]] = {}
    env_ids: set[str] = set()
    episodes: dict[str, int] = {}
    diagnostics: dict[str, dict[str, Any]] = {}
    env_kwargs: dict[str, dict[str, Any]] = {}
    conditions: dict[str, list[tuple[str, list[str]]]] = {}
    seen_records: dict[str, Path] = {}  # canonical content of each evaluation record -> the file it came from
    made_with: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # method -> (run, agent_settings) per run
    for run_dir in map(Path, run_dirs):
        require_existing(run_dir, "run directory")
        if not any((run_dir / "eval" / "runs").glob("*.json")):
            raise ConfigError(f"{run_dir} has no agent evaluations (eval/runs/*.json); run `gmc-rl pipeline` there "
                              "first")
        run_config = read_run_config(run_dir)
        records = _configured_records(run_dir, run_config)
        episodes[str(run_dir)] = run_config.evaluate.episodes
        env_kwargs[str(run_dir)] = dict(run_config.env_kwargs or {})
        for path in records:
            record = read_evaluation_record(path)
            _refuse_a_second_copy(record, path, seen_records)
            env_ids.add(record["env_id"])
            name = f"{run_dir}/{record['agent']}"
            for row, evaluation in record_rows(record):
                runs.setdefault(row, []).append((name, evaluation))
                agents.setdefault(row, []).append(name)
                conditions.setdefault(row, []).append((name, list(evaluation)))
            if record.get("diagnostics"):
                diagnostics.setdefault(record["method"], {})[name] = record["diagnostics"]
            if not any(item[0] == str(run_dir) for item in made_with.get(record["method"], [])):
                made_with.setdefault(record["method"], []).append(
                    (str(run_dir), agent_settings(run_config, record["method"])))
    if len(env_ids) > 1:
        raise ConfigError(f"the runs evaluate different envs: {sorted(env_ids)}")
    _refuse_other_env_kwargs(env_kwargs)
    _refuse_unequal_conditions(conditions)
    _refuse_other_settings(made_with)
    order = list(methods) if methods else list(runs)
    missing = [m for m in order if m not in runs]
    if missing:
        raise ConfigError(f"no evaluations of method(s) {missing} in {[str(d) for d in run_dirs]}; "
                          f"found {sorted(runs)}")
    same_episodes = len(set(episodes.values())) == 1
    settings = {"episodes": next(iter(episodes.values())) if same_episodes else episodes,
                "runs": [str(d) for d in run_dirs],
                "evaluation_seeds": "each agent is evaluated with its own training seed"}
    return build_results({m: pool_runs(runs[m]) for m in order}, env_id=env_ids.pop(),
                         settings=settings, agents={m: agents[m] for m in order},
                         diagnostics={m: diagnostics[m] for m in order if m in diagnostics})
