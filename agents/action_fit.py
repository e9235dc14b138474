"""The action fit (``agent.action_fit_rounds``): a GMC agent's modality encoders learn to give the agent's actions.

Why: the modality fit (:mod:`gmc_rl.modality_fit`) makes each modality latent the best estimate of the complete
latent that the modality allows, but a controller reads some directions of the latent much more than others, and
the gap that is left along them changes its actions: with the modality fit, distilled controllers still lost more
than 10 % with one sensor on 9 of 20 AcrobotSensors and 14 of 30 CartPoleSensors agent x sensor pairs
(experiments/results/modality_fit; what this step changes: experiments/results/action_fit). This step closes
the gap where it matters: with the joint encoder, the projection head and the policy frozen, the modality encoders
are trained so that the agent acts on the latent of every proper subset of its sensors (the encoder's own rule for
missing sensors: the plain mean of the present modalities' latents) as it acts on the complete latent.

What is fitted, per batch of observations ``x``, with ``z_c`` the complete latent and ``z_S`` the latent of subset
``S``::

    loss = sum_S D(pi(z_S), pi(z_c)) + sum_m (1 - cos(z_m, z_c))

``D`` is the KL divergence of the action distributions for discrete actions (PPO/A2C logits, DQN Q-values as
logits) and the squared distance of the deterministic actions for continuous ones (the actor's mean action in
[-1, 1]); the second sum is the modality fit's loss, which keeps each modality latent near the complete one off
the agent's path. The observations are those the agent meets when it acts from missing sensors (DAgger, as in
:mod:`gmc_rl.agents.distillation`): each round runs ``steps`` env steps with every episode driven by every sensor
or by a random proper subset, keeps every visited observation, and refits on all of them. A closed-loop check
ends it (:func:`check_modalities`): a modality's fitted encoder is put back where the agent does worse from that
modality alone with it than with the encoder it had, beyond chance.

The agent is trained on complete observations only, as before, and is not changed: its policy and the complete
latent are bit-for-bit those of training. The fitted encoder is specific to the agent, so it lives in the agent's
directory (``action_fit/``, next to the ``encoder/`` it was fitted from) and :func:`gmc_rl.agents.load_agent`
uses it; training the agent further removes it.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from torch.nn import functional as F  # noqa: N812

from gmc_rl.agents import agent_dir as layout
from gmc_rl.agents.distillation import acting_part, actor_action, concatenate, rows
from gmc_rl.agents.loading import Agent, fit_record, load_agent, load_fitted_encoder
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.agents.training import check_action_fit_memory
from gmc_rl.checkpoint import read_checkpoint_config, save_gmc
from gmc_rl.config import MAX_ENVS, AgentConfig, check_gathered_steps
from gmc_rl.data import file_sha256
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.evaluate import t_critical
from gmc_rl.io import make_staging_dir
from gmc_rl.methods import get_method
from gmc_rl.modality_fit import trainable_encoders
from gmc_rl.model import GMCModel
from gmc_rl.progress import progress_bar
from gmc_rl.wrappers.conditions import all_subset_conditions


@dataclass(frozen=True)
class ActionFitSettings:
    """How much the fit gathers and trains.

    Attributes:
        rounds: DAgger rounds; 0 turns the fit off.
        steps: env steps gathered per round, over all ``agent.n_envs`` envs.
        epochs: passes over everything gathered so far, per round.
        batch_size: observations per gradient step.
        lr: Adam learning rate (a fresh optimizer each round).
        check_episodes: episodes per modality of the closed-loop check (:func:`check_modalities`); 0 keeps every
            fitted modality encoder unchecked.
    """

    rounds: int = 3
    steps: int = 3000
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-4
    check_episodes: int = 5

    @classmethod
    def from_config(cls, agent: AgentConfig) -> ActionFitSettings:
        """The settings of an experiment config's ``agent`` section (``action_fit_*``; the rest as defaults)."""
        return cls(rounds=agent.action_fit_rounds, steps=agent.action_fit_steps, epochs=agent.action_fit_epochs,
                   check_episodes=agent.action_fit_check_episodes)

    def __post_init__(self) -> None:
        for name in ("steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"action fit {name} must be a positive integer, got {value!r}")
        episodes = self.check_episodes
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
            raise ConfigError(f"action fit check_episodes must be 0 (no check) or a positive integer, got {episodes!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            raise ConfigError(f"action fit rounds must be 0 (off) or a positive integer, got {self.rounds!r}")
        check_gathered_steps(self.rounds, self.steps, "agent.action_fit_rounds", "agent.action_fit_steps")
        if episodes > MAX_ENVS:
            raise ConfigError(f"action fit check_episodes must be at most {MAX_ENVS} (MAX_ENVS): the check runs its "
                              f"episodes at once, one env each; got {episodes}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr < float("inf"):
            raise ConfigError(f"action fit lr must be a positive number, got {self.lr!r}")


def proper_subsets(modalities: list[str]) -> list[list[str]]:
    """Every non-empty subset of ``modalities`` except the whole set, smallest first, in the modalities' order: the
    evaluation's subset conditions (:func:`gmc_rl.wrappers.conditions.all_subset_conditions`) as name lists."""
    return [condition.split("+") for condition in all_subset_conditions(modalities)[1:]]


def policy_output(policy: Any, latents: torch.Tensor) -> tuple[str, torch.Tensor]:
    """What the fit compares: ``("logits", ...)`` for a discrete policy, ``("action", ...)`` (the deterministic
    action in the actor's [-1, 1] units, or a Gaussian policy's mean) for a continuous one."""
    kind, module = acting_part(policy)
    if kind == "actor_critic":  # PPO, A2C
        distribution = module.get_distribution(latents).distribution
        if isinstance(distribution, torch.distributions.Categorical):
            return "logits", distribution.logits
        if isinstance(distribution, torch.distributions.Normal):
            return "action", distribution.mean
        raise ConfigError(f"the action fit does not know the action distribution {type(distribution).__name__}")
    if kind == "q_values":  # DQN
        return "logits", module(latents)
    return "action", actor_action(module, latents)  # SAC, TD3, DDPG


def action_divergence(kind: str, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(teacher || student) for ``"logits"``, of the squared distance for ``"action"``.

    >>> teacher = torch.tensor([[0.0, 0.0]])
    >>> round(float(action_divergence("logits", torch.tensor([[0.0, 0.0]]), teacher)), 6)
    0.0
    >>> float(action_divergence("action", torch.tensor([[1.0, 0.5]]), torch.tensor([[0.0, 0.5]])))
    1.0
    """
    if kind == "logits":
        return F.kl_div(F.log_softmax(student, dim=-1), F.log_softmax(teacher, dim=-1), log_target=True,
                        reduction="batchmean")
    if kind == "action":
        return ((student - teacher) ** 2).sum(dim=-1).mean()
    raise ValueError(f"unknown policy output kind {kind!r}")


def action_fit_loss(encoder: GMCModel, policy: Any, observations: dict[str, torch.Tensor],
                    subsets: list[list[str]]) -> tuple[torch.Tensor, dict[str, float]]:
    """The fit's loss on one batch (see the module docstring) and its terms by subset (``"a+b"``) and ``"cosine"``.

    Gradients reach only the modality encoders: the complete latent and the policy's answer to it are targets.
    """
    with torch.no_grad():
        complete = encoder.joint_latent(observations)
        kind, target = policy_output(policy, complete)
    latents = encoder.modality_latents(observations)
    total = sum(((1 - (latent * complete).sum(dim=-1)).mean() for latent in latents.values()),
                torch.zeros((), device=complete.device))
    terms = {"cosine": float(total.detach())}
    for subset in subsets:
        partial = torch.stack([latents[name] for name in subset]).mean(dim=0)
        divergence = action_divergence(kind, policy_output(policy, partial)[1], target)
        terms["+".join(subset)] = float(divergence.detach())
        total = total + divergence
    return total, terms


def gather(venv: Any, encoder: GMCModel, model: BaseAlgorithm, subsets: list[list[str]], steps: int,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``steps`` raw observations (over all envs of ``venv``) met while the agent acts deterministically, each
    episode driven by every sensor or by one of ``subsets``, drawn with ``rng`` at the episode's start."""
    drivers: list[tuple[str, ...] | None] = [None, *(tuple(subset) for subset in subsets)]
    kept: list[dict[str, np.ndarray]] = []
    obs = venv.reset()
    driver = [drivers[rng.integers(len(drivers))] for _ in range(venv.num_envs)]
    while len(kept) * venv.num_envs < steps:
        kept.append({name: np.array(value) for name, value in obs.items()})
        latents = np.zeros((venv.num_envs, encoder.config.latent_dim), dtype=np.float32)
        for chosen in set(driver):
            envs = [i for i, d in enumerate(driver) if d == chosen]
            with torch.no_grad():
                batch = {name: value[envs] for name, value in obs.items()}
                latents[envs] = encoder.encode(batch, None if chosen is None else list(chosen)).cpu().numpy()
        actions, _ = model.predict(latents, deterministic=True)
        obs, _, dones, _ = venv.step(actions)
        for i in np.flatnonzero(dones):
            driver[i] = drivers[rng.integers(len(drivers))]
    return {name: array[:steps] for name, array in concatenate(kept).items()}


def fit_encoder(encoder: GMCModel, model: BaseAlgorithm, observations: dict[str, np.ndarray],
                settings: ActionFitSettings, seed: int) -> dict[str, float]:
    """Train ``encoder``'s modality encoders in place for ``settings.epochs`` passes over ``observations``; return
    the mean of each loss term over the last epoch. The encoder is left frozen in eval mode."""
    policy: Any = model.policy
    policy.set_training_mode(False)
    for parameter in policy.parameters():
        parameter.requires_grad_(False)
    data = {name: torch.from_numpy(array) for name, array in observations.items()}
    subsets = proper_subsets(list(encoder.modalities))
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    with trainable_encoders(encoder) as trainable:
        optimizer = torch.optim.Adam(trainable, lr=settings.lr)
        for _ in range(settings.epochs):
            sums, batches = {}, 0
            for index in torch.randperm(len(next(iter(data.values()))), generator=generator).split(settings.batch_size):
                loss, terms = action_fit_loss(encoder, policy, rows(data, index), subsets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value
                batches += 1
            sums = {key: value / batches for key, value in sums.items()}
    return sums


CHECK_SEED_OFFSET = 10_000
"""The check's envs are seeded with the agent's seed plus this, away from the evaluation seeds (the agent's)."""


def closed_loop_returns(encoder: GMCModel, model: BaseAlgorithm, env_id: str, env_kwargs: dict[str, Any],
                        modality: str, episodes: int, seed: int) -> list[float]:
    """The return of the first episode of each of ``episodes`` envs (env ``i`` seeded ``seed + i``) with the agent
    acting deterministically on ``modality`` alone through ``encoder``: the same starts for any encoder."""
    venv = make_method_vec_env("gmc", env_id, env_kwargs, modality, episodes, seed, encoder=encoder)
    try:
        obs: Any = venv.reset()  # latent arrays (the GMC method's observations)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            actions, _ = model.predict(obs, deterministic=True)
            obs, rewards, dones, _ = venv.step(actions)
            returns[running] += rewards[running]
            running &= ~dones
    finally:
        venv.close()
    return [float(value) for value in returns]


def check_modalities(fitted: GMCModel, original: GMCModel, model: BaseAlgorithm, env_id: str,
                     env_kwargs: dict[str, Any], episodes: int, seed: int) -> dict[str, dict[str, Any]]:
    """Keep each modality's fitted encoder only where the agent does at least as well from that modality alone.

    Matching the actions on gathered states is a proxy: a sensor that cannot show what the policy reads (CartPole's
    image, which cannot show the velocities well) can come closer to the policy's actions and balance worse. For
    each modality the agent runs ``episodes`` episodes from that modality alone with the original and with the
    fitted encoder, from the same starts (seeded ``seed + i``). Where the fitted encoder is worse beyond chance
    (the 95 % t-interval of the paired differences of return lies below 0; with one episode, or equal differences,
    any lower return counts), that modality's encoder is put back to the original in ``fitted`` (in place): a few
    episodes of a noisy env do not undo a fit that helps. Returns, per modality, both mean returns, the mean paired
    difference with its interval's half width, and whether the fitted encoder was kept.
    """
    report: dict[str, dict[str, Any]] = {}
    for index, modality in enumerate(fitted.modalities):
        before = closed_loop_returns(original, model, env_id, env_kwargs, modality, episodes, seed)
        after = closed_loop_returns(fitted, model, env_id, env_kwargs, modality, episodes, seed)
        difference, half_width = paired_difference(after, before)
        kept = difference + half_width >= 0
        if not kept:
            fitted.encoders[index].load_state_dict(original.encoders[index].state_dict())
        report[modality] = {"original": float(np.mean(before)), "fitted": float(np.mean(after)),
                            "difference": difference, "half_width": half_width, "kept": kept}
    return report


def paired_difference(after: list[float], before: list[float]) -> tuple[float, float]:
    """Mean of ``after[i] - before[i]`` and the half width of its 95 % t-interval (0 for one pair).

    >>> mean, half_width = paired_difference([3.0, 5.0], [1.0, 1.0])  # differences 2, 4: sd / sqrt(2) = 1
    >>> mean, round(half_width, 3)  # t(1 degree of freedom) = 12.706
    (3.0, 12.706)
    """
    differences = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if len(differences) < 2:
        return float(differences.mean()), 0.0
    spread = float(differences.std(ddof=1)) / np.sqrt(len(differences))
    return float(differences.mean()), float(t_critical(len(differences) - 1) * spread)


def fit_agent_encoder(encoder: GMCModel, model: BaseAlgorithm, env_id: str, env_kwargs: dict[str, Any],
                      n_envs: int, settings: ActionFitSettings, seed: int, *, progress: bool = True
                      ) -> tuple[GMCModel, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """A copy of ``encoder`` fitted to the actions of ``model`` (rounds of :func:`gather` and
    :func:`fit_encoder`, then :func:`check_modalities` when ``settings.check_episodes`` > 0), one history row per
    round, and the check's report (empty without a check). ``encoder`` itself is not changed."""
    if not isinstance(encoder, GMCModel):
        raise ConfigError(f"the action fit needs a GMC encoder, got {type(encoder).__name__}")
    if settings.rounds < 1:
        raise ConfigError("the action fit needs at least one round (agent.action_fit_rounds)")
    fitted = copy.deepcopy(encoder)
    subsets = proper_subsets(list(fitted.modalities))
    rng = np.random.default_rng(seed)
    venv = make_method_vec_env("raw", env_id, env_kwargs, "complete", n_envs, seed)
    try:  # every observation gathered is kept: refused before the first round if they cannot fit
        check_action_fit_memory(settings.rounds, settings.steps, venv.observation_space)
    except ConfigError:
        venv.close()
        raise
    venv.seed(seed)
    gathered: list[dict[str, np.ndarray]] = []
    history: list[dict[str, Any]] = []
    bar = progress_bar(settings.rounds, "action fit", "round", enabled=progress)
    try:
        for round_index in range(settings.rounds):
            gathered.append(gather(venv, fitted, model, subsets, settings.steps, rng))
            everything = concatenate(gathered)
            terms = fit_encoder(fitted, model, everything, settings, seed + round_index)
            history.append({"round": round_index, "observations": len(everything[fitted.modalities[0]]),
                            "loss_terms": terms})
            bar.set_postfix(loss=f"{sum(terms.values()):.4f}")
            bar.update(1)
    finally:
        bar.close()
        venv.close()
    check = {} if settings.check_episodes == 0 else check_modalities(
        fitted, encoder, model, env_id, env_kwargs, settings.check_episodes, seed + CHECK_SEED_OFFSET)
    return fitted, history, check


def _loads(agent_dir: Path, agent: Agent) -> bool:
    """Whether the fit in ``agent_dir`` loads for ``agent`` (its record alone can be intact over damaged weights)."""
    try:
        load_fitted_encoder(agent_dir, get_method(agent.method), agent.encoder, "cpu")
    except CheckpointError:
        return False
    return True


def fit_agent(agent_dir: str | os.PathLike, settings: ActionFitSettings, *, progress: bool = True) -> Path | None:
    """Fit the GMC agent in ``agent_dir`` (see the module docstring) and write ``agent_dir/action_fit/``.

    Returns the fitted encoder's directory, or None for an agent without a GMC encoder (nothing to fit). A fit with
    the same settings to the same policy that loads is kept as is; any other (or a damaged one) is replaced. The
    seed is the agent's.

    Raises:
        CheckpointError, ConfigError: as :func:`gmc_rl.agents.load_agent` for a damaged or unfinished agent.
    """
    agent_dir = Path(agent_dir)
    agent = load_agent(agent_dir, action_fit=False)
    if not isinstance(agent.encoder, GMCModel):
        return None
    policy_sha = file_sha256(agent_dir / layout.MODEL_ZIP)
    target = agent_dir / layout.ACTION_FIT_DIR
    wanted = {"settings": asdict(settings), "policy_sha256": policy_sha}
    if fit_record(target) == wanted and _loads(agent_dir, agent):
        return target
    start = time.perf_counter()
    fitted, history, check = fit_agent_encoder(agent.encoder, agent.model, agent.env_id, agent.env_kwargs,
                                               int(agent.config.agent.n_envs), settings, agent.seed,
                                               progress=progress)
    report = {**wanted, "history": history, "check": check, "seconds": time.perf_counter() - start}
    source = read_checkpoint_config(agent_dir / layout.ENCODER_DIR).get("provenance") or {}
    staging = make_staging_dir(target)
    try:
        save_gmc(fitted, staging, {**source, "action_fit": report})  # the encoder's own provenance, and the fit
        layout.remove_action_fit(agent_dir)  # an older or damaged fit, whatever is left of it
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
