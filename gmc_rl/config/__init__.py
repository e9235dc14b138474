"""Typed configuration of every stage, loaded from YAML with strict validation.

One :class:`ExperimentConfig` describes a whole run (collect -> pretrain -> train -> evaluate). Each stage reads its
own section. The same dataclasses generate the command-line flags (:func:`add_config_arguments`), so every CLI flag
has a config key and every config key has a flag: ``pretrain.batch_size`` is ``--batch-size`` on
``gmc-rl pretrain``, ``pretrain.model.latent_dim`` is ``--latent-dim``, ``env_id`` is ``--env``.

Unknown or mistyped keys raise :class:`~gmc_rl.errors.ConfigError` listing the valid keys; values out of range
(zero epochs, a temperature <= 0, a probability outside [0, 1] ...) raise it naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gmc_rl.errors import ConfigError, suggest
from gmc_rl.methods import get_method, method_names


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config key {key!r}: {message}")


def _check_method(method: str, key: str) -> None:
    """Raise ConfigError naming ``key`` if ``method`` is not a registered representation method."""
    try:
        get_method(method)
    except ConfigError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from None


def _check_fields(config: Any, section: str) -> None:
    """Type-check (and normalise) every field of a config dataclass built directly in Python.

    YAML and flags go through :func:`from_dict`, which checks types already; this gives code that builds
    ``PretrainConfig(epochs="3")`` or passes ``numpy.int64`` the same clear :class:`ConfigError` (or conversion).
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        key = f"{section}.{f.name}" if section else f.name
        annotation = hints[f.name]
        value = getattr(config, f.name)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            if isinstance(value, dict):
                value = from_dict(annotation, value, key)
            _require(isinstance(value, annotation), key,
                     f"must be a {annotation.__name__} (or a mapping of its keys), got {type(value).__name__}")
        else:
            value = _convert(value, annotation, key)
        object.__setattr__(config, f.name, value)


def _check_seed(value: int, key: str) -> None:
    _require(0 <= value < 2**32, key, f"must be an integer in [0, 2**32), got {value}")


MAX_NAME_BYTES = 255
"""Longest name of a directory entry on common file systems (NAME_MAX of ext4, XFS, APFS, NTFS), in UTF-8 bytes."""


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


# --------------------------------------------------------------------------------------------------------------
# Resource limits: sizes that cannot fit are refused with the limit in the message, before anything is allocated.
# (The built-in envs bound their own image sizes and frame stacks: gmc_rl.envs.checks, a lower layer.)

MAX_CONFIG_BYTES = 1 << 20
"""Largest YAML config file read (1 MiB). The shipped experiment configs are 1-3 KB. With anchors and aliases
refused (:func:`load_yaml`), the data parsed from a file grows only in proportion to the file."""

MAX_CONFIG_DEPTH = 20
"""Deepest nesting of mappings and lists in a config (YAML file, JSON flag or Python value). The deepest real
value, ``agent.hyperparams.policy_kwargs.net_arch.pi[0]``, is 6 levels down; the YAML parser, ``json.loads`` and
``copy.deepcopy`` recurse once per level and would stop with a raw RecursionError near 1000."""

MAX_LAYER_WIDTH = 4096
"""Widest network layer: ``pretrain.model`` latent_dim, common_dim, head_hidden, every entry of conv_channels and
mlp_hidden, and every width in an agent's ``policy_kwargs.net_arch`` and ``features_extractor_kwargs`` (``*_dim``).
The GMC paper's widths are 10-128 and SB3's defaults 64-400; one 4096 x 4096 layer is 64 MiB of float32 weights."""

MAX_LAYERS = 16
"""Most hidden layers in one list (conv_channels, mlp_hidden, net_arch), and most critics (``policy_kwargs.n_critics``,
SB3's default 2). Each conv layer halves the image, so a 512 px image has room for 9; the paper uses 2 conv and 2
MLP layers."""

MAX_MODEL_PARAMETERS = 100_000_000
"""Most parameters of a GMC or MVAE model, counted from the modality shapes and the architecture before a layer is
built (:func:`gmc_rl.model.parameter_count`). The paper's pendulum model has 1.9 M. 100 M parameters are 400 MB of
float32 weights and about 1.6 GB with their gradients and Adam's two moments. The first linear layer after the conv
layers grows with the image area, so large images need more conv layers (each one divides it by 4)."""

