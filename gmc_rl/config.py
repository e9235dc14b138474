"""Typed configuration of every stage, loaded from YAML with strict validation.

One :class:`ExperimentConfig` describes a whole run (collect -> pretrain -> train -> evaluate). Each stage reads its
own section. The same dataclasses generate the command-line flags (:func:`add_config_arguments`), so every CLI flag
has a config key and every config key has a flag: ``pretrain.batch_size`` is ``--batch-size`` on
``gmc-rl pretrain``, ``pretrain.model.latent_dim`` is ``--latent-dim``, ``env_id`` is ``--env``.

Unknown or mistyped keys raise :class:`~gmc_rl.errors.ConfigError` listing the valid keys; values out of range
(zero epochs, a temperature <= 0, a probability outside [0, 1] ...) raise it naming the key.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import numbers
import os
import typing
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
        if dataclasses.is_dataclass(annotation):
            if isinstance(value, dict):
                value = from_dict(annotation, value, key)
            _require(isinstance(value, annotation), key,
                     f"must be a {annotation.__name__} (or a mapping of its keys), got {type(value).__name__}")
        else:
            value = _convert(value, annotation, key)
        object.__setattr__(config, f.name, value)


def _check_seed(value: int, key: str) -> None:
    _require(0 <= value < 2**32, key, f"must be an integer in [0, 2**32), got {value}")


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
        _require(0.0 < self.val_fraction < 1.0, "collect.val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        _require(self.n_envs > 0, "collect.n_envs", f"must be positive, got {self.n_envs}")
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
        _require(len(self.conv_channels) > 0 and all(c > 0 for c in self.conv_channels),
                 "pretrain.model.conv_channels", f"must be a non-empty list of positive ints, got {self.conv_channels}")
        _require(all(h > 0 for h in self.mlp_hidden),
                 "pretrain.model.mlp_hidden", f"must be a list of positive ints, got {self.mlp_hidden}")
        valid = ("silu", "relu", "tanh", "elu")
        _require(self.activation in valid, "pretrain.model.activation",
                 f"unknown activation {self.activation!r}; valid: {list(valid)}.{suggest(self.activation, valid)}")


@dataclass
class PretrainConfig:
    """GMC pretraining (Adam on the GMC loss). Paper values for the pendulum: lr 1e-3, batch 128, tau 0.3."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    temperature: float = 0.3
    loss: str = "gmc"
    """"gmc" (the paper's loss) or "joints_as_negatives" (the ablation with only complete latents as negatives)."""
    checkpoint_every: int = 5
    """Save a resumable checkpoint every this many epochs (the last and the best are always kept)."""
    seed: int = 0
    device: str = "auto"
    """"auto" (CUDA when available), "cpu" or "cuda"."""
    reference_latents: int = 20_000
    """Complete latents of training observations (at most this many, drawn with the seed) kept in the checkpoint:
    the latent of a modality subset is then projected onto its nearest ones (GMCModel.set_reference_latents), so a
    controller trained on complete latents is never fed a point off their manifold. 0 keeps the paper's rule,
    the plain mean of the present modalities' latents."""
    reference_neighbours: int = 5
    """How many nearest reference latents (cosine) a partial latent is replaced by the normalised mean of."""
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        _check_fields(self, "pretrain")
        _require(self.epochs > 0, "pretrain.epochs", f"must be positive, got {self.epochs}")
        _require(self.batch_size > 1, "pretrain.batch_size", f"must be at least 2 (contrastive negatives), got {self.batch_size}")
        _require(self.lr > 0, "pretrain.lr", f"must be positive, got {self.lr}")
        _require(self.temperature > 0, "pretrain.temperature", f"must be positive, got {self.temperature}")
        valid = ("gmc", "joints_as_negatives")
        _require(self.loss in valid, "pretrain.loss", f"unknown loss {self.loss!r}; valid: {list(valid)}.{suggest(self.loss, valid)}")
        _require(self.checkpoint_every > 0, "pretrain.checkpoint_every", f"must be positive, got {self.checkpoint_every}")
        _check_seed(self.seed, "pretrain.seed")
        _require(0 <= self.reference_latents <= 1_000_000, "pretrain.reference_latents",
                 f"must be in [0, 1000000] (0: the paper's mean of the present latents), got {self.reference_latents}")
        _require(self.reference_neighbours >= 1, "pretrain.reference_neighbours",
                 f"must be at least 1, got {self.reference_neighbours}")
        _require(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "pretrain.device",
                 f"must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")


