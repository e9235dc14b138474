"""Train an agent's policy by imitating a true-state teacher (DAgger) instead of by reinforcement learning.

Reinforcement learning on a frozen encoder's latent can fail where the latent holds a working controller: on
AcrobotSensors PPO on GMC's latent never swings up in 200,000 steps, while a policy fitted to a true-state agent's
actions from the same latent does within 10 % of it (experiments/results/gmc_diagnosis, section 9). When the env
reports its true state (``info["state"]``, as simulated envs can), a true-state agent is cheap and reliable to
train, and it can teach the sensor agent: the teacher-student scheme of robot learning with privileged
information, here with DAgger (Ross et al., 2011) so that the student also learns on the states its own mistakes
lead to.

Round 0 follows the teacher; every later round follows the student while the teacher labels each visited state;
after each round the student's policy is fitted on everything gathered so far (supervised, a fresh Adam each
fit). The student is an ordinary SB3 model of the config's algorithm on the method's observations (the latent of
the complete observation for gmc, mvae, muse; the raw ``Dict`` for raw), so the agent directory it writes is
evaluated, aligned and loaded like any other. What is fitted:

- PPO, A2C: the policy's log-likelihood of the teacher's actions (discrete or box);
- DQN: the Q-network's values as logits of the teacher's discrete action;
- SAC, TD3, DDPG: the actor's deterministic action against the teacher's (in the actor's [-1, 1] units). The critics
  stay untrained: training the agent further with RL starts them from scratch.

Training still sees complete observations only, the encoder stays frozen, and the teacher is used only while
training. A distillation takes minutes; an interrupted one starts over in the same directory.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.sac.policies import Actor as SACActor
from torch.nn import functional as F  # noqa: N812
from torch.utils.tensorboard import SummaryWriter

from gmc_rl.agents import agent_dir as layout
from gmc_rl.agents.loading import Agent, load_agent
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.agents.registry import build_algorithm
from gmc_rl.agents.training import (
    agent_description,
    check_agent_setup,
    check_distillation_memory,
    encoder_source,
    training_identity,
)
from gmc_rl.checkpoint import resolve_device
from gmc_rl.config import ExperimentConfig, check_gathered_steps
from gmc_rl.errors import ConfigError
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock
from gmc_rl.methods import get_method
from gmc_rl.progress import progress_bar

TEACHER_METHOD = "state"
"""The method a teacher must have been trained with: its policy reads ``info["state"]``."""


@dataclass(frozen=True)
class DistillSettings:
    """How much the student gathers and how it is fitted.

    Attributes:
        rounds: DAgger rounds (the first follows the teacher).
        steps: env steps gathered per round, over all ``agent.n_envs`` envs.
        epochs: passes over all data gathered so far, per fit.
        batch_size: samples per gradient step.
        lr: Adam learning rate of each fit.
    """

    rounds: int = 8
    steps: int = 5000
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("rounds", "steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"distillation {name} must be a positive integer, got {value!r}")
        check_gathered_steps(self.rounds, self.steps, "agent.distill_rounds", "agent.distill_steps")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            raise ConfigError(f"distillation lr must be a positive number, got {self.lr!r}")


def load_teacher(teacher_dir: str | Path, config: ExperimentConfig) -> Agent:
    """The true-state agent in ``teacher_dir``, checked against the student's env.

    Raises:
        ConfigError: the teacher does not read the true state, or was trained on another env or env_kwargs.
    """
    teacher = load_agent(teacher_dir)
    if teacher.method != TEACHER_METHOD:
        raise ConfigError(f"the teacher {teacher_dir} is a {teacher.method!r} agent; a teacher must read the true "
                          f"state (train one with `gmc-rl train --method {TEACHER_METHOD}`)")
    if teacher.env_id != config.env_id or teacher.env_kwargs != dict(config.env_kwargs):
        raise ConfigError(f"the teacher {teacher_dir} was trained on {teacher.env_id} {teacher.env_kwargs}, the "
                          f"student runs on {config.env_id} {dict(config.env_kwargs)}")
    return teacher


def _states(infos: list[dict[str, Any]]) -> np.ndarray:
    """The true states in ``infos`` (one per env), as the teacher's observation batch."""
    missing = [i for i, info in enumerate(infos) if "state" not in info]
    if missing:
        raise ConfigError("the env reports no info['state'] (needed by the teacher); distillation works only on "
                          "envs that expose their true state")
    return np.stack([np.asarray(info["state"], dtype=np.float32) for info in infos])