MAX_ENVS = 256
"""Most environments stepped at once (collect.n_envs, agent.n_envs, evaluate.n_envs): each is a full copy of the
env in this process (an SB3 DummyVecEnv) with its own frame buffers. The shipped configs use 1-20."""

MAX_COLLECT_STEPS = 100_000_000
"""Most transitions in one dataset (collect.steps), checked when the config is read. The shipped configs collect
20,000 (the paper's size). Collection also estimates the dataset's bytes from the env's spaces and refuses it when
it exceeds the memory (:data:`MAX_DATA_BYTES`)."""

MAX_DATA_BYTES = 64 * 2**30
"""Largest in-memory array gmc-rl allocates for data, 64 GiB: a dataset while it is collected (and again when it is
loaded for pretraining), or an agent's replay buffer. The estimate must also fit the machine's memory
(:func:`system_memory`); the cap holds where the memory cannot be read, and keeps a typo from producing files no
machine of this project can load."""

MAX_REFERENCE_LATENTS = 1_000_000
"""Most reference latents a GMC model keeps (``pretrain.reference_latents``, a checkpoint's
``reference_latents.size``)."""

MAX_REFERENCE_BYTES = 2**30
"""Largest array of reference latents, 1 GiB of float32 (count x latent_dim x 4 bytes), checked before it is
allocated. Each bound alone is not enough: 1,000,000 latents of size 4096 (MAX_LAYER_WIDTH) would be 15.3 GiB. The
default 20,000 latents of the paper's size 10 are 0.8 MB; the cap leaves room for 1,000,000 of size 256."""

MAX_PRETRAIN_BATCH = 8192
"""Largest pretrain.batch_size: the contrastive loss builds a (2B x 2B) similarity matrix per modality, 1 GiB of
float32 at B = 8192 (the paper uses 128)."""

MAX_EPISODES = 1_000_000
"""Most evaluation episodes per condition and seed (evaluate.episodes, agent.eval_episodes); each episode's return
and length are kept."""

MAX_DIAGNOSTIC_STEPS = 100_000
"""Most evaluate.diagnostic_episodes x evaluate.diagnostic_horizon: the transfer diagnostics run one env per episode
at once, keep every observation they visit and encode them in one batch (the default is 10 x 100; the pendulum's
observations are 7 KB each)."""

MAX_BUFFER_SIZE = 100_000_000
"""Largest agent.hyperparams.buffer_size (SB3's replay buffer, allocated whole when the agent is built; rl-zoo3
uses at most 1e6). The agent also refuses a buffer whose estimated bytes exceed the machine's memory
(:func:`gmc_rl.agents.registry.check_buffer_memory`)."""

MAX_SB3_BATCH = 1_000_000
"""Largest agent.hyperparams.batch_size and n_steps (SB3's minibatch, and the rows of an on-policy rollout buffer
per env)."""


