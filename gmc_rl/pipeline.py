"""The one-command pipeline: collect -> pretrain the encoders -> train agents -> evaluate -> report.

What a method needs comes from the registry :mod:`gmc_rl.methods`: every method with an encoder gets the collected
data and a pretraining stage (:attr:`~gmc_rl.methods.RepresentationMethod.encoder_stage`), every agent of such a
method gets transfer diagnostics. Everything goes into one run directory::

    RUN_DIR/
      config.yaml                  the resolved experiment config of this run
      data/                        collected dataset              (stage "collect", if a method needs an encoder)
      gmc/                         GMC checkpoint                 (stage "pretrain", method "gmc")
      mvae/                        MVAE checkpoint                (stage "mvae", method "mvae")
      <name>/                      encoder of another registered method  (stage "pretrain_<name>")
      agents/<method>-seed<N>/     one self-contained agent per method and seed (stage "train")
      eval/runs/<method>-seed<N>.json   evaluation of one agent under every condition (stage "evaluate")
      eval/results.json, results.md, results.png   the robustness tables of all methods (stage "report")
      eval/tb/                     the same as TensorBoard scalars and text (gmc_rl.results.write_tensorboard)
      eval/videos/                 one episode per method and condition (evaluate.video)
      stages/<stage>.json          done-markers
      gmc-rl-run.json              marks a directory made by the pipeline
      .gmc-rl.lock(.json)          the lock held while a pipeline runs here, and who holds it

Skip-on-rerun: each stage's done-marker holds the hash of the config parts the stage depends on (and of the stages
it reads). On a rerun a stage whose marker matches and whose output exists is skipped; a stage whose marker says it
was interrupted is resumed (``resume=True`` for pretraining and training; data collection restarts). Output that no
marker records is never deleted (:meth:`gmc_rl.stages.Stage.begin`): pretraining and training resume it if it is
theirs, other stages refuse.

Ownership: the pipeline works only in a directory it made (``gmc-rl-run.json``) or an empty one, and holds the
directory's lock (:mod:`gmc_rl.locking`) while it runs, so a second process on the same ``--out`` is refused.

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
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from gmc_rl.agent_evaluation import (  # noqa: F401  (re-exported: gmc_rl.pipeline is where callers import them)
    agent_predictor,
    diagnose_agent,
    evaluate_agent,
    record_agent_videos,
    remove_earlier_videos,
)
from gmc_rl.artifacts import AGENT_FILES, CHECKPOINT_FILES, DATASET_FILES
from gmc_rl.backends import check_backend, run_tasks
from gmc_rl.config import (
    ACTION_FIT_KEYS,
    ExperimentConfig,
    agent_identity,
    collect_identity,
    config_hash,
    pretrain_identity,
    to_dict,
)
from gmc_rl.config.checks import _is_integer
from gmc_rl.errors import ConfigError
from gmc_rl.io import require_path, write_json_atomic
from gmc_rl.locking import directory_lock
from gmc_rl.methods import encoder_method_names, get_method
from gmc_rl.run_dir import (  # noqa: F401  (re-exported: gmc_rl.pipeline is where callers import them)
    AGENT_OWN_FOLDERS,
    ARTIFACT_MARKERS,
    CONFIG_FILE,
    LOCK_FILES,
    RUN_MARKER,
    agent_name,
    artifact_kind,
    check_results_out,
    check_run_dir,
    config_differences,
    is_run_dir,
    prepare_run_dir,
    read_run_config,
)
from gmc_rl.run_merge import merge_runs  # noqa: F401  (re-exported: gmc_rl.pipeline is where callers import it)
from gmc_rl.stages import Stage, Task, run_stage

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
    from gmc_rl.agents.observations import env_modalities as _env_modalities

    return _env_modalities(env_id, env_kwargs)


def check_agent_settings(config: ExperimentConfig) -> None:
    """The algorithm against the env's action space and every method's hyperparameters against the algorithm's
    constructor (:func:`gmc_rl.agents.registry.resolve_hyperparams`), before anything is written: a typo such as
    ``gama`` would otherwise surface only when the first agent trains, after collection and pretraining ran.

    Raises:
        ConfigError: naming the hyperparameter (with a did-you-mean) or the algorithm.
    """
    from gmc_rl.agents.observations import make_base_env
    from gmc_rl.agents.registry import check_action_space, resolve_hyperparams

    env = make_base_env(config.env_id, config.env_kwargs)
    try:
        check_action_space(config.agent.algo, env.action_space)
        for method in config.methods:
            resolve_hyperparams(config.agent.algo, config.agent.hyperparams_for(method), env.action_space)
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------------------------
# The pipeline.


def run_pipeline(config: ExperimentConfig, run_dir: str | os.PathLike, *, update: bool = False,
                 progress: bool = True, log: Log = print, jobs: int = 1, backend: str = "local",
                 address: str | None = None) -> dict[str, Any]:
    """Run (or continue) the whole experiment in ``run_dir``; return the results document (``eval/results.json``).

    Stages, each skipped when its done-marker matches (see the module docstring): collect (when a method needs an
    encoder) -> pretrain each method's encoder (GMC, MVAE, ...) -> train one agent per method and seed ->
    evaluate each agent under every condition (with transfer diagnostics for agents that read an encoder) ->
    write ``eval/results.{json,md,png}`` (and videos).

    Args:
        config: the experiment.
        run_dir: the run directory (created if needed).
        update: allow a run directory made with another config; stages whose inputs changed are redone.
        progress: show progress bars (only with ``jobs=1``).
        log: where progress messages go.
        jobs: stages run at once, each in its own process (:func:`gmc_rl.backends.run_tasks`); 1 runs them one
            after the other in this process. A stage starts as soon as the ones it reads are done, e.g. the
            true-state agent trains while GMC pretrains. The results do not depend on ``jobs`` beyond float
            rounding (each worker uses ``cpu_count // jobs`` torch threads).
        backend: ``"local"`` (the process pool above) or ``"ray"``: every stage as a Ray task, on a local Ray
            instance or the cluster at ``address`` (:mod:`gmc_rl.ray_backend`, docs/scale_out.md); each task gets
            ``cpu_count // jobs`` CPUs, and the run directory must be on a filesystem every Ray node shares.
        address: the Ray cluster to join (only with ``backend="ray"``); None starts a local Ray instance.

    Raises:
        ConfigError: the run directory holds another config and ``update`` is False, the config is invalid
            for the env (e.g. an unknown modality in a condition), or ``jobs < 1``, or another process is working
            in the run directory (one process at a time: :mod:`gmc_rl.locking`), or the backend is unknown, an
            ``address`` is given without Ray, Ray is not installed, or a Ray node does not see the run directory.
    """
    # The arguments' types first (a Python caller's None, dict or 1.5 would surface as raw errors, some of them only
    # after the run directory was written).
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"config must be an ExperimentConfig (gmc_rl.config.load_config reads one from YAML), "
                          f"got {type(config).__name__} {config!r:.80}")
    run_dir = require_path(run_dir, "run_dir must be a path to the run directory", ConfigError)
    if not _is_integer(jobs) or jobs < 1:
        raise ConfigError(f"jobs must be an integer of at least 1, got {type(jobs).__name__} {jobs!r}")
    for name, flag in (("update", update), ("progress", progress)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be True or False, got {type(flag).__name__} {flag!r}")
    if not callable(log):
        raise ConfigError(f"log must be a function taking one str (such as print), got {type(log).__name__}")
    if address is not None and not isinstance(address, str):
        raise ConfigError(f"address must be None or a Ray address such as 'host:6379', got {type(address).__name__}")
    jobs = int(jobs)
    check_backend(backend, address)
    # The env and the conditions are checked before anything is written, so a typo leaves no run directory.
    modalities = env_modalities(config.env_id, config.env_kwargs)
    conditions = resolve_conditions(config.evaluate.conditions, modalities)
    check_agent_settings(config)
    from gmc_rl.agents.training import check_gathering_memory

    check_gathering_memory(config)  # the observations the action fits and distillations keep
    check_run_dir(config, run_dir, update=update)
    with directory_lock(run_dir, "run directory"):
        return _run_locked(config, prepare_run_dir(config, run_dir, update=update), conditions, progress, log, jobs,
                           backend, address)


def _run_locked(config: ExperimentConfig, run_dir: Path, conditions: list[str], progress: bool, log: Log,
                jobs: int, backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """The body of :func:`run_pipeline`, run while this process holds the run directory's lock."""
    from gmc_rl.results import load_results

    methods, seeds = list(config.methods), [int(s) for s in config.seeds]
    log(f"gmc-rl pipeline: {config.name} on {config.env_id}; methods {methods}, seeds {seeds}; run dir {run_dir}"
        + (f"; {jobs} stages at once" if jobs > 1 and backend == "local" else ""))
    tasks, agents, evaluations = _plan(config, run_dir, conditions)
    for task in tasks:  # outputs of the old config: not current from now on, even if this run stops early
        task.stage.mark_outdated()
    run_tasks(tasks, jobs=jobs, progress=progress, log=log, backend=backend, address=address)

    # Tables and plot of all methods (and optional videos).
    eval_dir = run_dir / "eval"
    report = Stage(run_dir, "report", eval_dir / "results.json",
                   {"evaluations": [s.hash for s in evaluations.values()], "methods": methods, "seeds": seeds},
                   needs=[eval_dir / name for name in ("results.json", "results.md", "results.png")])
    run_stage(report, log, "report", lambda resume: _write_report(config, run_dir, conditions, evaluations),
              resumable=False, after=[s.name for s in evaluations.values()])
    videos = Stage(run_dir, "video", eval_dir / "videos", {"report": report.hash}, needs=[eval_dir / "videos"])
    if not config.evaluate.video and videos.marker.is_file():  # turned off with --update: the old videos go
        remove_earlier_videos(videos.output)
        videos.marker.unlink()
    if config.evaluate.video:
        run_stage(videos, log, "video", lambda resume: [
            record_agent_videos(agents[(m, seeds[0])].output, conditions, videos.output, seed=seeds[0], log=log)
            for m in methods], resumable=False, after=[report.name])
    log(f"results: {eval_dir / 'results.md'} (also results.json, results.png)")
    return load_results(eval_dir)


def _plan(config: ExperimentConfig, run_dir: Path, conditions: list[str]
          ) -> tuple[list[Task], dict[tuple[str, int], Stage], dict[tuple[str, int], Stage]]:
    """The tasks of the pipeline in their sequential order; also the agent and evaluation stages by (method, seed)."""
    tasks: list[Task] = []
    encoders = _encoder_tasks(config, run_dir, tasks)
    agents = _agent_tasks(config, run_dir, encoders, tasks)
    fits = _action_fit_tasks(config, run_dir, encoders, agents, tasks)
    evaluations = _evaluation_tasks(config, run_dir, conditions, encoders, agents, fits, tasks)
    return tasks, agents, evaluations


def _encoder_tasks(config: ExperimentConfig, run_dir: Path, tasks: list[Task]) -> dict[str, Stage]:
    """1. Data and encoders (only for the methods that read an encoder), in registry order: their tasks are appended
    to ``tasks``; returns the pretraining stage of each such method."""
    methods = list(config.methods)
    env = {"env_id": config.env_id, "env_kwargs": config.env_kwargs}
    encoders: dict[str, Stage] = {}
    encoder_methods = [get_method(m) for m in encoder_method_names() if m in methods]
    if encoder_methods:
        data = Stage(run_dir, "collect", run_dir / "data", {**env, "collect": collect_identity(config.collect)},
                     needs=[run_dir / "data" / name for name in DATASET_FILES])
        tasks.append(Task(data, "collect", partial(_collect, config, data.output), resumable=False))
        for spec in encoder_methods:
            identity = spec.encoder_stage
            assert identity is not None and spec.pretrain is not None  # encoder methods have both (methods.py)
            stage = Stage(run_dir, identity.name, run_dir / identity.directory,
                          {"data": data.hash, "pretrain": pretrain_identity(config.pretrain, spec.name),
                           **identity.extra_inputs},
                          needs=[run_dir / identity.directory / name for name in CHECKPOINT_FILES])
            tasks.append(Task(stage, identity.label, partial(spec.pretrain, config, data.output, stage.output),
                              after=(data.name,)))
            encoders[spec.name] = stage
    return encoders


def _agent_tasks(config: ExperimentConfig, run_dir: Path, encoders: dict[str, Stage],
                 tasks: list[Task]) -> dict[tuple[str, int], Stage]:
    """2. Agents, one per method and seed, trained on complete observations; with a distillation teacher
    (:meth:`~gmc_rl.config.ExperimentConfig.distill_teacher`), the teachers
    first and the encoder methods' agents distilled from the teacher of their seed. Their tasks are appended to
    ``tasks``; returns the training stages by (method, seed)."""
    methods, seeds = list(config.methods), [int(s) for s in config.seeds]
    env = {"env_id": config.env_id, "env_kwargs": config.env_kwargs}
    agents: dict[tuple[str, int], Stage] = {}
    teacher = config.distill_teacher()
    for method in sorted(methods, key=lambda m: m != teacher):
        encoder = encoders.get(method)
        for seed in seeds:
            name = agent_name(method, seed)
            agent_inputs: dict[str, Any] = {**env, "agent": agent_identity(config.agent, method), "method": method,
                                            "seed": seed, "encoder": encoder.hash if encoder else None}
            teacher_stage = agents[(teacher, seed)] if teacher and encoder else None
            if teacher_stage is not None:
                agent_inputs["distill"] = {"teacher": teacher_stage.hash, "rounds": config.agent.distill_rounds,
                                           "steps": config.agent.distill_steps}
            folder = run_dir / "agents" / name
            needs = [folder / file for file in AGENT_FILES]
            if encoder is not None:  # the agent's own copy of its encoder
                needs += [folder / "encoder" / file for file in CHECKPOINT_FILES]
            stage = Stage(run_dir, f"train_{name}", folder, agent_inputs, needs=needs)
            if teacher_stage is not None and encoder is not None:
                work = partial(_distill, config, method, seed, stage.output, encoder.output, teacher_stage.output)
                after: tuple[str, ...] = (encoder.name, teacher_stage.name)
            else:
                work = partial(_train, config, method, seed, stage.output, encoder.output if encoder else None)
                after = (encoder.name,) if encoder else ()
            tasks.append(Task(stage, f"train {name}", work, after=after))
            agents[(method, seed)] = stage
    return agents


def _action_fit_tasks(config: ExperimentConfig, run_dir: Path, encoders: dict[str, Stage],
                      agents: dict[tuple[str, int], Stage], tasks: list[Task]) -> dict[tuple[str, int], Stage]:
    """2b. The action fit of each GMC agent (agent.action_fit_rounds > 0): its modality encoders learn its actions;
    the agent itself is not changed, so its training stage stays done. Their tasks are appended to ``tasks``;
    returns the fit stages by (method, seed)."""
    fits: dict[tuple[str, int], Stage] = {}
    if config.agent.action_fit_rounds > 0 and "gmc" in encoders:
        from gmc_rl.agents.agent_dir import ACTION_FIT_DIR

        settings = {key: getattr(config.agent, key) for key in ACTION_FIT_KEYS}
        for seed in [int(s) for s in config.seeds]:
            agent_stage = agents[("gmc", seed)]
            name = agent_name("gmc", seed)
            stage = Stage(run_dir, f"action_fit_{name}", agent_stage.output / ACTION_FIT_DIR,
                          {"agent": agent_stage.hash, "action_fit": settings},
                          needs=[agent_stage.output / ACTION_FIT_DIR / file for file in CHECKPOINT_FILES])
            tasks.append(Task(stage, f"action fit {name}", partial(_action_fit, config, agent_stage.output),
                              after=(agent_stage.name,), resumable=False))
            fits[("gmc", seed)] = stage
    return fits


def _evaluation_tasks(config: ExperimentConfig, run_dir: Path, conditions: list[str], encoders: dict[str, Stage],
                      agents: dict[tuple[str, int], Stage], fits: dict[tuple[str, int], Stage],
                      tasks: list[Task]) -> dict[tuple[str, int], Stage]:
    """3. Evaluation of every agent under every condition (agent seed s -> evaluation seed s). Their tasks are
    appended to ``tasks``; returns the evaluation stages by (method, seed)."""
    ev = config.evaluate
    evaluations: dict[tuple[str, int], Stage] = {}
    for (method, seed), agent_stage in agents.items():
        name = agent_name(method, seed)
        final_stage = fits.get((method, seed), agent_stage)  # evaluated with its action fit, when it has one
        inputs = {"agent": final_stage.hash, "conditions": conditions, "episodes": ev.episodes,
                  "n_envs": ev.n_envs, "seeds": [seed]}
        if ev.encoding_rules and method == "gmc":  # left out otherwise: evaluations made before the keys stay valid
            inputs["encoding_rules"] = list(ev.encoding_rules)
        if ev.action_limit > 0:
            inputs["action_limit"] = ev.action_limit
        diagnose = method in encoders and ev.diagnostic_episodes > 0
        if diagnose:
            inputs["diagnostics"] = {"episodes": ev.diagnostic_episodes, "horizon": ev.diagnostic_horizon}
        record = run_dir / "eval" / "runs" / f"{name}.json"
        stage = Stage(run_dir, f"evaluate_{name}", record, inputs, needs=[record])
        evaluate = partial(_evaluate, run_dir, agent_stage.output, stage.output, conditions, ev.episodes, seed,
                           ev.n_envs, (ev.diagnostic_episodes, ev.diagnostic_horizon) if diagnose else None,
                           list(ev.encoding_rules), ev.action_limit, (method, seed) in fits)
        tasks.append(Task(stage, f"evaluate {name}", evaluate, after=(final_stage.name,), resumable=False))
        evaluations[(method, seed)] = stage
    return evaluations


def _write_report(config: ExperimentConfig, run_dir: Path, conditions: list[str],
                  evaluations: dict[tuple[str, int], Stage]) -> None:
    """Pool the per-agent evaluations of each method and write ``eval/results.{json,md,png}``."""
    from gmc_rl.results import (
        TENSORBOARD_DIR,
        build_results,
        pool_runs,
        read_evaluation_record,
        record_rows,
        write_results,
        write_tensorboard,
    )

    methods, seeds, ev = list(config.methods), [int(s) for s in config.seeds], config.evaluate
    rows: dict[str, list[tuple[str, Any]]] = {}
    agents: dict[str, list[str]] = {}
    diagnostics: dict[str, dict[str, Any]] = {}
    for method in methods:
        for seed in seeds:
            record = read_evaluation_record(evaluations[(method, seed)].output)
            for row, evaluation in record_rows(record):
                rows.setdefault(row, []).append((agent_name(method, seed), evaluation))
                agents.setdefault(row, []).append(f"agents/{agent_name(method, seed)}")
            if record.get("diagnostics"):
                diagnostics.setdefault(method, {})[agent_name(method, seed)] = record["diagnostics"]
    per_method = {row: pool_runs(runs) for row, runs in rows.items()}
    settings = {"episodes": ev.episodes, "seeds": seeds, "n_envs": ev.n_envs, "conditions": conditions,
                "evaluation_seeds": "each agent is evaluated with its own training seed",
                "config_hash": config_hash(config)}
    if ev.encoding_rules:
        settings["encoding_rules"] = list(ev.encoding_rules)
    if ev.action_limit > 0:
        settings["action_limit"] = ev.action_limit
    results = build_results(per_method, env_id=config.env_id, settings=settings, agents=agents,
                            diagnostics=diagnostics)
    write_results(results, run_dir / "eval", replace=True)  # the report stage owns eval/results.*
    write_tensorboard(results, run_dir / "eval" / TENSORBOARD_DIR, config=to_dict(config))  # hparams: the config


# The stages' work, as module-level functions so that worker processes can run them (jobs > 1).


def _collect(config: ExperimentConfig, out_dir: Path, *, resume: bool, progress: bool) -> Path:
    from gmc_rl.collect import collect

    return collect(config, out_dir, progress=progress)


def _train(config: ExperimentConfig, method: str, seed: int, out_dir: Path, encoder_dir: Path | None, *,
           resume: bool, progress: bool) -> Path:
    from gmc_rl.agents import train_agent

    return train_agent(config, method, seed, out_dir, encoder_dir=encoder_dir, resume=resume, progress_bar=progress)


def _action_fit(config: ExperimentConfig, agent_dir: Path, *, resume: bool, progress: bool) -> Path | None:
    """Fit the agent's modality encoders to its actions with the config's ``agent.action_fit_*`` settings."""
    from gmc_rl.agents.action_fit import ActionFitSettings, fit_agent

    return fit_agent(agent_dir, ActionFitSettings.from_config(config.agent), progress=progress)


def _distill(config: ExperimentConfig, method: str, seed: int, out_dir: Path, encoder_dir: Path, teacher_dir: Path,
             *, resume: bool, progress: bool) -> Path:
    """The agent imitates the teacher with the config's distillation settings (an interrupted distillation starts
    over: it takes minutes)."""
    from gmc_rl.agents.distillation import distill_agent

    return distill_agent(config, method, seed, out_dir, teacher_dir, encoder_dir, progress_bar=progress)


def _evaluate(run_dir: Path, agent_dir: Path, out_path: Path, conditions: list[str], episodes: int, seed: int,
              n_envs: int, diagnostics: tuple[int, int] | None, encoding_rules: list[str], action_limit: float,
              action_fit: bool, *, resume: bool, progress: bool) -> None:
    """Evaluate the agent in ``agent_dir``, with its action fit when ``action_fit`` (the config's fit is on: one
    left from an earlier run with the fit on is not used when it is off), and write the record."""
    from gmc_rl.agents import load_agent

    agent = load_agent(agent_dir, action_fit=action_fit)
    record = evaluate_agent(agent, conditions, episodes, [seed], n_envs, progress=progress,
                            encoding_rules=encoding_rules, action_limit=action_limit)
    record["agent"] = str(agent_dir.relative_to(run_dir))
    if diagnostics is not None:
        record["diagnostics"] = diagnose_agent(agent, conditions, episodes=diagnostics[0], horizon=diagnostics[1],
                                               seed=seed)
    write_json_atomic(out_path, record)


