"""The one-command pipeline: collect -> pretrain GMC [-> pretrain MVAE] -> train agents -> evaluate -> report.

Everything goes into one run directory::

    RUN_DIR/
      config.yaml                  the resolved experiment config of this run
      data/                        collected dataset              (stage "collect", if a method needs an encoder)
      gmc/                         GMC checkpoint                 (stage "pretrain", method "gmc")
      mvae/                        MVAE checkpoint                (stage "mvae", method "mvae")
      agents/<method>-seed<N>/     one self-contained agent per method and seed (stage "train")
      eval/runs/<method>-seed<N>.json   evaluation of one agent under every condition (stage "evaluate")
      eval/results.json, results.md, results.png   the robustness tables of all methods (stage "report")
      eval/videos/                 one episode per method and condition (evaluate.video)
      stages/<stage>.json          done-markers

Skip-on-rerun: each stage's done-marker holds the hash of the config parts the stage depends on (and of the stages
it reads). On a rerun a stage whose marker matches and whose output exists is skipped; a stage that has output but
no marker (it was interrupted) is resumed (``resume=True`` for pretraining and training; data collection restarts).

A run directory remembers its config (``config.yaml``). Running it again with a different config is an error
naming the changed keys, unless ``update=True`` (``--update``): then the stages whose inputs changed are redone
from scratch and all others are kept (e.g. adding seeds or methods only trains the new agents; changing
``evaluate.episodes`` only re-evaluates).

Evaluation seeds: the agent trained with seed ``s`` is evaluated with episode seeds ``s`` (sub-env ``i`` of the
evaluation VecEnv gets ``s + i``), so ``gmc-rl evaluate --agent RUN_DIR/agents/gmc-seed0 --seeds 0`` reproduces the
pipeline's numbers for that agent.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from gmc_rl.config import ExperimentConfig, config_hash, from_dict, to_dict
from gmc_rl.errors import ConfigError
from gmc_rl.io import ensure_writable_dir, read_json, write_json_atomic, write_text_atomic

CONFIG_FILE = "config.yaml"
STAGES_DIR = "stages"
ENCODER_METHODS = ("gmc", "mvae")
SUBSETS_TOKEN = "subsets"
"""In ``evaluate.conditions``, expands to "complete" + every non-empty proper subset of the modalities."""

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------------------
# Conditions.


def resolve_conditions(requested: Sequence[str], modalities: Sequence[str]) -> list[str]:
    """The evaluation conditions in canonical form, without duplicates.

    An empty list means ``complete`` + every non-empty proper subset of ``modalities``; the token ``subsets``
    inside a list expands to the same. Every other entry is parsed (and so validated) by
    :func:`gmc_rl.wrappers.conditions.parse_condition` and replaced by its canonical name ("sound+image" ->
    "image+sound", "dropout:0.50" -> "dropout:0.5").
    """
    from gmc_rl.wrappers.conditions import all_subset_conditions, parse_condition

    if isinstance(requested, str):
        raise ConfigError(f"conditions must be a list of strings, got the string {requested!r}")
    items = list(requested) or [SUBSETS_TOKEN]
    out: list[str] = []
    for item in items:
        names = all_subset_conditions(modalities) if item == SUBSETS_TOKEN else [parse_condition(item, modalities).name]
        out.extend(name for name in names if name not in out)
    return out


def env_modalities(env_id: str, env_kwargs: dict[str, Any] | None = None) -> list[str]:
    """Modality names of an env (canonical order), making it once."""
    from agents.observations import env_modalities as _env_modalities

    return _env_modalities(env_id, env_kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Run directory bookkeeping.


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
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a gmc-rl pipeline run directory")
    try:
        return from_dict(ExperimentConfig, yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ConfigError) as exc:
        raise ConfigError(f"{path} is not a valid experiment config: {exc}") from exc


def prepare_run_dir(config: ExperimentConfig, run_dir: str | os.PathLike, update: bool = False) -> Path:
    """Create or reopen a run directory for ``config`` and write its ``config.yaml``.

    Raises:
        ConfigError: the directory holds a run with another config (listing the changes) and ``update`` is False,
            or it is a non-empty directory that is not a pipeline run directory.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if config_path.is_file():
        previous = read_run_config(run_dir)
        changes = config_differences(previous, config)
        if changes and not update:
            shown = "\n  ".join(changes[:12]) + ("\n  ..." if len(changes) > 12 else "")
            raise ConfigError(
                f"run directory {run_dir} was made with a different config; changed keys:\n  {shown}\n"
                "Use another --out directory, or pass --update to redo only the stages whose settings changed."
            )
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir} exists, is not empty and is not a pipeline run directory (no {CONFIG_FILE}); "
            "choose a new or empty --out directory"
        )
    ensure_writable_dir(run_dir, "run directory")
    write_text_atomic(config_path, yaml.safe_dump(to_dict(config), sort_keys=False))
    return run_dir