def gather(venv: VecEnv, teacher: Agent, student: BaseAlgorithm | None, steps: int
           ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``steps`` (student observation, teacher action) pairs, acting with ``student`` (the teacher if None).

    Returns the observations, the teacher's actions and the returns of the episodes that ended on the way.
    """
    observations: list[Any] = []
    actions: list[np.ndarray] = []
    returns: list[float] = []
    obs: Any = venv.reset()
    states = _states(venv.reset_infos)
    totals = np.zeros(venv.num_envs)
    while len(observations) * venv.num_envs < steps:
        teacher_actions, _ = teacher.model.predict(states, deterministic=True)
        observations.append(obs)
        actions.append(teacher_actions)
        acting = teacher_actions if student is None else student.predict(obs, deterministic=True)[0]
        obs, rewards, dones, infos = venv.step(acting)
        totals += rewards
        for i in np.flatnonzero(dones):
            returns.append(float(totals[i]))
            totals[i] = 0.0
        # after an episode ends the VecEnv has reset that env: its new state is in reset_infos
        states = _states([venv.reset_infos[i] if dones[i] else info for i, info in enumerate(infos)])
    return concatenate(observations), np.concatenate(actions), returns


def concatenate(batches: list[Any]) -> Any:
    """Observation batches joined along the first axis: arrays, or ``Dict`` observations key by key (raw method)."""
    if isinstance(batches[0], dict):
        return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
    return np.concatenate(batches)


def rows(observations: Any, index: torch.Tensor) -> Any:
    """The rows ``index`` of an observation tensor, or of each tensor of a ``Dict`` observation."""
    if isinstance(observations, dict):
        return {key: value[index] for key, value in observations.items()}
    return observations[index]


def acting_part(policy: Any) -> tuple[str, Any]:
    """The part of an SB3 policy that chooses the actions, and its kind: ``("actor_critic", policy)`` (PPO, A2C),
    ``("q_values", q_net)`` (DQN) or ``("actor", actor)`` (SAC, TD3, DDPG). Distillation fits it; the action fit
    (gmc_rl.agents.action_fit) reads it."""
    if hasattr(policy, "evaluate_actions"):
        return "actor_critic", policy
    if hasattr(policy, "q_net"):
        return "q_values", policy.q_net
    if hasattr(policy, "actor"):
        return "actor", policy.actor
    raise ConfigError(f"gmc-rl does not know which part of a {type(policy).__name__} acts (it knows the policies "
                      "of PPO, A2C, DQN, SAC, TD3 and DDPG)")


def actor_action(actor: Any, obs: Any) -> torch.Tensor:
    """The deterministic action of an off-policy actor in [-1, 1]: SAC's actor samples unless asked for its mean."""
    return actor(obs, deterministic=True) if isinstance(actor, SACActor) else actor(obs)


def _imitation_loss(model: BaseAlgorithm, obs: Any, actions: torch.Tensor) -> torch.Tensor:
    """The supervised loss of the student's policy on the teacher's ``actions`` (see the module docstring)."""
    kind, module = acting_part(model.policy)
    if kind == "actor_critic":
        _, log_prob, _ = module.evaluate_actions(obs, actions)
        return -log_prob.mean()
    if kind == "q_values":
        return F.cross_entropy(module(obs), actions.long().flatten())
    predicted = actor_action(module, obs)
    return F.mse_loss(predicted, actions.reshape(predicted.shape))


def fit(model: BaseAlgorithm, observations: np.ndarray, actions: np.ndarray, settings: DistillSettings,
        seed: int) -> float:
    """Fit the student's policy on all pairs; return the final loss over all of them."""
    policy: Any = model.policy
    policy.set_training_mode(True)
    kind, module = acting_part(policy)
    targets = policy.scale_action(actions) if kind == "actor" else actions  # the actor acts in [-1, 1]
    x = policy.obs_to_tensor(observations)[0]
    y = torch.as_tensor(targets, device=policy.device)
    optimizer = torch.optim.Adam(module.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(settings.epochs):
        for batch in torch.randperm(len(y), generator=generator).split(settings.batch_size):
            batch = batch.to(policy.device)
            optimizer.zero_grad()
            _imitation_loss(model, rows(x, batch), y[batch]).backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():  # in chunks: raw image observations of every round at once may not fit in memory
        chunks = torch.arange(len(y)).split(8 * settings.batch_size)
        total = sum(float(_imitation_loss(model, rows(x, chunk.to(policy.device)), y[chunk.to(policy.device)]))
                    * len(chunk) for chunk in chunks)
    return total / len(y)


def distill_agent(
    config: ExperimentConfig,
    method: str,
    seed: int,
    out_dir: str | Path,
    teacher_dir: str | Path,
    encoder_dir: str | Path | None = None,
    settings: DistillSettings | None = None,
    *,
    progress_bar: bool = True,
) -> Path:
    """Train ``config.agent.algo``'s policy for ``method`` by imitating the true-state agent in ``teacher_dir``.

    ``settings`` default to the config's ``agent.distill_rounds`` and ``agent.distill_steps`` (and the class's
    defaults for the rest). Writes an ordinary agent directory (``agent.json`` also records the teacher, the settings
    and the per-round history); ``tb/`` holds the fit loss and the acting return per round.

    Raises:
        ConfigError: the teacher is not a true-state agent of this env, the env reports no ``info["state"]``, a
            non-empty ``out_dir`` that holds no distillation with these settings, bad settings, an unsupported
            algorithm, or a method/encoder mismatch.
        CheckpointError: the encoder does not match the env's observation space.
    """
    if settings is None:
        settings = DistillSettings(rounds=config.agent.distill_rounds, steps=config.agent.distill_steps)
    spec = get_method(method)
    out_dir = Path(out_dir)
    seed = int(seed)
    agent_cfg = config.agent
    device = str(resolve_device(agent_cfg.device, "agent.device"))
    teacher = load_teacher(teacher_dir, config)
    identity = training_identity(config, method, seed)
    hyperparams = identity["hyperparams"]
    distillation = {"teacher": str(teacher_dir), "teacher_seed": teacher.seed, **asdict(settings)}
    source = encoder_source(spec, encoder_dir)  # no fallback to a copy in out_dir: a distillation starts over
    encoder = spec.load_encoder(source, device="cpu") if source is not None else None
    modalities = check_agent_setup(config, spec, encoder, hyperparams)
    probe = make_method_vec_env(method, config.env_id, config.env_kwargs, "complete", 1, seed, encoder)
    try:  # what the student observes, kept with the teacher's actions for every round
        check_distillation_memory(settings.rounds, settings.steps, probe.observation_space, probe.action_space)
    finally:
        probe.close()
    with directory_lock(out_dir, "agent directory"):
        if _finished(out_dir, identity, distillation):
            return out_dir
        _check_empty(out_dir)
        if source is not None:
            layout.copy_encoder(source, out_dir)
        venv = make_method_vec_env(method, config.env_id, config.env_kwargs, "complete", agent_cfg.n_envs, seed,
                                   encoder, vec_env=agent_cfg.vec_env)
        venv.seed(seed)
        writer = SummaryWriter(str(out_dir / layout.TB_DIR / f"{method}_{agent_cfg.algo}_distill"))
        try:
            model = build_algorithm(agent_cfg.algo, venv, hyperparams, seed, tensorboard_log=None, device=device)
            start = time.perf_counter()
            history = _run_rounds(model, venv, teacher, settings, seed, writer, progress_bar, f"{method}-seed{seed}")
            layout.save_model_atomic(model, out_dir / layout.MODEL_ZIP)
            digests = layout.encoder_digests(out_dir) if source is not None else None
            info = agent_description(config, modalities, venv, digests, identity,
                                     settings.rounds * settings.steps, sum(int(row["steps"]) for row in history))
            layout.write_agent_json(out_dir, {**info, "status": layout.STATUS_COMPLETE,
                                              "train_seconds": time.perf_counter() - start,
                                              "distillation": {**distillation, "history": history}})
        finally:
            writer.close()
            venv.close()
    return out_dir


def _run_rounds(model: BaseAlgorithm, venv: VecEnv, teacher: Agent, settings: DistillSettings, seed: int,
                writer: SummaryWriter, show_progress: bool, label: str) -> list[dict[str, Any]]:
    """The DAgger rounds; returns one history row per round."""
    observations: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    history: list[dict[str, Any]] = []
    bar = progress_bar(settings.rounds, f"distill {label}", "round", enabled=show_progress)
    try:
        for round_index in range(settings.rounds):
            obs, teacher_actions, returns = gather(venv, teacher, model if round_index else None, settings.steps)
            observations.append(obs)
            actions.append(teacher_actions)
            loss = fit(model, concatenate(observations), np.concatenate(actions), settings, seed + round_index)
            row = {"round": round_index, "steps": len(obs), "fit_loss": loss,
                   "acting_return": float(np.mean(returns)) if returns else None, "episodes": len(returns)}
            history.append(row)
            writer.add_scalar("distill/fit_loss", loss, round_index)
            if returns:  # None when no episode ended within the round's steps
                writer.add_scalar("distill/acting_return", row["acting_return"], round_index)
            bar.set_postfix(acting_return="-" if not returns else f"{row['acting_return']:.1f}", loss=f"{loss:.3f}")
            bar.update(1)
    finally:
        bar.close()
    return history


def _finished(out_dir: Path, identity: dict[str, Any], distillation: dict[str, Any]) -> bool:
    """True if ``out_dir`` holds a finished distillation with the same identity and settings (kept as is)."""
    if not (out_dir / layout.AGENT_JSON).is_file() or not (out_dir / layout.MODEL_ZIP).is_file():
        return False
    info = layout.read_agent_json(out_dir)
    stored = info.get("distillation") or {}
    same = info.get("identity") == identity and all(stored.get(k) == v for k, v in distillation.items())
    if not same:
        raise ConfigError(f"output directory {out_dir} holds another agent; choose a new directory")
    return info["status"] == layout.STATUS_COMPLETE


def _check_empty(out_dir: Path) -> None:
    """Refuse a directory with files gmc-rl did not write; clear what an interrupted distillation left."""
    ours = {layout.ENCODER_DIR, layout.TB_DIR, layout.ACTION_FIT_DIR}
    entries = [p for p in out_dir.iterdir() if not p.name.startswith(".tmp-") and p.name not in (LOCK_FILE, HOLDER_FILE)
               ] if out_dir.is_dir() else []
    foreign = [p.name for p in entries if p.name not in ours]
    if foreign:
        raise ConfigError(f"output directory {out_dir} is not empty ({sorted(foreign)[:5]}); choose a new directory")
    for entry in entries:  # an interrupted distillation of ours: it starts over
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
