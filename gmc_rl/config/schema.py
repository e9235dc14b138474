"""The sections of an experiment config: one dataclass per section, each field with its default and docstring.

Each section checks its own values in ``__post_init__``: types with :func:`gmc_rl.config.conversion._check_fields`,
sizes against :mod:`gmc_rl.config.limits`, the SB3 hyperparameters with :mod:`gmc_rl.config.hyperparams`, and
:class:`ExperimentConfig` what spans sections (the run name, seeds, methods, the distillation teacher). The same
dataclasses make the YAML keys and the command-line flags (gmc_rl.commands.config_flags).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gmc_rl.config.checks import _is_integer, _require
from gmc_rl.config.conversion import _check_fields
from gmc_rl.config.hyperparams import check_hyperparams, merge_hyperparams
from gmc_rl.config.limits import (
    MAX_COLLECT_STEPS,
    MAX_DIAGNOSTIC_STEPS,
    MAX_ENVS,
    MAX_EPISODES,
    MAX_LAYER_WIDTH,
    MAX_LAYERS,
    MAX_NAME_BYTES,
    MAX_PRETRAIN_BATCH,
    _check_envs,
    check_gathered_steps,
    check_reference_latents,
)
from gmc_rl.errors import ConfigError, suggest
from gmc_rl.methods import get_method, method_names


def _check_method(method: str, key: str) -> None:
    """Raise ConfigError naming ``key`` if ``method`` is not a registered representation method."""
    try:
        get_method(method)
    except ConfigError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from None


def _check_seed(value: int, key: str) -> None:
    """Raise ConfigError naming ``key`` unless ``value`` is in [0, 2**32), the seeds NumPy accepts."""
    _require(0 <= value < 2**32, key, f"must be an integer in [0, 2**32), got {value}")


def check_plain_name(name: str, key: str) -> None:
    """Raise ConfigError unless ``name`` is a name, never a path: the run directory ``runs/<name>`` it names must
    stay inside ``runs/``.

    Refused: an empty name, ``.`` and ``..``, a path separator (``/`` or ``\\``, so neither ``../../x`` nor an
    absolute path), a NUL character, and more than :data:`MAX_NAME_BYTES` bytes (the file system's limit, which
    would otherwise surface as a raw OSError when the directory is made).
    """
    _require(bool(name.strip()), key, "must be a non-empty string (it names the run directory)")
    separators = [sep for sep in ("/", "\\") if sep in name]
    _require(not separators and name not in (".", ".."), key,
             f"must be a name, not a path: {name!r}" + (f" contains {separators}" if separators else "")
             + "; it names the run directory runs/<name> (pass --out DIR to write elsewhere)")
    _require("\0" not in name, key, f"must not contain a NUL character, got {name!r}")
    size = len(name.encode("utf-8", "surrogatepass"))
    _require(size <= MAX_NAME_BYTES, key,
             f"is {size} bytes long; a directory name may have at most {MAX_NAME_BYTES} (MAX_NAME_BYTES)")


@dataclass
class CollectConfig:
    """Data collection: rollouts of a behaviour policy, split into train and validation sets."""

    steps: int = 20_000
    """Total transitions collected (train + validation)."""
    val_fraction: float = 0.1
    """Fraction of the transitions held out for validation (taken from the end, whole episodes are not split)."""
    n_envs: int = 8
    """Number of environments stepped in parallel (a vectorized env)."""
    policy: str = "random"
    """Behaviour policy: "random" (uniform over the action space) or the path of an SB3 agent ``.zip``."""
    seed: int = 0
    """Seed of the envs and of the behaviour policy's actions."""
    focus_fraction: float = 0.0
    """Share of the parallel envs (and so of the transitions) whose episodes start where ``focus_reset_options``
    says and last at most ``focus_episode_steps``: data from states a controller visits but the behaviour policy
    rarely reaches (e.g. the upright pendulum). 0 collects every episode from the env's own start distribution.
    The focused envs are the first ones, so the validation split (taken from the end) keeps the plain starts."""
    focus_reset_options: dict[str, Any] = field(default_factory=dict)
    """Gymnasium ``reset(options=...)`` of the focused envs, e.g. ``{x_init: 0.3, y_init: 1.0}`` for Pendulum
    (angle in [-0.3, 0.3], angular velocity in [-1, 1])."""
    focus_episode_steps: int = 0
    """Length limit of the focused episodes (a ``TimeLimit`` truncation); 0 keeps the env's own limit."""

    def __post_init__(self) -> None:
        _check_fields(self, "collect")
        _require(self.steps > 0, "collect.steps", f"must be a positive number of transitions, got {self.steps}")
        _require(self.steps <= MAX_COLLECT_STEPS, "collect.steps",
                 f"must be at most {MAX_COLLECT_STEPS} (MAX_COLLECT_STEPS), got {self.steps}")
        _require(0.0 < self.val_fraction < 1.0, "collect.val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        _check_envs(self.n_envs, "collect.n_envs")
        _check_seed(self.seed, "collect.seed")
        _require(0.0 <= self.focus_fraction < 1.0, "collect.focus_fraction",
                 f"must be in [0, 1) (some envs keep the plain starts), got {self.focus_fraction}")
        _require(self.focus_episode_steps >= 0, "collect.focus_episode_steps",
                 f"must be >= 0 (0: the env's own limit), got {self.focus_episode_steps}")


@dataclass
class ModelConfig:
    """GMC architecture. Defaults are the GMC paper's pendulum model."""

    latent_dim: int = 10
    """k: size of the shared, L2-normalised latent."""
    common_dim: int = 64
    """d: size of every encoder's output, the input of the shared projection head."""
    head_hidden: int = 128
    """Hidden size of the shared projection head (d -> head_hidden -> k)."""
    conv_channels: list[int] = field(default_factory=lambda: [32, 64])
    """Channels of the conv layers of image encoders (kernel 4, stride 2, padding 1 each)."""
    mlp_hidden: list[int] = field(default_factory=lambda: [50, 50])
    """Hidden sizes of the MLP of vector encoders."""
    activation: str = "silu"
    """Activation: "silu" (Swish, as the paper), "relu", "tanh" or "elu"."""

    def __post_init__(self) -> None:
        _check_fields(self, "pretrain.model")
        for key in ("latent_dim", "common_dim", "head_hidden"):
            value = getattr(self, key)
            _require(value > 0, f"pretrain.model.{key}", f"must be positive, got {value}")
            _require(value <= MAX_LAYER_WIDTH, f"pretrain.model.{key}",
                     f"must be at most {MAX_LAYER_WIDTH} (MAX_LAYER_WIDTH), got {value}")
        _require(len(self.conv_channels) > 0 and all(c > 0 for c in self.conv_channels),
                 "pretrain.model.conv_channels", f"must be a non-empty list of positive ints, got {self.conv_channels}")
        _require(all(h > 0 for h in self.mlp_hidden),
                 "pretrain.model.mlp_hidden", f"must be a list of positive ints, got {self.mlp_hidden}")
        for key in ("conv_channels", "mlp_hidden"):
            widths = getattr(self, key)
            _require(len(widths) <= MAX_LAYERS, f"pretrain.model.{key}",
                     f"must list at most {MAX_LAYERS} layers (MAX_LAYERS), got {len(widths)}")
            _require(max(widths, default=0) <= MAX_LAYER_WIDTH, f"pretrain.model.{key}",
                     f"widths must be at most {MAX_LAYER_WIDTH} (MAX_LAYER_WIDTH), got {max(widths, default=0)}")
        valid = ("silu", "relu", "tanh", "elu")
        _require(self.activation in valid, "pretrain.model.activation",
                 f"unknown activation {self.activation!r}; valid: {list(valid)}.{suggest(self.activation, valid)}")


@dataclass
class MUSEConfig:
    """The settings of the MUSE baseline only (``pretrain.muse``): bottom latent sizes and the weights of the
    top-level terms of its objective (:mod:`gmc_rl.muse.model`).

    Everything else (encoders, top latent size k, epochs, batch size, lr) comes from ``pretrain`` as for GMC and the
    MVAE. The defaults are the authors' pendulum values. GMC and MVAE pretraining ignore this section, and its
    defaults are left out of every identity (:func:`pretrain_identity`), so runs made before the section existed
    stay up to date.
    """

    bottom_latent_dims: dict[str, int] = field(default_factory=dict)
    """Modality name -> size d_m of its bottom latent. Unlisted modalities get the authors' size by name (image 16,
    sound 8), else by kind (image 16, vector 8): ``gmc_rl.muse.model.resolve_bottom_dims``."""
    top_reconstruction_weight: float = 10.0
    """gamma: weight of the squared error of the bottom latents reconstructed from the top latent."""
    alignment_weight: float = 1.0
    """alpha: weight of the symmetric KL between each single-modality top posterior and the complete one."""
    top_kl_warmup: float = 0.4
    """Fraction of the epochs over which the top-level KL weight rises linearly to 1 (0: weight 1 from the start)."""

    def __post_init__(self) -> None:
        _check_fields(self, "pretrain.muse")
        for name, size in self.bottom_latent_dims.items():
            _require(_is_integer(size) and 0 < size <= MAX_LAYER_WIDTH, f"pretrain.muse.bottom_latent_dims.{name}",
                     f"must be a positive integer of at most {MAX_LAYER_WIDTH} (MAX_LAYER_WIDTH), got {size!r}")
        self.bottom_latent_dims = {name: int(size) for name, size in self.bottom_latent_dims.items()}
        for key in ("top_reconstruction_weight", "alignment_weight", "top_kl_warmup"):
            value = getattr(self, key)
            _require(value >= 0, f"pretrain.muse.{key}", f"must be a finite number >= 0, got {value!r}")
        _require(self.top_kl_warmup <= 1.0, "pretrain.muse.top_kl_warmup",
                 f"must be a fraction in [0, 1], got {self.top_kl_warmup!r}")


@dataclass
class PretrainConfig:
    """GMC pretraining (Adam on the GMC loss). Paper values for the pendulum: lr 1e-3, batch 128, tau 0.3."""

    epochs: int = 40
    """Passes over the training split (the paper trains 500; more can be added with --resume)."""
    batch_size: int = 128
    """Samples per batch; the other samples of a batch are the contrastive negatives."""
    lr: float = 1e-3
    """Adam learning rate."""
    temperature: float = 0.3
    """tau of the contrastive loss (the paper's pendulum value: 0.3)."""
    loss: str = "gmc"
    """"gmc" (the paper's loss) or "joints_as_negatives" (the ablation with only complete latents as negatives)."""
    temporal_weight: float = 0.0
    """Weight of an optional temporal term added to the GMC loss: the same contrastive loss between the complete
    latents of consecutive steps of an episode, so what changes from one step to the next (velocities) must be told
    apart too. 0 trains the paper's objective; GMC only (MVAE and MUSE ignore it)."""
    frame_order_weight: float = 0.0
    """Weight of an optional frame-order term added to the GMC loss: each complete latent must prefer its
    modality's latent to the latent of the same observation with its stacked frames reversed, so the latents must
    encode motion (velocities), not only positions. Needs every modality's first axis to be a stack of at least 2
    frames in time order (as the built-in envs and :mod:`envs.stacking` make them). 0 trains the paper's objective;
    GMC only."""
    modality_fit_epochs: int = 5
    """Epochs of the modality-fit stage run after the contrastive epochs (:mod:`gmc_rl.modality_fit`): with the
    joint encoder and the head frozen, each modality encoder learns to reproduce the complete latent of the same
    observation, so a controller trained on complete latents is fed the closest latent a single sensor allows.
    The complete latent is unchanged. 0 keeps the paper's encoder; GMC only (MVAE and MUSE ignore it)."""
    checkpoint_every: int = 5
    """Save a resumable checkpoint every this many epochs (the last and the best are always kept)."""
    seed: int = 0
    """Seed of the initial weights and of the batch shuffling."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda"."""
    reference_latents: int = 0
    """Complete latents of training observations (at most this many, drawn with the seed) kept in the checkpoint:
    the latent of a modality subset is then projected onto its nearest ones (GMCModel.set_reference_latents). 0
    (the default) keeps the paper's rule, the plain mean of the present modalities' latents, which after the
    modality fit lost less than the projection on every env measured."""
    reference_neighbours: int = 5
    """How many nearest reference latents (cosine) a partial latent is replaced by the normalised mean of."""
    model: ModelConfig = field(default_factory=ModelConfig)
    muse: MUSEConfig = field(default_factory=MUSEConfig)
    """Settings read by the MUSE baseline only (bottom latent sizes, weights of its top-level terms); GMC and MVAE
    pretraining ignore them, and a change here redoes only MUSE pretraining (:func:`pretrain_identity`)."""

    def __post_init__(self) -> None:
        _check_fields(self, "pretrain")
        _require(self.epochs > 0, "pretrain.epochs", f"must be positive, got {self.epochs}")
        _require(self.batch_size > 1, "pretrain.batch_size",
                 f"must be at least 2 (contrastive negatives), got {self.batch_size}")
        _require(self.batch_size <= MAX_PRETRAIN_BATCH, "pretrain.batch_size",
                 f"must be at most {MAX_PRETRAIN_BATCH} (MAX_PRETRAIN_BATCH), got {self.batch_size}")
        _require(self.lr > 0, "pretrain.lr", f"must be positive, got {self.lr}")
        _require(self.temperature > 0, "pretrain.temperature", f"must be positive, got {self.temperature}")
        valid = ("gmc", "joints_as_negatives")
        _require(self.loss in valid, "pretrain.loss",
                 f"unknown loss {self.loss!r}; valid: {list(valid)}.{suggest(self.loss, valid)}")
        _require(math.isfinite(self.temporal_weight) and self.temporal_weight >= 0, "pretrain.temporal_weight",
                 f"must be a finite number >= 0, got {self.temporal_weight}")
        _require(math.isfinite(self.frame_order_weight) and self.frame_order_weight >= 0, "pretrain.frame_order_weight",
                 f"must be a finite number >= 0, got {self.frame_order_weight}")
        _require(self.modality_fit_epochs >= 0, "pretrain.modality_fit_epochs",
                 f"must be 0 (off) or a positive number of epochs, got {self.modality_fit_epochs}")
        _require(self.checkpoint_every > 0, "pretrain.checkpoint_every",
                 f"must be positive, got {self.checkpoint_every}")
        _check_seed(self.seed, "pretrain.seed")
        check_reference_latents(self.reference_latents, self.model.latent_dim, "pretrain.reference_latents")
        _require(self.reference_neighbours >= 1, "pretrain.reference_neighbours",
                 f"must be at least 1, got {self.reference_neighbours}")
        _require(self.reference_latents == 0 or self.reference_neighbours <= self.reference_latents,
                 "pretrain.reference_neighbours", f"must be at most pretrain.reference_latents "
                 f"({self.reference_latents}), got {self.reference_neighbours}: the projection averages that many of "
                 "the stored latents")
        _require(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "pretrain.device",
                 f"must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")


DISTILL_TEACHERS = ("", "state", "auto")
"""Values of ``agent.distill_from``: no distillation, the true-state agent of the same seed as the teacher, or
"auto": the true-state agent when the run trains one, else no distillation
(:meth:`ExperimentConfig.distill_teacher`)."""


@dataclass
class AgentConfig:
    """SB3 controller trained on complete observations."""

    algo: str = "sac"
    """SB3 algorithm: sac, td3, ddpg, ppo, a2c or dqn (dqn needs a discrete action space)."""
    total_timesteps: int = 30_000
    """Environment steps of training (may be raised when resuming)."""
    n_envs: int = 1
    """Training environments stepped in parallel (a vectorized env)."""
    vec_env: str = "dummy"
    """How the n_envs training envs run: "dummy" (one after the other in the training process, SB3's DummyVecEnv)
    or "subproc" (each in a worker process of its own, SB3's SubprocVecEnv). The trained agent is the same; only the
    speed differs (docs/agents.md, "Throughput"). Ignored with one env."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm's constructor (rl-zoo3 style), e.g. learning_rate, policy_kwargs."""
    method_hyperparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Changes to ``hyperparams`` for one method's agents, e.g. ``{raw: {policy_kwargs: {share_features_extractor:
    true}}}``: merged on top of ``hyperparams`` (``policy_kwargs`` key by key), so a method that needs its own
    network (the raw agent's CNN) gets it while every other method keeps the shared settings."""
    eval_freq: int = 5_000
    """Evaluate (EvalCallback) every this many environment steps; 0 disables."""
    eval_episodes: int = 5
    """Episodes of each periodic evaluation."""
    checkpoint_freq: int = 10_000
    """Save a resumable checkpoint (model + replay buffer) every this many steps; 0 disables."""
    device: str = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda" for the SB3 networks."""
    distill_from: str = ""
    """"" (the default of the dataclass): every agent learns by RL. "state": in the pipeline, the agents of the
    methods that read an encoder imitate the true-state agent of their seed (DAgger, gmc_rl.agents.distillation)
    instead; needs "state" in ``methods`` and an env that reports ``info["state"]`` (docs/agents.md, "Distillation
    from a true-state teacher"). "auto" (the embedded quick config's): "state" when ``methods`` holds "state", else
    RL, so that a run without a true-state agent (an env with no ``info["state"]``) still trains its agents."""
    distill_rounds: int = 8
    """DAgger rounds of a distillation (the first follows the teacher); ``gmc-rl train --teacher`` uses it too."""
    distill_steps: int = 5_000
    """Env steps gathered per distillation round, over all ``n_envs`` envs."""
    action_fit_rounds: int = 3
    """Rounds of the action fit run after a GMC agent is trained (gmc_rl.agents.action_fit): the modality encoders
    learn to make the agent act on any subset of sensors as on all of them (the agent and the complete latent stay
    as trained; the fitted encoder is stored in the agent's directory). 0 turns it off."""
    action_fit_steps: int = 3_000
    """Env steps gathered per action-fit round, over all ``n_envs`` envs."""
    action_fit_epochs: int = 3
    """Passes over everything gathered so far, per action-fit round."""
    action_fit_check_episodes: int = 5
    """Episodes per modality of the action fit's closed-loop check: a modality's fitted encoder is put back to the
    original where the agent does worse from that modality alone with it beyond chance (paired 95 % t-interval).
    0: no check."""

    def __post_init__(self) -> None:
        _check_fields(self, "agent")
        valid = ("sac", "td3", "ddpg", "ppo", "a2c", "dqn")
        _require(self.algo in valid, "agent.algo",
                 f"unknown algorithm {self.algo!r}; valid: {list(valid)}.{suggest(self.algo, valid)}")
        _require(self.total_timesteps > 0, "agent.total_timesteps", f"must be positive, got {self.total_timesteps}")
        _check_envs(self.n_envs, "agent.n_envs")
        kinds = ("dummy", "subproc")
        _require(self.vec_env in kinds, "agent.vec_env",
                 f"must be one of {list(kinds)}, got {self.vec_env!r}.{suggest(str(self.vec_env), kinds)}")
        _require(self.eval_freq >= 0, "agent.eval_freq", f"must be >= 0, got {self.eval_freq}")
        _require(self.eval_episodes > 0, "agent.eval_episodes", f"must be positive, got {self.eval_episodes}")
        _require(self.eval_episodes <= MAX_EPISODES, "agent.eval_episodes",
                 f"must be at most {MAX_EPISODES} (MAX_EPISODES), got {self.eval_episodes}")
        _require(self.checkpoint_freq >= 0, "agent.checkpoint_freq", f"must be >= 0, got {self.checkpoint_freq}")
        _require(self.distill_from in DISTILL_TEACHERS, "agent.distill_from",
                 f"must be one of {list(DISTILL_TEACHERS)}, got {self.distill_from!r}")
        for key in ("distill_rounds", "distill_steps", "action_fit_steps", "action_fit_epochs"):
            _require(getattr(self, key) > 0, f"agent.{key}", f"must be positive, got {getattr(self, key)}")
        _require(self.action_fit_rounds >= 0, "agent.action_fit_rounds",
                 f"must be 0 (off) or a positive number of rounds, got {self.action_fit_rounds}")
        _require(self.action_fit_check_episodes >= 0, "agent.action_fit_check_episodes",
                 f"must be 0 (no check) or a positive number of episodes, got {self.action_fit_check_episodes}")
        _require(self.action_fit_check_episodes <= MAX_ENVS, "agent.action_fit_check_episodes",
                 f"must be at most {MAX_ENVS} (MAX_ENVS): the check runs its episodes at once, one env each; got "
                 f"{self.action_fit_check_episodes}")
        # Every observation a distillation or an action fit gathers is kept for the later rounds' refits.
        check_gathered_steps(self.distill_rounds, self.distill_steps, "agent.distill_rounds", "agent.distill_steps")
        check_gathered_steps(self.action_fit_rounds, self.action_fit_steps, "agent.action_fit_rounds",
                             "agent.action_fit_steps")
        check_hyperparams(self.algo, self.hyperparams)
        _require(isinstance(self.method_hyperparams, dict), "agent.method_hyperparams",
                 f"must be a mapping of method names to hyperparameters, got {self.method_hyperparams!r}")
        for method, changes in self.method_hyperparams.items():
            _check_method(method, "agent.method_hyperparams")
            key = f"agent.method_hyperparams.{method}"
            _require(isinstance(changes, dict), key, f"must be a mapping of hyperparameters, got {changes!r}")
            check_hyperparams(self.algo, self.hyperparams_for(method), key)

    def hyperparams_for(self, method: str) -> dict[str, Any]:
        """The hyperparameters of ``method``'s agents: ``hyperparams`` with ``method_hyperparams[method]`` on top."""
        return merge_hyperparams(self.hyperparams, self.method_hyperparams.get(method))


ENCODING_RULES = ("projection", "mean")
"""How a GMC model turns the latents of a modality subset into one (``GMCModel.encoding_rule``): "projection"
(onto the nearest stored complete latents of training data, this project's default) or "mean" (the paper's plain
mean of the present modalities' latents)."""


@dataclass
class EvaluateConfig:
    """Robustness evaluation: every condition x seed x episode, deterministic actions."""

    conditions: list[str] = field(default_factory=list)
    """Conditions to evaluate; empty means complete + every non-empty proper subset of modalities.
    Names: "complete", a modality ("image"), a subset joined by "+" ("image+sound"), "dropout:P" (each modality
    dropped per step with probability P, at least one kept), "noise:MODALITY:SEVERITY" (Gaussian noise),
    "saltpepper:MODALITY:SEVERITY", "stuck:MODALITY"."""
    episodes: int = 100
    """Episodes per condition and seed."""
    n_envs: int = 10
    """Episodes run in parallel (one batched forward pass per step)."""
    video: bool = False
    """Also write an MP4/GIF of one episode per condition."""
    diagnostic_episodes: int = 10
    """Paired episodes of the transfer diagnostics of each GMC agent (latent gap, action gap and closed-loop drift
    on the states the agent visits, for every modality subset evaluated; gmc_rl.transfer); 0 skips them."""
    diagnostic_horizon: int = 100
    """Steps of each paired episode of the diagnostics' closed-loop drift."""
    encoding_rules: list[str] = field(default_factory=list)
    """Single-sensor rules each GMC agent is evaluated with besides its checkpoint's own, on the same agent (no
    retraining), each a table row "<method>-<rule>": "mean" (the paper's plain mean of the present modalities'
    latents) or "projection" (onto the nearest stored complete latents; needs a checkpoint that holds them). The
    complete condition never uses the rule, so the row repeats the agent's own complete episodes."""
    action_limit: float = 0.0
    """0: evaluation actions span the env's full action range. L > 0: every evaluation action is clipped to
    [-L, L] in the env's units (a Box action space only). The GMC authors' pendulum code used its actor's tanh
    output as the torque at evaluation, so their agents were evaluated with torque within +-1 of the env's +-2."""

    def __post_init__(self) -> None:
        _check_fields(self, "evaluate")
        _require(self.episodes > 0, "evaluate.episodes", f"must be positive, got {self.episodes}")
        _require(self.episodes <= MAX_EPISODES, "evaluate.episodes",
                 f"must be at most {MAX_EPISODES} (MAX_EPISODES), got {self.episodes}")
        _check_envs(self.n_envs, "evaluate.n_envs")
        _require(self.diagnostic_episodes >= 0, "evaluate.diagnostic_episodes",
                 f"must be >= 0 (0 skips the diagnostics), got {self.diagnostic_episodes}")
        _require(self.diagnostic_horizon > 0, "evaluate.diagnostic_horizon",
                 f"must be positive, got {self.diagnostic_horizon}")
        for i, rule in enumerate(self.encoding_rules):
            _require(rule in ENCODING_RULES, f"evaluate.encoding_rules[{i}]",
                     f"must be one of {list(ENCODING_RULES)}, got {rule!r}.{suggest(str(rule), ENCODING_RULES)}")
        _require(len(set(self.encoding_rules)) == len(self.encoding_rules), "evaluate.encoding_rules",
                 f"names a rule twice: {self.encoding_rules}")
        _require(self.action_limit >= 0, "evaluate.action_limit",
                 f"must be 0 (the env's full range) or a positive bound, got {self.action_limit}")
        steps = self.diagnostic_episodes * self.diagnostic_horizon
        _require(steps <= MAX_DIAGNOSTIC_STEPS, "evaluate.diagnostic_episodes",
                 f"diagnostic_episodes x diagnostic_horizon = {self.diagnostic_episodes} x {self.diagnostic_horizon} = "
                 f"{steps} must be at most {MAX_DIAGNOSTIC_STEPS} (MAX_DIAGNOSTIC_STEPS)")


@dataclass
class ExperimentConfig:
    """A whole experiment: one environment, the stages' settings, the agent seeds and the methods compared."""

    name: str = "experiment"
    """Name of the experiment (the default run directory is runs/<name>)."""
    env_id: str = "gmc_rl/PendulumSound-v0"
    """Gymnasium id of the multimodal env (Dict observations)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env (``gymnasium.make(env_id, **env_kwargs)``)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of the agents (one agent per method and seed); the dataset and GMC model use their own seeds."""
    methods: list[str] = field(default_factory=lambda: ["gmc"])
    """Methods compared, names from :mod:`gmc_rl.methods`: "gmc" (the GMC latent agent), "raw" (raw Dict
    observations), "mvae" (product-of-experts VAE latents), "muse" (the top latent of a hierarchical multimodal
    VAE), "state" (true state, the upper bound) or a registered one."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        _check_fields(self, "")
        check_plain_name(self.name, "name")
        _require(bool(self.env_id.strip()), "env_id",
                 "must be a registered Gymnasium id such as 'gmc_rl/PendulumSound-v0'")
        _require(bool(self.seeds), "seeds", "must list at least one seed")
        for i, seed in enumerate(self.seeds):
            _check_seed(seed, f"seeds[{i}]")
        _require(len(set(self.seeds)) == len(self.seeds), "seeds", f"lists a seed twice: {self.seeds}")
        _require(bool(self.methods), "methods", f"must list at least one of {method_names()}")
        for method in self.methods:
            _check_method(method, "methods")
        _require(len(set(self.methods)) == len(self.methods), "methods", f"lists a method twice: {self.methods}")
        teacher = self.agent.distill_from
        _require(teacher in ("", "auto") or teacher in self.methods, "agent.distill_from",
                 f"{teacher!r} needs {teacher!r} in methods (the teacher agents), got {self.methods}")

    def distill_teacher(self) -> str:
        """The method whose agents the encoder methods' agents imitate in the pipeline, or "" for RL:
        ``agent.distill_from``, with "auto" read as "state" when ``methods`` holds "state" and as "" otherwise."""
        if self.agent.distill_from == "auto":
            return "state" if "state" in self.methods else ""
        return self.agent.distill_from