@dataclass
class AgentConfig:
    """SB3 controller trained on complete observations."""

    algo: str = "sac"
    """SB3 algorithm: sac, td3, ddpg, ppo, a2c or dqn (dqn needs a discrete action space)."""
    total_timesteps: int = 30_000
    n_envs: int = 1
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm's constructor (rl-zoo3 style), e.g. learning_rate, policy_kwargs."""
    eval_freq: int = 5_000
    """Evaluate (EvalCallback) every this many environment steps; 0 disables."""
    eval_episodes: int = 5
    checkpoint_freq: int = 10_000
    """Save a resumable checkpoint (model + replay buffer) every this many steps; 0 disables."""
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_fields(self, "agent")
        valid = ("sac", "td3", "ddpg", "ppo", "a2c", "dqn")
        _require(self.algo in valid, "agent.algo", f"unknown algorithm {self.algo!r}; valid: {list(valid)}.{suggest(self.algo, valid)}")
        _require(self.total_timesteps > 0, "agent.total_timesteps", f"must be positive, got {self.total_timesteps}")
        _require(self.n_envs > 0, "agent.n_envs", f"must be positive, got {self.n_envs}")
        _require(self.eval_freq >= 0, "agent.eval_freq", f"must be >= 0, got {self.eval_freq}")
        _require(self.eval_episodes > 0, "agent.eval_episodes", f"must be positive, got {self.eval_episodes}")
        _require(self.checkpoint_freq >= 0, "agent.checkpoint_freq", f"must be >= 0, got {self.checkpoint_freq}")


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

    def __post_init__(self) -> None:
        _check_fields(self, "evaluate")
        _require(self.episodes > 0, "evaluate.episodes", f"must be positive, got {self.episodes}")
        _require(self.n_envs > 0, "evaluate.n_envs", f"must be positive, got {self.n_envs}")
        _require(self.diagnostic_episodes >= 0, "evaluate.diagnostic_episodes",
                 f"must be >= 0 (0 skips the diagnostics), got {self.diagnostic_episodes}")
        _require(self.diagnostic_horizon > 0, "evaluate.diagnostic_horizon",
                 f"must be positive, got {self.diagnostic_horizon}")


@dataclass
class ExperimentConfig:
    """A whole experiment: one environment, the stages' settings, the agent seeds and the methods compared."""

    name: str = "experiment"
    env_id: str = "gmc_rl/PendulumSound-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of the agents (one agent per method and seed); the dataset and GMC model use their own seeds."""
    methods: list[str] = field(default_factory=lambda: ["gmc"])
    """Methods compared, names from :mod:`gmc_rl.methods`: "gmc" (the GMC latent agent), "raw" (raw Dict
    observations), "mvae" (product-of-experts VAE latents), "state" (true state, the upper bound) or a registered
    one."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        _check_fields(self, "")
        _require(bool(self.name.strip()), "name", "must be a non-empty string (it names the run directory)")
        _require(bool(self.env_id.strip()), "env_id", "must be a registered Gymnasium id such as 'gmc_rl/PendulumSound-v0'")
        _require(bool(self.seeds), "seeds", "must list at least one seed")
        for i, seed in enumerate(self.seeds):
            _check_seed(seed, f"seeds[{i}]")
        _require(len(set(self.seeds)) == len(self.seeds), "seeds", f"lists a seed twice: {self.seeds}")
        _require(bool(self.methods), "methods", f"must list at least one of {method_names()}")
        for method in self.methods:
            try:
                get_method(method)
            except ConfigError as exc:
                raise ConfigError(f"config key 'methods': {exc}") from None
        _require(len(set(self.methods)) == len(self.methods), "methods", f"lists a method twice: {self.methods}")


# --------------------------------------------------------------------------------------------------------------
# Conversion between dicts (YAML/JSON) and the dataclasses, with strict checking.

_FLAG_NAMES = {"env_id": "env"}
"""Fields whose command-line flag differs from the field name."""


def _describe(key: str) -> str:
    return key or "<top level>"


def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, key)
    if annotation is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        _require(isinstance(value, numbers.Integral) and not isinstance(value, bool), key,
                 f"must be an integer, got {value!r}")
        return int(value)
    if annotation is float:
        _require(isinstance(value, numbers.Real) and not isinstance(value, bool), key, f"must be a number, got {value!r}")
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
        return copy.deepcopy(dict(value))
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")  # pragma: no cover


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
                f"unknown config key {full!r}; valid keys in {_describe(prefix)!r} are {names}.{suggest(str(key), names)}"
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


def config_hash(config: Any) -> str:
    """A short stable hash of a config, used to tell whether an output directory was made with the same one."""
    import hashlib

    text = json.dumps(to_dict(config) if dataclasses.is_dataclass(config) else config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from a YAML file (safe loader; unknown keys are errors)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config path {path} is a directory; pass a YAML file such as experiments/quick.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc}); pass a YAML file") from exc
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


def check_env_id(env_id: str, key: str = "env_id", env_kwargs: dict[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` unless Gymnasium can make ``env_id``; the message lists the ``gmc_rl/`` ids.

    Ids of the form ``"module:Name-v0"`` (Gymnasium's syntax for "import module, then make Name-v0") are
    accepted when the module imports and registers the name. ``env_kwargs``, if given, are checked by
    :func:`check_env_kwargs`.
    """
    import importlib

    import gymnasium as gym

    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"config key {key!r}: must be a registered Gymnasium id (a string), got {env_id!r}")
    ours = registered_env_ids()
    name = env_id
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"config key {key!r}: cannot import module {module!r} of env id {env_id!r}: {exc}") from exc
    if name not in gym.registry:
        raise ConfigError(
            f"config key {key!r}: environment id {env_id!r} is not registered; registered gmc_rl ids: {ours}."
            f"{suggest(name, list(gym.registry))}"
        )
    check_env_kwargs(env_id, env_kwargs)