def system_memory() -> tuple[int | None, int | None]:
    """(total, available) bytes of memory for this process, or None where they cannot be read.

    On Linux, MemTotal and MemAvailable of ``/proc/meminfo``, lowered to a cgroup (container) limit when one is
    set; elsewhere the physical and free pages of ``os.sysconf``.
    """
    total = available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo if line.count(":") == 1}
        total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    except (OSError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total, available = os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            return None, None
    try:  # cgroup v2: the container's limit and what it already uses
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            total = min(total, int(limit)) if total is not None else int(limit)
            free = max(int(limit) - used, 0)
            available = min(available, free) if available is not None else free
    except (OSError, ValueError):
        pass
    return total, available


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, e.g. ``'14.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_reference_latents(count: int, latent_dim: int, key: str) -> None:
    """Raise ConfigError (naming ``key``) unless ``count`` reference latents of size ``latent_dim`` are allowed:
    ``count`` in [0, :data:`MAX_REFERENCE_LATENTS`] and their float32 array within :data:`MAX_REFERENCE_BYTES`.

    Checked for a config before pretraining and for a checkpoint's ``config.json`` before the array is allocated.
    """
    _require(0 <= count <= MAX_REFERENCE_LATENTS, key,
             f"must be in [0, {MAX_REFERENCE_LATENTS}] (0: the paper's mean of the present latents), got {count}")
    needed = count * latent_dim * 4
    _require(needed <= MAX_REFERENCE_BYTES, key,
             f"{count:,} reference latents of size {latent_dim} need {format_bytes(needed)}, more than "
             f"{format_bytes(MAX_REFERENCE_BYTES)} (MAX_REFERENCE_BYTES); keep at most "
             f"{MAX_REFERENCE_BYTES // (4 * latent_dim):,} of size {latent_dim}")


def _check_envs(value: int, key: str) -> None:
    _require(0 < value <= MAX_ENVS, key, f"must be in [1, {MAX_ENVS}] (MAX_ENVS), got {value}")


def space_bytes(space: Any, itemsize: int | None = None) -> int:
    """Bytes of one value of a Gymnasium space (the sum over a ``Dict``'s entries), from its shape and dtype;
    ``itemsize`` replaces the dtype's size (SB3's rollout buffers store every value as float32)."""
    import numpy as np

    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        return sum(space_bytes(entry, itemsize) for entry in space.spaces.values())
    size = itemsize if itemsize is not None else np.dtype(space.dtype or np.int64).itemsize
    return int(np.prod(space.shape, dtype=object)) * size


def check_memory(needed: int, key: str, what: str, fix: str, memory: int | None,
                 memory_name: str = "memory available now", cap: int = MAX_DATA_BYTES) -> None:
    """Raise :class:`ConfigError` naming ``key`` if ``needed`` bytes exceed ``cap`` or ``memory`` (None: unknown).

    ``what`` says what the bytes are for, ``memory_name`` which memory ``memory`` is, ``fix`` how to lower the
    need; the message gives the estimate and both limits.
    """
    limit = cap if memory is None else min(cap, memory)
    if needed > limit:
        known = format_bytes(memory) if memory is not None else "unknown"
        raise ConfigError(
            f"config key {key!r}: {what} needs about {format_bytes(needed)}, more than the limit of "
            f"{format_bytes(limit)} ({memory_name}: {known}; cap MAX_DATA_BYTES: {format_bytes(cap)}); {fix}"
        )


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
        _require(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "pretrain.device",
                 f"must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")


DISTILL_TEACHERS = ("", "state")
"""Values of ``agent.distill_from``: no distillation, or the true-state agent of the same seed as the teacher."""


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
    """"" (the default): every agent learns by RL. "state": in the pipeline, the agents of the methods that read an
    encoder imitate the true-state agent of their seed (DAgger, gmc_rl.agents.distillation) instead; needs "state"
    in ``methods`` and an env that reports ``info["state"]`` (docs/agents.md, "Distillation from a true-state
    teacher")."""
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
        _require(not teacher or teacher in self.methods, "agent.distill_from",
                 f"{teacher!r} needs {teacher!r} in methods (the teacher agents), got {self.methods}")


# --------------------------------------------------------------------------------------------------------------
# Values of the SB3 hyperparameters (agent.hyperparams), checked when the config is built, so that a bad value is
# refused before a run directory or an agent directory is written. Which keys an algorithm takes at all is checked
# against the SB3 constructor by gmc_rl.agents.registry (the core cannot import the agents layer).


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _in_range(low: float, high: float, low_open: bool = False) -> tuple[str, Callable[[Any], bool]]:
    bracket = "(" if low_open else "["
    return (f"a number in {bracket}{low:g}, {high:g}]",
            lambda v: _is_finite(v) and (low < v if low_open else low <= v) and v <= high)


def _integer_in(low: int, high: int | None = None) -> tuple[str, Callable[[Any], bool]]:
    if high is None:
        return f"an integer >= {low}", lambda v: _is_integer(v) and v >= low
    return f"an integer in [{low}, {high}]", lambda v: _is_integer(v) and low <= v <= high


def _schedule(value: Any) -> bool:
    """A positive finite number, or ``"lin_<positive number>"`` (linear decay to 0, see agents.registry)."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            value = float(value[4:])
        except ValueError:
            return False
    return _is_finite(value) and value > 0


def _train_freq(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) == 2 and _is_integer(value[0]) and value[0] >= 1 and value[1] in ("step", "episode")
    return _is_integer(value) and value >= 1


def _sac_ent_coef(value: Any) -> bool:
    if isinstance(value, str):
        if value == "auto":
            return True
        return value.startswith("auto_") and _schedule(_float_or_none(value[5:]))
    return _is_finite(value) and value >= 0


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _net_arch(value: Any) -> bool:
    """Bounded layer widths: a list of widths, or a mapping (pi, vf, qf) of such lists."""
    lists = list(value.values()) if isinstance(value, dict) else [value]
    return all(isinstance(widths, list) and len(widths) <= MAX_LAYERS
               and all(_is_integer(w) and 1 <= w <= MAX_LAYER_WIDTH for w in widths) for widths in lists)


_UNIT = _in_range(0, 1)
_POSITIVE = ("a finite number > 0", lambda v: _is_finite(v) and v > 0)
_NON_NEGATIVE = ("a finite number >= 0", lambda v: _is_finite(v) and v >= 0)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
_SCHEDULE = ("a finite number > 0 or 'lin_<number > 0>' (linear decay to 0)", _schedule)
_NO_CLASS = ("null (classes cannot be named in a config)", lambda v: v is None)
_KWARGS = ("null or a mapping with string keys",
           lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)))

_COMMON: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "learning_rate": _SCHEDULE,
    "gamma": _UNIT,
    "stats_window_size": _integer_in(1, MAX_EPISODES),
}
_OFF_POLICY: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **_COMMON,
    "buffer_size": _integer_in(1, MAX_BUFFER_SIZE),
    "learning_starts": _integer_in(0),
    "batch_size": _integer_in(1, MAX_SB3_BATCH),
    "tau": _in_range(0, 1, low_open=True),
    "train_freq": ("a positive integer, or [positive integer, 'step' or 'episode']", _train_freq),
    "gradient_steps": ("an integer >= 1, or -1 (as many gradient steps as environment steps)",
                       lambda v: _is_integer(v) and (v >= 1 or v == -1)),
    "optimize_memory_usage": _BOOL,
    "n_steps": _integer_in(1, MAX_SB3_BATCH),
    "replay_buffer_class": _NO_CLASS,
    "replay_buffer_kwargs": _KWARGS,
}
_ON_POLICY: dict[str, tuple[str, Callable[[Any], bool]]] = {
    **_COMMON,
    "n_steps": _integer_in(1, MAX_SB3_BATCH),
    "gae_lambda": _UNIT,
    "ent_coef": _NON_NEGATIVE,
    "vf_coef": _NON_NEGATIVE,
    "max_grad_norm": _POSITIVE,
    "normalize_advantage": _BOOL,
    "use_sde": _BOOL,
    "sde_sample_freq": ("an integer >= 1, or -1 (only at the start of each rollout)",
                        lambda v: _is_integer(v) and (v >= 1 or v == -1)),
    "rollout_buffer_class": _NO_CLASS,
    "rollout_buffer_kwargs": _KWARGS,
}
_SDE = {"use_sde": _BOOL, "sde_sample_freq": _ON_POLICY["sde_sample_freq"]}

HYPERPARAM_CHECKS: dict[str, dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "sac": {**_OFF_POLICY, **_SDE,
            "ent_coef": ("a finite number >= 0, 'auto' or 'auto_<number > 0>' (learned, with that start value)",
                         _sac_ent_coef),
            "target_update_interval": _integer_in(1),
            "target_entropy": ("'auto' or a finite number", lambda v: v == "auto" or _is_finite(v)),
            "use_sde_at_warmup": _BOOL},
    "td3": {**_OFF_POLICY, "policy_delay": _integer_in(1), "target_policy_noise": _NON_NEGATIVE,
            "target_noise_clip": _NON_NEGATIVE},
    "ddpg": {**_OFF_POLICY, "actor_learning_rate": _SCHEDULE},  # gmc_rl.agents.ddpg.DDPG: the actor's own rate
    "dqn": {**_OFF_POLICY, "target_update_interval": _integer_in(1), "exploration_fraction": _UNIT,
            "exploration_initial_eps": _UNIT, "exploration_final_eps": _UNIT, "max_grad_norm": _POSITIVE},
    "ppo": {**_ON_POLICY, "batch_size": _integer_in(2, MAX_SB3_BATCH), "n_epochs": _integer_in(1),
            "clip_range": _SCHEDULE,
            "clip_range_vf": ("null, a finite number > 0 or 'lin_<number > 0>'", lambda v: v is None or _schedule(v)),
            "target_kl": ("null or a finite number > 0", lambda v: v is None or (_is_finite(v) and v > 0))},
    "a2c": {**_ON_POLICY, "rms_prop_eps": _POSITIVE, "use_rms_prop": _BOOL},
}
"""Algorithm -> hyperparameter -> (what is allowed, check) for the values of ``agent.hyperparams``.

Ranges follow SB3's documented meaning (``gamma`` and ``gae_lambda`` are discount factors in [0, 1], ``tau`` a
soft-update fraction in (0, 1], sizes positive, ``learning_starts`` may be 0, ``gradient_steps=-1`` is SB3's
"as many as environment steps") and the limits above for sizes that allocate (buffer, batch, rollout, widths).
``policy_kwargs.net_arch`` widths are bounded by :func:`check_hyperparams`; ``policy``, the rest of
``policy_kwargs`` and ``action_noise`` are checked and converted by gmc_rl.agents.registry."""


def check_hyperparams(algo: str, hyperparams: Any, key: str = "agent.hyperparams") -> None:
    """Raise :class:`ConfigError` naming the key, the value and what is allowed for the first bad value.

    Keys that :data:`HYPERPARAM_CHECKS` does not list for ``algo`` are left to
    :func:`gmc_rl.agents.registry.resolve_hyperparams`, which refuses those the SB3 constructor does not take.
    """
    _require(isinstance(hyperparams, dict), key, f"must be a mapping, got {type(hyperparams).__name__}")
    checks = HYPERPARAM_CHECKS.get(algo, {})
    for name, value in hyperparams.items():
        if name in checks:
            allowed, valid = checks[name]
            _require(valid(value), f"{key}.{name}", f"must be {allowed} for {algo}, got {value!r}")
    policy_kwargs = hyperparams.get("policy_kwargs")
    if not isinstance(policy_kwargs, dict):
        return  # agents.registry refuses anything but a mapping
    if "net_arch" in policy_kwargs:
        _require(_net_arch(policy_kwargs["net_arch"]), f"{key}.policy_kwargs.net_arch",
                 f"must be a list of at most {MAX_LAYERS} widths (MAX_LAYERS), each an integer in "
                 f"[1, {MAX_LAYER_WIDTH}] (MAX_LAYER_WIDTH), or a mapping such as {{pi: [...], qf: [...]}} of such "
                 f"lists, got {policy_kwargs['net_arch']!r}")
    if "n_critics" in policy_kwargs:  # sac, td3, ddpg: one Q network each
        allowed, valid = _integer_in(1, MAX_LAYERS)
        _require(valid(policy_kwargs["n_critics"]), f"{key}.policy_kwargs.n_critics",
                 f"must be {allowed} (MAX_LAYERS), got {policy_kwargs['n_critics']!r}")
    extractor = policy_kwargs.get("features_extractor_kwargs")
    for name, value in (extractor.items() if isinstance(extractor, dict) else []):
        if name.endswith("_dim"):  # features_dim, cnn_output_dim: the width of a linear layer
            allowed, valid = _integer_in(1, MAX_LAYER_WIDTH)
            _require(valid(value), f"{key}.policy_kwargs.features_extractor_kwargs.{name}",
                     f"must be {allowed} (MAX_LAYER_WIDTH), got {value!r}")


# --------------------------------------------------------------------------------------------------------------
# Conversion between dicts (YAML/JSON) and the dataclasses, with strict checking.

def _describe(key: str) -> str:
    return key or "<top level>"


def _depth(value: Any) -> int:
    """Nesting depth of mappings and lists in ``value`` (1 for a flat mapping), counted without recursion and
    stopping once past :data:`MAX_CONFIG_DEPTH`."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_CONFIG_DEPTH:
        item, level = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, key)
    if annotation is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        _require(isinstance(value, numbers.Integral) and not isinstance(value, bool), key,
                 f"must be an integer, got {value!r}")
        return int(value)
    if annotation is float:
        _require(isinstance(value, numbers.Real) and not isinstance(value, bool), key,
                 f"must be a number, got {value!r}")
        _require(math.isfinite(float(value)), key, f"must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        _require(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if origin is list:
        _require(isinstance(value, (list, tuple)), key, f"must be a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        _require(isinstance(value, dict), key, f"must be a mapping, got {value!r}")
        _require(all(isinstance(k, str) for k in value), key, f"must be a mapping with string keys, got {value!r}")
        _require(_depth(value) <= MAX_CONFIG_DEPTH, key,
                 f"is nested deeper than {MAX_CONFIG_DEPTH} levels (MAX_CONFIG_DEPTH)")
        return copy.deepcopy(dict(value))
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")  # pragma: no cover


KEYS_ADDED_LATER: dict[str, Any] = {"pretrain.modality_fit_epochs": 0, "agent.action_fit_rounds": 0}
"""Keys added with a default that changes what a run does, each with the value a config written before it existed
meant: a run's own stored config that lacks the key was made that way (:func:`stored_config`)."""


def stored_config(data: Any) -> ExperimentConfig:
    """The experiment config that gmc-rl stored for a run (a pretraining ``run.json``, a pipeline run's
    ``config.yaml``, an ``agent.json``), read as :func:`from_dict` does, except that a key of
    :data:`KEYS_ADDED_LATER` missing from it takes the value that reproduces the run (a user's own config file
    without the key gets the default instead). So a run made before the key existed resumes, reloads and stays
    finished as it was made."""
    if isinstance(data, dict):
        data = copy.deepcopy(data)
        for key, value in KEYS_ADDED_LATER.items():
            section, name = key.split(".")
            if isinstance(data.get(section), dict):
                data[section].setdefault(name, value)
    return from_dict(ExperimentConfig, data)


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys and mistyped values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {_describe(prefix)!r} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(
                f"unknown config key {full!r}; valid keys in {_describe(prefix)!r} are {names}."
                f"{suggest(str(key), names)}"
            )
    kwargs = {}
    for name in names:
        if name in data:
            full = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _convert(data[name], hints[name], full)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (JSON/YAML-serialisable) form of a config dataclass."""
    return dataclasses.asdict(config)


def collect_identity(collect: CollectConfig) -> dict[str, Any]:
    """The collect settings that decide a dataset's content, as a plain dict.

    The ``focus_*`` keys are left out while ``focus_fraction`` is 0 (they change nothing then), so datasets and
    pipeline runs made before those keys existed keep their identity.
    """
    data = to_dict(collect)
    if collect.focus_fraction == 0.0:
        for key in ("focus_fraction", "focus_reset_options", "focus_episode_steps"):
            data.pop(key)
    return data


def pretrain_identity(pretrain: PretrainConfig, method: str) -> dict[str, Any]:
    """The pretrain settings that decide the weights of a ``method`` encoder, as a plain dict.

    ``muse`` is read by the MUSE baseline only: it is left out for every other method (a change there leaves GMC
    and MVAE encoders up to date), and for ``"muse"`` it is kept only when it differs from the defaults, so MUSE
    runs made before the section existed (with the defaults) keep their identity.
    """
    data = to_dict(pretrain)
    muse = data.pop("muse")
    for term in ("temporal_weight", "frame_order_weight", "modality_fit_epochs"):  # runs made before these existed
        if method != "gmc" or not data[term]:  # keep their identity
            data.pop(term)
    if method == "muse" and pretrain.muse != MUSEConfig():
        data["muse"] = muse
    return data


def merge_hyperparams(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` with ``changes`` on top; ``policy_kwargs`` (a mapping in both) is merged key by key.

    >>> merge_hyperparams({"gamma": 0.99, "policy_kwargs": {"net_arch": [64]}},
    ...                   {"policy_kwargs": {"share_features_extractor": True}})
    {'gamma': 0.99, 'policy_kwargs': {'net_arch': [64], 'share_features_extractor': True}}
    """
    merged = dict(base)
    for key, value in (changes or {}).items():
        if key == "policy_kwargs" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


ACTION_FIT_KEYS = ("action_fit_rounds", "action_fit_steps", "action_fit_epochs", "action_fit_check_episodes")
"""The agent keys of the action fit (gmc_rl.agents.action_fit)."""


def agent_identity(agent: AgentConfig, method: str) -> dict[str, Any]:
    """What a ``method`` agent is trained from: the agent section with that method's hyperparameters merged in.

    ``method_hyperparams`` itself is left out, so a change for one method leaves every other method's agents (and
    agents trained before the key existed) up to date; so is ``vec_env``, which does not change the agent, and so
    are the ``distill_*`` keys, which only the distilled agents' identity holds (gmc_rl.pipeline), and the
    ``action_fit_*`` keys, which the action-fit stage's identity holds.
    """
    data = to_dict(agent)
    data.pop("method_hyperparams")
    data.pop("vec_env")  # how the envs run changes the speed, not the agent: runs made before the key stay up to date
    data["hyperparams"] = agent.hyperparams_for(method)
    for key in ("distill_from", "distill_rounds", "distill_steps"):
        data.pop(key)  # the pipeline adds them to the identity of the agents it distils only
    for key in ACTION_FIT_KEYS:
        data.pop(key)  # the action fit is a stage of its own after training (gmc_rl.pipeline)
    return data


def config_hash(config: Any) -> str:
    """A short stable hash of a config, used to tell whether an output directory was made with the same one."""
    import hashlib

    text = json.dumps(to_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config may not use (raised by :class:`StrictLoader`, reported with its line)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags), stricter where a config must be small and unambiguous.

    Refused, with the line and column:

    - anchors and aliases (``&name`` / ``*name``): nested aliases expand exponentially, so a 500-byte file can
      become gigabytes of data (and a config is short enough to write out);
    - merge keys (``<<``), which need aliases to be of use;
    - duplicate keys in one mapping, which PyYAML resolves silently by keeping the last;
    - keys that are not strings (``1:``, ``null:``, and ``on:`` / ``yes:``, which YAML 1.1 reads as true):
      every key of a config names a setting or a keyword argument;
    - nesting deeper than :data:`MAX_CONFIG_DEPTH` (the composer recurses once per level).
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="anchors and aliases (&name, *name) are not allowed in a config; write the "
                                   "values out", problem_mark=event.start_mark)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_CONFIG_DEPTH} levels (MAX_CONFIG_DEPTH)",
                           problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(problem="merge keys (<<) are not allowed in a config; write the keys out",
                               problem_mark=key_node.start_mark)
            key = self.construct_object(key_node, deep=True)  # deep: a list key is shown with its items
            if not isinstance(key, str):
                hint = " (YAML reads on, off, yes and no as booleans)" if isinstance(key, bool) else ""
                raise _Refused(problem=f"keys must be strings, got {key!r} ({type(key).__name__}); quote it{hint}",
                               problem_mark=key_node.start_mark)
            if key in seen:
                raise _Refused(problem=f"duplicate key {key!r} in one mapping (YAML would keep only the last)",
                               problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _kind_of_file(mode: int) -> str:
    import stat

    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _read_regular_file(path: Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; anything else (a directory, a FIFO or a process
    substitution such as ``<(cat x)``, ``/dev/zero``, a socket) is refused by what it is, without blocking on it or
    reading it endlessly: the file is opened non-blocking and checked with ``fstat`` on the opened descriptor, so a
    file swapped for a FIFO after a check cannot make the read hang."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        fd = -1
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise PermissionError(f"{what} {path} is not readable: {exc.strerror}") from None
        raise ConfigError(f"{what} {path} cannot be opened: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode if fd >= 0 else stat.S_IFDIR
        if not stat.S_ISREG(mode):
            hint = "; pass a YAML file such as experiments/quick.yaml" if stat.S_ISDIR(mode) else \
                "; pass a YAML file (write the stream to a file first)"
            raise ConfigError(f"{what} {path} is {_kind_of_file(mode)}, not a regular file{hint}")
        with os.fdopen(fd, "rb") as stream:
            fd = -1  # closed by the stream
            return stream.read(limit)
    finally:
        if fd >= 0:
            os.close(fd)


def load_yaml(path: str | os.PathLike, what: str = "config file") -> Any:
    """Parse the YAML file ``path`` with :class:`StrictLoader`; raise :class:`ConfigError` for anything wrong.

    Files over :data:`MAX_CONFIG_BYTES` are refused before they are parsed. Used for experiment configs and for
    the ``config.yaml`` of pipeline run directories; ``what`` names the file in the messages.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: a directory, a FIFO, a device or anything else that is not a regular file, a file that is too
            large, not UTF-8, not valid YAML, refused by
            :class:`StrictLoader` (the message gives the line), or holding no document (empty, whitespace or
            comments only: not a config).
    """
    path = Path(path)
    raw = _read_regular_file(path, what, MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_CONFIG_BYTES} bytes (MAX_CONFIG_BYTES); "
                          "an experiment config is a few KB")
    try:
        # What yaml.load(text, Loader=StrictLoader) does; whitespace alone (tabs too, which YAML calls invalid)
        # parses as the empty file it is.
        loader = StrictLoader(raw.decode("utf-8") if raw.strip() else "")
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        mark = exc.problem_mark
        raise ConfigError(f"{what} {path}, line {mark.line + 1}, column {mark.column + 1}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:  # one line: where, and what the parser expected
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {detail}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc}); pass a YAML file") from exc
    if data is None:  # what YAML makes of an empty file, whitespace, comments only, or a bare '---' / 'null'
        raise ConfigError(f"{what} {path} holds no config: it is empty or has only whitespace, comments or a null "
                          "document; write its keys (see experiments/quick.yaml), or leave out the option to use "
                          "the defaults")
    return data


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from a YAML file (:func:`load_yaml`; unknown keys are errors)."""
    path = Path(path)
    data = load_yaml(path)
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------------------------------------------
# Checks that need more than the config itself (the env registry, the size of a dataset).

def registered_env_ids(prefix: str = "gmc_rl/") -> list[str]:
    """Sorted Gymnasium ids starting with ``prefix`` (``import gmc_rl`` registered the built-in ``gmc_rl/`` ids)."""
    import gymnasium as gym

    return sorted(name for name in gym.registry if name.startswith(prefix))


_MAKE_KWARGS = ("max_episode_steps", "disable_env_checker", "render_mode")
"""Keyword arguments ``gymnasium.make`` accepts for every env."""


def check_env_kwargs(env_id: str, env_kwargs: Any, key: str = "env_kwargs") -> None:
    """Raise :class:`ConfigError` if ``env_kwargs`` has a key the env's constructor does not take (listing those it
    takes).

    Envs whose constructor takes ``**kwargs`` (or whose entry point cannot be inspected) accept anything here.
    """
    import inspect

    import gymnasium as gym
    from gymnasium.envs.registration import load_env_creator

    if env_kwargs is None:
        return
    if not isinstance(env_kwargs, dict) or not all(isinstance(k, str) for k in env_kwargs):
        raise ConfigError(f"config key {key!r}: must be a mapping of keyword arguments, got {env_kwargs!r}")
    name = env_id.partition(":")[2] if ":" in env_id else env_id
    try:
        entry = gym.spec(name).entry_point
        if entry is None:  # nothing to inspect: gymnasium.make will report it
            return
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        parameters = inspect.signature(creator).parameters.values()
    except Exception:  # an entry point that cannot be loaded or inspected: gymnasium.make will report it
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    valid = sorted({p.name for p in parameters if p.name != "self"} | set(_MAKE_KWARGS))
    unknown = [k for k in env_kwargs if k not in valid]
    if unknown:
        raise ConfigError(
            f"config key {key!r}: {env_id!r} takes no keyword argument {unknown[0]!r}; valid: {valid}."
            f"{suggest(unknown[0], valid)}"
        )


def check_batch_size(batch_size: int, n_samples: int, key: str, source: str) -> None:
    """Raise :class:`ConfigError` if ``batch_size`` (config key ``key``) exceeds the ``n_samples`` of ``source``.

    A larger batch would silently shrink to the whole dataset, which changes what the contrastive loss compares
    (fewer negatives than configured); asking for a smaller batch or more data is the honest fix.
    """
    if n_samples < batch_size:
        raise ConfigError(
            f"config key {key!r}: batch size {batch_size} is larger than the {n_samples} samples of {source}; "
            f"lower {key} to at most {n_samples} or collect more data (collect.steps)"
        )


def default_config_path() -> Path:
    """Path of the embedded default (quick) config shipped with the package."""
    return Path(str(resources.files("gmc_rl.experiments") / "quick.yaml"))