class Stage:
    """One step of the pipeline: its output path, the hash of everything it depends on, and its done-marker.

    The marker ``stages/<name>.json`` says ``{"hash": ..., "status": "running" | "done"}``. A stage is done when
    the marker is "done" with the current hash and the output exists; a "running" marker with the current hash
    means an interrupted attempt that can be resumed.
    """

    def __init__(self, run_dir: Path, name: str, output: Path, inputs: Any) -> None:
        self.run_dir = run_dir
        self.name = name
        self.output = output
        self.hash = config_hash(inputs)
        self.marker = run_dir / STAGES_DIR / f"{name.replace('/', '_')}.json"

    def _marker(self) -> dict[str, Any]:
        try:
            data = read_json(self.marker, "stage marker")
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_done(self) -> bool:
        """True if the marker is "done" with this stage's hash and the output exists."""
        marker = self._marker()
        return marker.get("hash") == self.hash and marker.get("status") == "done" and self.output.exists()

    def begin(self, resumable: bool = True) -> bool:
        """Prepare to run the stage; return ``resume``.

        ``resume`` is True when an interrupted attempt with the same inputs left output behind and the stage is
        ``resumable``. Any other existing output (made with other inputs, not recorded by a marker, or a partial
        output of a stage that cannot resume) is removed first, so the stage starts from scratch.
        """
        marker = self._marker()
        same = marker.get("hash") == self.hash
        resume = resumable and same and marker.get("status") == "running" and self.output.exists()
        if not resume and self.output.exists():
            if self.output.is_dir():
                shutil.rmtree(self.output)
            else:
                self.output.unlink()
        write_json_atomic(self.marker, {"stage": self.name, "hash": self.hash, "status": "running",
                                        "output": str(self.output.relative_to(self.run_dir))})
        return resume

    def finish(self, seconds: float) -> None:
        """Record the stage as done."""
        write_json_atomic(self.marker, {"stage": self.name, "hash": self.hash, "status": "done",
                                        "output": str(self.output.relative_to(self.run_dir)),
                                        "seconds": round(seconds, 2)})


def _run_stage(stage: Stage, log: Log, label: str, work: Callable[[bool], Any],
               resumable: bool = True) -> tuple[Any, bool]:
    """Run ``work(resume)`` for ``stage`` unless it is done; return (its result or None, whether it ran)."""
    if stage.is_done():
        log(f"[{label}] up to date, skipped ({stage.output.relative_to(stage.run_dir)})")
        return None, False
    resume = stage.begin(resumable)
    log(f"[{label}] {'resuming' if resume else 'running'} -> {stage.output.relative_to(stage.run_dir)}")
    start = time.perf_counter()
    result = work(resume)
    seconds = time.perf_counter() - start
    stage.finish(seconds)
    log(f"[{label}] done in {seconds:.0f} s")
    return result, True


# ---------------------------------------------------------------------------------------------------------------
# The pipeline.


def agent_name(method: str, seed: int) -> str:
    """Directory name of the agent of ``method`` trained with ``seed`` (``agents/<method>-seed<N>``)."""
    return f"{method}-seed{seed}"


def _as_agent(agent: Any) -> Any:
    from agents import load_agent

    return load_agent(agent) if isinstance(agent, (str, os.PathLike)) else agent


def evaluate_agent(agent: Any, conditions: Sequence[str], episodes: int, seeds: Sequence[int],
                   n_envs: int, progress: bool = True) -> dict[str, Any]:
    """Evaluate an agent (an ``agents.Agent`` or its directory) under ``conditions``.

    Episodes are run by :func:`gmc_rl.evaluate.evaluate_conditions` on ``agent.make_vec_env`` with deterministic
    actions. Returns ``{"agent", "method", "env_id", "seeds", "evaluation"}``.
    """
    from gmc_rl.evaluate import evaluate_conditions, sb3_predictor

    agent = _as_agent(agent)
    seeds = [int(s) for s in seeds]
    evaluation = evaluate_conditions(agent.make_vec_env, sb3_predictor(agent.model), list(conditions), episodes,
                                     seeds, n_envs, progress=progress, description=Path(agent.path).name)
    return {"agent": str(agent.path), "method": agent.method, "env_id": agent.env_id, "seeds": seeds,
            "evaluation": evaluation}