_MAKE_KWARGS = ("max_episode_steps", "disable_env_checker", "render_mode")
"""Keyword arguments ``gymnasium.make`` accepts for every env."""


def check_env_kwargs(env_id: str, env_kwargs: Any, key: str = "env_kwargs") -> None:
    """Raise :class:`ConfigError` if ``env_kwargs`` has a key the env's constructor does not take (listing those it takes).

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


# --------------------------------------------------------------------------------------------------------------
# Command-line flags generated from the dataclasses.


def _flag_fields(cls: type, recurse: bool, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, annotation) of every leaf field of ``cls``; nested dataclasses flattened if ``recurse``, else skipped."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        if dataclasses.is_dataclass(annotation):
            if recurse:
                out.extend(_flag_fields(annotation, True, path + (f.name,)))
        else:
            out.append((path + (f.name,), annotation))
    return out


def _parse_flag_value(text: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        return lowered in ("true", "1", "yes")
    if annotation is int:
        return int(text)
    if annotation is float:
        return float(text)
    if origin is dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}") from exc
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
        return value
    return text


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, section: str | None = None) -> None:
    """Add one ``--flag`` per leaf field of ``cls`` (a config section); ``section`` is its key in the experiment.

    Flags default to "not given", so that only what the user typed overrides the YAML config. With ``section``
    None, ``cls`` is :class:`ExperimentConfig` and only its own top-level keys get flags (not the stage sections).
    """
    group = parser.add_argument_group(f"{section or 'experiment'} settings (config keys{' under ' + section if section else ''})")
    for path, annotation in _flag_fields(cls, recurse=section is not None):
        leaf = path[-1]
        flag = "--" + _FLAG_NAMES.get(leaf, leaf).replace("_", "-")
        key = ".".join(((section,) if section else ()) + path)
        dest = "cfg__" + key.replace(".", "__")
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": f"config key {key}"}
        if typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            kwargs.update(nargs="*", type=lambda t, a=item: _parse_flag_value(t, a), metavar=leaf.upper())
        else:
            kwargs.update(type=lambda t, a=annotation: _parse_flag_value(t, a), metavar=leaf.upper())
        group.add_argument(flag, **kwargs)


def apply_arguments(config: ExperimentConfig, args: argparse.Namespace) -> ExperimentConfig:
    """Return a copy of ``config`` with the flags the user gave (see :func:`add_config_arguments`) applied."""
    data = to_dict(config)
    for dest, value in vars(args).items():
        if not dest.startswith("cfg__"):
            continue
        keys = dest[len("cfg__"):].split("__")
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return from_dict(ExperimentConfig, data)
