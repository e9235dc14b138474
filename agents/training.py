"""Train an SB3 agent for one method and seed on complete observations, into a self-contained agent directory.

:func:`train_agent` is the one code path for every method of the registry :mod:`gmc_rl.methods` (``gmc``,
``raw``, ``mvae``, ``state`` and any registered one), so the baselines differ from the GMC agent only in what the
policy observes (see :mod:`gmc_rl.agents.observations`). Training always sees complete observations; robustness to
missing sensors is measured afterwards by ``gmc-rl evaluate``.

Example:
    >>> from gmc_rl.config import ExperimentConfig
    >>> from gmc_rl.agents import train_agent, load_agent
    >>> config = ExperimentConfig()  # doctest: +SKIP
    >>> path = train_agent(config, "gmc", seed=0, out_dir="runs/pendulum/sac",
    ...                    encoder_dir="runs/pendulum/gmc")  # doctest: +SKIP
    >>> agent = load_agent(path)  # doctest: +SKIP
    >>> venv = agent.make_vec_env("image", n_envs=4, seed=1)  # doctest: +SKIP
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import BaseCallback

import gmc_rl
from gmc_rl.agents import agent_dir as layout
from gmc_rl.agents.callbacks import EvalRecorder, ProgressCallback, UpdateTracker
from gmc_rl.agents.checkpoints import (
    LATEST,
    MODEL,
    CheckpointCallback,
    latest_checkpoint,
    own_checkpoint_folders,
    restore_checkpoint,
    save_checkpoint,
)
from gmc_rl.agents.noise import continue_noise_schedule
from gmc_rl.agents.observations import make_base_env, make_method_vec_env
from gmc_rl.agents.registry import build_algorithm, check_action_space, resolve_hyperparams
from gmc_rl.checkpoint import checkpoint_dir, resolve_device
from gmc_rl.config import ExperimentConfig, check_gathered_memory, config_hash, space_bytes, to_dict
from gmc_rl.env_ids import check_env_id
from gmc_rl.errors import ConfigError
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock
from gmc_rl.methods import RepresentationMethod, get_method
from gmc_rl.modalities import modality_specs
from gmc_rl.pretraining_run import require_finished

EVAL_SEED_OFFSET = 10_000
"""The evaluation env during training uses seed ``seed + EVAL_SEED_OFFSET`` (never the training env's seeds)."""

IDENTITY_KEYS = ("method", "algo", "env_id", "env_kwargs", "seed", "hyperparams", "n_envs")
"""What must not change when a run is resumed (total_timesteps may grow: training then continues further)."""


def training_identity(config: ExperimentConfig, method: str, seed: int) -> dict[str, Any]:
    """What an agent is trained from (agent.json's ``identity``): a resumed run must match it."""
    return {
        "method": method,
        "algo": config.agent.algo,
        "env_id": config.env_id,
        "env_kwargs": config.env_kwargs,
        "seed": seed,
        "hyperparams": config.agent.hyperparams_for(method),
        "n_envs": config.agent.n_envs,
    }


def _check_resumable(out_dir: Path, identity: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    """Decide what to do with an existing ``out_dir``; return its agent.json (or None for a fresh start)."""
    ignored = (LOCK_FILE, HOLDER_FILE)
    entries = [p for p in out_dir.iterdir() if not p.name.startswith(".tmp-") and p.name not in ignored
               ] if out_dir.is_dir() else []
    if not entries:
        return None
    ours = {layout.AGENT_JSON, layout.ENCODER_DIR, layout.TB_DIR, layout.EVAL_DIR, layout.CHECKPOINTS_DIR,
            layout.ACTION_FIT_DIR}
    checkpoints = out_dir / layout.CHECKPOINTS_DIR
    saved_steps = checkpoints.is_dir() and any((path / MODEL).is_file() for path in own_checkpoint_folders(checkpoints))
    unindexed = not (checkpoints / LATEST).exists() and not (out_dir / layout.MODEL_ZIP).exists()
    saved_nothing = unindexed and not saved_steps
    if saved_nothing and all(p.name in ours for p in entries):
        # A run that stopped before it saved any weights (e.g. a bad hyperparameter, a buffer that does not fit
        # memory, a kill before the first checkpoint): nothing to lose, start it again with the settings given now.
        return None
    if not resume:
        raise ConfigError(
            f"output directory {out_dir} is not empty; pass resume=True (--resume) to continue the run in it, "
            "or choose a new directory"
        )
    layout.check_agent_files(out_dir)  # an agent.json that is a directory is named, not called absent
    if not (out_dir / layout.AGENT_JSON).is_file():
        raise ConfigError(f"cannot resume in {out_dir}: it is not empty but holds no {layout.AGENT_JSON}")
    info = layout.read_agent_json(out_dir)
    layout.check_encoder_digests(out_dir, info)  # training on would continue on another encoder's latents
    if info.get("distillation"):
        raise ConfigError(
            f"{out_dir} holds an agent distilled from a teacher, which RL training would start over: rerun the "
            "`gmc-rl train ... --teacher DIR` command that made it (a finished distillation with the same settings "
            "is kept), or train into a new directory"
        )
    if saved_steps and unindexed:
        what, way = _missing_resume_point(checkpoints)  # else it would start over from step 0 over the step folders
        raise ConfigError(f"cannot resume {out_dir}: its {what}; nothing is trained. {way}")
    stored = info.get("identity", {})
    changed = [key for key in IDENTITY_KEYS if stored.get(key) != identity[key]]
    if changed:
        details = "; ".join(f"{key}: {stored.get(key)!r} -> {identity[key]!r}" for key in changed)
        raise ConfigError(f"cannot resume {out_dir} with a different setup ({details}); train into a new directory")
    return info


def _kept_without_resume_point(out_dir: Path, existing: dict[str, Any] | None, total: int) -> bool:
    """True if ``out_dir`` holds a finished agent (``existing``: its agent.json) whose resume point
    ``checkpoints/`` is gone and ``total`` asks for the steps it was trained with: it is kept as is, as a finished
    agent with its checkpoints would be. Any other ``total`` is refused: without a resume point, training would start
    over from step 0 and replace the finished agent, which users may keep alone (resume points may be deleted to
    save space)."""
    if existing is None or existing.get("status") != layout.STATUS_COMPLETE \
            or not (out_dir / layout.MODEL_ZIP).is_file() or latest_checkpoint(out_dir / layout.CHECKPOINTS_DIR):
        return False
    trained = int(existing.get("total_timesteps", -1))
    if total == trained:
        return True
    what, way = _missing_resume_point(out_dir / layout.CHECKPOINTS_DIR)
    raise ConfigError(
        f"{out_dir} holds a finished agent (agent.total_timesteps {trained}) whose {what}; training to {total} steps "
        f"would start over from step 0 and replace it, so it is kept and nothing is trained. {way}"
    )


def _missing_resume_point(checkpoints: Path) -> tuple[str, str]:
    """What is missing of the resume point ``checkpoints`` (a folder without a committed ``latest.json``), and what
    to do: the whole folder, or only its index while ``step_<N>/`` folders are still there (a run is resumed only
    from the checkpoint the index commits: a folder without it may be half written, and the index holds the
    episode and update counts)."""
    other = "Train a new agent into another --out to train longer"
    steps = sorted(path.name for path in own_checkpoint_folders(checkpoints)) if checkpoints.is_dir() else []
    if not steps:
        return f"resume point {checkpoints} {'holds no checkpoint' if checkpoints.is_dir() else 'is gone'}", other
    folders = ", ".join(f"{name}/" for name in steps)
    return (f"checkpoint index {checkpoints / LATEST} is missing ({checkpoints} still holds {folders}; a checkpoint is "
            "resumed only through that index)",
            f"Put {LATEST} back (from a backup of the agent) to resume, or train a new agent into another --out")


def encoder_source(method: RepresentationMethod, encoder_dir: str | Path | None,
                   out_dir: Path | None = None) -> Path | None:
    """The encoder checkpoint to use: the one given, or (given ``out_dir``, on resume) the copy already in the agent
    directory; None for a method that reads no encoder.

    Raises:
        ConfigError: a checkpoint for a method that reads none, none (and no copy) for one that needs it, or one
            from a pretraining run that has not finished (:func:`~gmc_rl.pretraining_run.require_finished`).
        CheckpointError: the given checkpoint is missing, not a directory, or lacks its config or weights.
    """
    if not method.needs_encoder:
        if encoder_dir is not None:
            raise ConfigError(f"method {method.name!r} uses no encoder; do not pass an encoder checkpoint "
                              f"({encoder_dir})")
        return None
    if encoder_dir is None:
        if out_dir is not None and (out_dir / layout.ENCODER_DIR / "model.safetensors").is_file():
            return out_dir / layout.ENCODER_DIR
        raise ConfigError(f"method {method.name!r} needs a pretrained encoder checkpoint directory "
                          f"({method.encoder_flag} DIR)")
    what = f"{method.name} encoder checkpoint"
    encoder_dir = checkpoint_dir(encoder_dir, what)  # the directory, or its config.json or weights file
    require_finished(encoder_dir, what)
    return encoder_dir


def check_agent_setup(config: ExperimentConfig, spec: RepresentationMethod, encoder: Any,
                      hyperparams: dict[str, Any]) -> list[str]:
    """Check the algorithm against the env's action space, the hyperparameters, and the encoder against the env's
    observation space, before an agent directory is written; return the env's modality names.

    Raises:
        ConfigError: an algorithm the action space does not allow, or hyperparameters the algorithm refuses.
        CheckpointError: the encoder does not match the env's observation space.
    """
    base = make_base_env(config.env_id, config.env_kwargs)
    try:
        check_action_space(config.agent.algo, base.action_space)
        resolve_hyperparams(config.agent.algo, hyperparams, base.action_space)
        if encoder is not None and spec.check_space is not None:
            spec.check_space(encoder, base.observation_space)
        if spec.name == "gmc" and config.agent.action_fit_rounds > 0:  # the fit that follows training
            check_action_fit_memory(config.agent.action_fit_rounds, config.agent.action_fit_steps,
                                    base.observation_space)
        return list(modality_specs(base.observation_space))
    finally:
        base.close()


def check_action_fit_memory(rounds: int, steps: int, observation_space: Any) -> None:
    """Raise :class:`ConfigError` (naming ``agent.action_fit_steps``) if the raw observations (of
    ``observation_space``, the env's) that ``rounds`` rounds of ``steps`` steps of a GMC agent's action fit keep cannot
    fit in memory (:func:`gmc_rl.config.check_gathered_memory`)."""
    check_gathered_memory(rounds, steps, space_bytes(observation_space), "agent.action_fit_rounds",
                          "agent.action_fit_steps", "the action fit's observations")


def check_distillation_memory(rounds: int, steps: int, observation_space: Any, action_space: Any) -> None:
    """Raise :class:`ConfigError` (naming ``agent.distill_steps``) if the student observations (of
    ``observation_space``) and teacher actions that ``rounds`` rounds of ``steps`` steps of a distillation keep
    cannot fit in memory."""
    check_gathered_memory(rounds, steps, space_bytes(observation_space) + space_bytes(action_space),
                          "agent.distill_rounds", "agent.distill_steps",
                          "the distillation's observations and teacher actions")


def check_gathering_memory(config: ExperimentConfig) -> None:
    """The memory of the action fits and distillations that ``config``'s pipeline runs, estimated before anything
    is written (each is checked again on the real spaces before it starts): the action fit of the GMC agents keeps
    the env's raw observations; a distilled agent of an encoder method keeps its latents (``pretrain.model.latent_dim``
    float32 values, the built-in encoders' size) and the teacher's actions.

    Raises:
        ConfigError: naming ``agent.action_fit_steps`` or ``agent.distill_steps``, with the estimate and the most
            steps that fit.
    """
    from gymnasium import spaces

    teacher = config.distill_teacher()
    fit = config.agent.action_fit_rounds > 0 and "gmc" in config.methods
    distilled = bool(teacher) and any(get_method(m).needs_encoder for m in config.methods if m != teacher)
    if not fit and not distilled:
        return
    base = make_base_env(config.env_id, config.env_kwargs)
    try:
        agent = config.agent
        if fit:
            check_action_fit_memory(agent.action_fit_rounds, agent.action_fit_steps, base.observation_space)
        if distilled:
            latent = spaces.Box(-1.0, 1.0, (config.pretrain.model.latent_dim,), dtype=np.float32)
            check_distillation_memory(agent.distill_rounds, agent.distill_steps, latent, base.action_space)
    finally:
        base.close()


def agent_description(config: ExperimentConfig, modalities: list[str], venv: Any, encoder: dict[str, str] | None,
                      identity: dict[str, Any], total: int, done: int) -> dict[str, Any]:
    """The content of ``agent.json`` for an agent in training (``status`` "training", ``done`` steps so far);
    ``encoder``: the digests of its encoder copy (:func:`~gmc_rl.agents.agent_dir.encoder_digests`, checked on
    load), None for a method without an encoder."""
    return {
        **{key: identity[key] for key in ("method", "algo", "env_id", "env_kwargs", "seed")},
        "modalities": modalities,
        "observation_space": str(venv.observation_space),
        "action_space": str(venv.action_space),
        "encoder": layout.ENCODER_DIR if encoder is not None else None,
        **({layout.ENCODER_DIGESTS: encoder} if encoder is not None else {}),
        "identity": identity,
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "total_timesteps": total,
        "num_timesteps": done,
        "status": layout.STATUS_TRAINING,
        "versions": {
            "gmc_rl": gmc_rl.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def _training_callbacks(agent_cfg: Any, out_dir: Path, eval_env: Any, verbose: int) -> list[BaseCallback]:
    """The periodic evaluation (when ``eval_env`` is given) and checkpoint callbacks of ``agent_cfg``."""
    callbacks: list[BaseCallback] = []
    if eval_env is not None:
        callbacks.append(EvalRecorder(eval_env, out_dir / layout.EVAL_DIR,
                                      eval_freq=max(agent_cfg.eval_freq // agent_cfg.n_envs, 1),
                                      n_eval_episodes=agent_cfg.eval_episodes, verbose=verbose))
    if agent_cfg.checkpoint_freq > 0:
        callbacks.append(CheckpointCallback(out_dir / layout.CHECKPOINTS_DIR, agent_cfg.checkpoint_freq,
                                            verbose=verbose))
    return callbacks


def train_agent(
    config: ExperimentConfig,
    method: str,
    seed: int,
    out_dir: str | Path,
    encoder_dir: str | Path | None = None,
    resume: bool = False,
    *,
    progress_bar: bool = True,
    verbose: int = 0,
    callbacks: list[BaseCallback] | None = None,
) -> Path:
    """Train ``config.agent.algo`` for ``method`` with ``seed`` on complete observations; return the agent dir.

    Args:
        config: the experiment (env_id, env_kwargs and the ``agent`` section are used).
        method: a registered method (:mod:`gmc_rl.methods`): "gmc" (policy on the GMC latent; ``encoder_dir`` =
            GMC checkpoint), "raw" (policy on the Dict observation), "mvae" (policy on the MVAE posterior mean;
            ``encoder_dir`` = MVAE checkpoint), "state" (policy on the true state) or one registered later.
        seed: seed of the algorithm and the training envs.
        out_dir: the agent directory to write (must be new or empty unless ``resume``).
        encoder_dir: the pretrained encoder checkpoint (methods that read an encoder only); it is copied into
            ``out_dir/encoder``.
        resume: continue from the last checkpoint in ``out_dir`` (num_timesteps continues; an already finished
            agent is returned as is unless ``config.agent.total_timesteps`` grew; a finished agent whose
            ``checkpoints/`` was deleted cannot grow and is refused rather than trained again from step 0).
        progress_bar: show SB3's progress bar.
        verbose: SB3 verbosity.
        callbacks: extra SB3 callbacks, run after the evaluation and checkpoint callbacks.

    Raises:
        ConfigError: unknown method, a missing or superfluous encoder, a non-empty ``out_dir`` without resume,
            a resume with a different setup or of a finished agent without its checkpoints, hyperparameters the
            algorithm does not accept, or another process training into ``out_dir`` (:mod:`gmc_rl.locking`). A
            directory whose run failed before it saved any weights is started over.
        CheckpointError: the encoder does not match the env's observation space, or a checkpoint is damaged.
    """
    spec = get_method(method)
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"config must be an ExperimentConfig, got {type(config).__name__}")
    out_dir = Path(out_dir)
    resolve_device(config.agent.device, "agent.device")  # a GPU this machine lacks is refused before any write
    seed = int(seed)
    identity = training_identity(config, method, seed)
    hyperparams = identity["hyperparams"]
    check_env_id(config.env_id, allow_import=True)  # the config's own "module:Name" id, before agent.json is read
    total = int(config.agent.total_timesteps)
    if _kept_without_resume_point(out_dir, _check_resumable(out_dir, identity, resume), total):
        return out_dir
    source = encoder_source(spec, encoder_dir, out_dir)

    # Everything that can be checked is checked before anything is written.
    encoder = spec.load_encoder(source, device="cpu") if source is not None else None
    modalities = check_agent_setup(config, spec, encoder, hyperparams)
    with directory_lock(out_dir, "agent directory"):  # one process per agent directory, after every check
        existing = _check_resumable(out_dir, identity, resume)  # again, now that no other process writes here
        if _kept_without_resume_point(out_dir, existing, total):
            return out_dir
        if source is not None:
            layout.copy_encoder(source, out_dir)
        return _train_locked(config, method, seed, out_dir, identity, existing, source, encoder, modalities,
                             progress_bar=progress_bar, verbose=verbose, callbacks=callbacks)


def _train_locked(config: ExperimentConfig, method: str, seed: int, out_dir: Path, identity: dict[str, Any],
                  existing: dict[str, Any] | None, source: Path | None, encoder: Any, modalities: list[str], *,
                  progress_bar: bool, verbose: int, callbacks: list[BaseCallback] | None) -> Path:
    """The body of :func:`train_agent`, run while this process holds the agent directory's lock: build (or restore)
    the algorithm, write ``agent.json``, learn the remaining steps and save the agent."""
    agent_cfg = config.agent
    total = int(agent_cfg.total_timesteps)
    venv = make_method_vec_env(method, config.env_id, config.env_kwargs, "complete", agent_cfg.n_envs, seed,
                               encoder, vec_env=agent_cfg.vec_env)
    eval_env = None
    try:
        model = build_algorithm(agent_cfg.algo, venv, identity["hyperparams"], seed,
                                tensorboard_log=str(out_dir / layout.TB_DIR),
                                device=str(resolve_device(agent_cfg.device, "agent.device")), verbose=verbose)
        done = _resume_point(model, out_dir, existing, total, agent_cfg.n_envs)
        digests = layout.encoder_digests(out_dir) if source is not None else None
        info = agent_description(config, modalities, venv, digests, identity, total, done)
        seconds = float(existing.get("train_seconds", 0.0)) if existing else 0.0
        finished = existing is not None and existing.get("status") == layout.STATUS_COMPLETE
        if done >= total and finished and (out_dir / layout.MODEL_ZIP).is_file():
            return out_dir
        layout.write_agent_json(out_dir, {**info, "train_seconds": seconds})

        eval_env = make_method_vec_env(method, config.env_id, config.env_kwargs, "complete", 1,
                                       seed + EVAL_SEED_OFFSET, encoder) if agent_cfg.eval_freq > 0 else None
        tracker = UpdateTracker()
        callbacks = [*_training_callbacks(agent_cfg, out_dir, eval_env, verbose),
                     ProgressCallback(total - done, f"train {method}-seed{seed}", enabled=progress_bar),
                     *(callbacks or []), tracker]
        _learn_and_save(model, out_dir, info, seconds, total - done, callbacks, tracker,
                        reset_num_timesteps=done == 0, tb_log_name=f"{method}_{agent_cfg.algo}")
    finally:
        venv.close()
        if eval_env is not None:
            eval_env.close()
    return out_dir


def _resume_point(model: Any, out_dir: Path, existing: dict[str, Any] | None, total: int, n_envs: int) -> int:
    """Restore the last checkpoint of ``out_dir`` into ``model`` when resuming (``existing`` is its agent.json), and
    continue the action-noise schedule from there; return the steps already done (0 for a fresh start).

    Raises:
        ConfigError: the agent has already trained more steps than ``total`` (resuming cannot undo steps).
    """
    checkpoints = out_dir / layout.CHECKPOINTS_DIR
    done = restore_checkpoint(model, checkpoints) if existing is not None else 0
    if done > total and total < int((existing or {}).get("total_timesteps", done)):  # SB3 may overshoot
        raise ConfigError(
            f"agent directory {out_dir} holds an agent that has already trained {done} steps, more than "
            f"agent.total_timesteps {total}; resuming cannot undo steps: pass --agent.total_timesteps "
            f"{done} or more, or train into another --out"
        )
    continue_noise_schedule(getattr(model, "action_noise", None), done // n_envs)
    if existing is not None and latest_checkpoint(checkpoints) is None:
        print(f"{out_dir}: no checkpoint to resume from; training from the start")
    return done


def _learn_and_save(model: Any, out_dir: Path, info: dict[str, Any], seconds: float, remaining: int,
                    callbacks: list[BaseCallback], tracker: UpdateTracker, *, reset_num_timesteps: bool,
                    tb_log_name: str) -> None:
    """Learn the ``remaining`` steps (none: only save), then save the checkpoint, ``model.zip`` and the finished
    ``agent.json`` (``seconds``: the training time of earlier runs). On an interrupt outside a gradient update the
    agent is checkpointed first, so that a resume continues from there."""
    checkpoints = out_dir / layout.CHECKPOINTS_DIR
    start = time.perf_counter()
    if remaining > 0:
        layout.remove_action_fit(out_dir)  # fitted to the policy about to change
        try:
            model.learn(total_timesteps=remaining, callback=callbacks, reset_num_timesteps=reset_num_timesteps,
                        tb_log_name=tb_log_name)
        except KeyboardInterrupt:
            if not tracker.updating:  # inside a gradient update: resume from the last periodic checkpoint
                save_checkpoint(model, checkpoints)
                layout.write_agent_json(out_dir, {**info, "num_timesteps": int(model.num_timesteps),
                                                  "train_seconds": seconds + time.perf_counter() - start})
            raise
    save_checkpoint(model, checkpoints)
    layout.save_model_atomic(model, out_dir / layout.MODEL_ZIP)
    layout.write_agent_json(out_dir, {
        **info,
        "num_timesteps": int(model.num_timesteps),
        "status": layout.STATUS_COMPLETE,
        "train_seconds": seconds + time.perf_counter() - start,
    })