def record_agent_videos(agent: Any, conditions: Sequence[str], out_dir: str | os.PathLike,
                        seed: int = 0, log: Log = print) -> list[Path]:
    """One episode video per condition of an agent (or its directory): ``out_dir/<agent>-<condition>.mp4``
    (``.gif`` when no MP4 writer is installed). The agent's envs are rebuilt with ``render_mode="rgb_array"``.
    """
    from agents.observations import make_method_vec_env
    from gmc_rl.evaluate import sb3_predictor
    from gmc_rl.video import record_episode

    agent = _as_agent(agent)
    env_kwargs = {**agent.env_kwargs, "render_mode": "rgb_array"}
    name = Path(agent.path).name
    paths = []
    for condition in conditions:
        venv = make_method_vec_env(agent.method, agent.env_id, env_kwargs, condition, 1, seed, agent.encoder)
        try:
            safe = condition.replace(":", "_").replace("+", "-")
            path = record_episode(venv, sb3_predictor(agent.model), Path(out_dir) / f"{name}-{safe}.mp4",
                                  title=f"{name} | {condition}", seed=seed)
        finally:
            venv.close()
        log(f"  video {path}")
        paths.append(path)
    return paths


def run_pipeline(config: ExperimentConfig, run_dir: str | os.PathLike, *, update: bool = False,
                 progress: bool = True, log: Log = print) -> dict[str, Any]:
    """Run (or continue) the whole experiment in ``run_dir``; return the results document (``eval/results.json``).

    Stages, each skipped when its done-marker matches (see the module docstring): collect (when a method needs an
    encoder) -> pretrain GMC ("gmc") -> pretrain MVAE ("mvae") -> train one agent per method and seed ->
    evaluate each agent under every condition -> write ``eval/results.{json,md,png}`` (and videos).

    Args:
        config: the experiment.
        run_dir: the run directory (created if needed).
        update: allow a run directory made with another config; stages whose inputs changed are redone.
        progress: show progress bars.
        log: where progress messages go.

    Raises:
        ConfigError: the run directory holds another config and ``update`` is False, or the config is invalid
            for the env (e.g. an unknown modality in a condition).
    """
    from gmc_rl.results import build_results, load_results, pool_runs, write_results

    # The env and the conditions are checked before anything is written, so a typo leaves no run directory.
    modalities = env_modalities(config.env_id, config.env_kwargs)
    conditions = resolve_conditions(config.evaluate.conditions, modalities)
    run_dir = prepare_run_dir(config, run_dir, update=update)
    methods, seeds = list(config.methods), [int(s) for s in config.seeds]
    log(f"gmc-rl pipeline: {config.name} on {config.env_id}; methods {methods}, seeds {seeds}; run dir {run_dir}")
    env = {"env_id": config.env_id, "env_kwargs": config.env_kwargs}

    # 1. Data and encoders (only for the methods that read an encoder).
    encoders: dict[str, tuple[Path, str]] = {}
    if any(m in ENCODER_METHODS for m in methods):
        data = Stage(run_dir, "collect", run_dir / "data", {**env, "collect": to_dict(config.collect)})
        _run_stage(data, log, "collect", lambda resume: _collect(config, data.output, progress), resumable=False)
        if "gmc" in methods:
            gmc = Stage(run_dir, "pretrain", run_dir / "gmc", {"data": data.hash, "pretrain": to_dict(config.pretrain)})
            _run_stage(gmc, log, "pretrain GMC",
                       lambda resume: _pretrain(config, data.output, gmc.output, resume, progress))
            encoders["gmc"] = (gmc.output, gmc.hash)
        if "mvae" in methods:
            mvae = Stage(run_dir, "mvae", run_dir / "mvae",
                         {"data": data.hash, "pretrain": to_dict(config.pretrain), "model": "mvae"})
            _run_stage(mvae, log, "pretrain MVAE",
                       lambda resume: _pretrain_mvae(config, data.output, mvae.output, resume, progress))
            encoders["mvae"] = (mvae.output, mvae.hash)

    # 2. Agents, one per method and seed, trained on complete observations.
    agents: dict[tuple[str, int], Stage] = {}
    for method in methods:
        encoder_dir, encoder_hash = encoders.get(method, (None, None))
        for seed in seeds:
            name = agent_name(method, seed)
            stage = Stage(run_dir, f"train_{name}", run_dir / "agents" / name,
                          {**env, "agent": to_dict(config.agent), "method": method, "seed": seed,
                           "encoder": encoder_hash})
            _run_stage(stage, log, f"train {name}",
                       lambda resume, m=method, s=seed, st=stage, e=encoder_dir:
                       _train(config, m, s, st.output, e, resume, progress))
            agents[(method, seed)] = stage

    # 3. Evaluation of every agent under every condition (agent seed s -> evaluation seed s).
    ev = config.evaluate
    evaluations: dict[tuple[str, int], Stage] = {}
    for (method, seed), agent_stage in agents.items():
        name = agent_name(method, seed)
        stage = Stage(run_dir, f"evaluate_{name}", run_dir / "eval" / "runs" / f"{name}.json",
                      {"agent": agent_stage.hash, "conditions": conditions, "episodes": ev.episodes,
                       "n_envs": ev.n_envs, "seeds": [seed]})

        def evaluate(resume: bool, st=stage, a=agent_stage, s=seed) -> None:
            record = evaluate_agent(a.output, conditions, ev.episodes, [s], ev.n_envs, progress=progress)
            record["agent"] = str(a.output.relative_to(run_dir))
            write_json_atomic(st.output, record)

        _run_stage(stage, log, f"evaluate {name}", evaluate, resumable=False)
        evaluations[(method, seed)] = stage

    # 4. Tables and plot of all methods (and optional videos).
    eval_dir = run_dir / "eval"
    report = Stage(run_dir, "report", eval_dir / "results.json",
                   {"evaluations": [s.hash for s in evaluations.values()], "methods": methods, "seeds": seeds})

    def write_report(resume: bool) -> None:
        per_method = {}
        for method in methods:
            runs = []
            for seed in seeds:
                record = read_json(evaluations[(method, seed)].output, "agent evaluation")
                runs.append((agent_name(method, seed), record["evaluation"]))
            per_method[method] = pool_runs(runs)
        settings = {"episodes": ev.episodes, "seeds": seeds, "n_envs": ev.n_envs, "conditions": conditions,
                    "evaluation_seeds": "each agent is evaluated with its own training seed",
                    "config_hash": config_hash(config)}
        results = build_results(per_method, env_id=config.env_id, settings=settings,
                                agents={m: [f"agents/{agent_name(m, s)}" for s in seeds] for m in methods})
        write_results(results, eval_dir)

    _run_stage(report, log, "report", write_report, resumable=False)
    if ev.video:
        videos = Stage(run_dir, "video", eval_dir / "videos", {"report": report.hash})
        _run_stage(videos, log, "video", lambda resume: [
            record_agent_videos(agents[(m, seeds[0])].output, conditions, videos.output, seed=seeds[0], log=log)
            for m in methods], resumable=False)
    log(f"results: {eval_dir / 'results.md'} (also results.json, results.png)")
    return load_results(eval_dir)


def _collect(config: ExperimentConfig, out_dir: Path, progress: bool) -> Path:
    from gmc_rl.collect import collect

    return collect(config, out_dir, progress=progress)


def _pretrain(config: ExperimentConfig, data_dir: Path, out_dir: Path, resume: bool, progress: bool) -> Path:
    from gmc_rl.pretrain import pretrain

    return pretrain(config, data_dir, out_dir, resume=resume, progress=progress)


def _pretrain_mvae(config: ExperimentConfig, data_dir: Path, out_dir: Path, resume: bool, progress: bool) -> Path:
    from agents.mvae import pretrain_mvae

    return pretrain_mvae(config, data_dir, out_dir, resume=resume, progress=progress)


def _train(config: ExperimentConfig, method: str, seed: int, out_dir: Path, encoder_dir: Path | None,
           resume: bool, progress: bool) -> Path:
    from agents import train_agent

    return train_agent(config, method, seed, out_dir, encoder_dir=encoder_dir, resume=resume, progress_bar=progress)
