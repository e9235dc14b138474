"""SB3 algorithms by name, built from rl-zoo3-style hyperparameters.

:func:`build_algorithm` turns a plain mapping (a section of an experiment YAML) into an SB3 algorithm:

- ``policy`` is chosen from the observation space (``MlpPolicy`` for a ``Box``, ``MultiInputPolicy`` for a
  ``Dict``) unless the hyperparameters name one; a ``Dict`` with images smaller than NatureCNN's 36x36 gets
  :class:`gmc_rl.agents.extractors.MultimodalExtractor`;
- ``policy_kwargs.activation_fn`` may be a name (``relu``, ``tanh``, ``silu``, ``elu``, ``leaky_relu``), and
  ``policy_kwargs.features_extractor_class`` the name ``multimodal`` (with ``features_extractor_kwargs: {cnn:
  compact}`` for the cheaper CNN of :mod:`gmc_rl.agents.extractors`);
- ``action_noise`` (td3, ddpg, sac) is a mapping such as ``{type: ornstein_uhlenbeck, sigma: 0.2}``, turned into
  the SB3 noise object (optionally decaying, see :class:`DecayingActionNoise`, or annealed as the GMC authors'
  controller, see :class:`gmc_rl.agents.noise.AnnealedOrnsteinUhlenbeckNoise`);
- ``learning_rate`` (and ddpg's ``actor_learning_rate``) may be ``"lin_<value>"`` (linear decay to 0, as in
  rl-zoo3);
- ``train_freq`` may be a list ``[1, "episode"]``.

Keys that are not arguments of the algorithm's constructor are refused with the list of valid ones; the values
of known keys are checked against :data:`gmc_rl.config.HYPERPARAM_CHECKS` (``gamma`` in [0, 1], positive sizes,
...), and the replay or rollout buffer's size against the machine's memory (:func:`check_buffer_memory`), all
before SB3 allocates anything. The action space is checked against the algorithm (``dqn`` only for ``Discrete``;
``sac``, ``td3`` and ``ddpg`` only for ``Box``). Nothing is ever evaluated from a string.

Example:
    >>> import gymnasium as gym
    >>> from gmc_rl.agents import build_algorithm
    >>> model = build_algorithm("sac", gym.make("Pendulum-v1"), {"policy_kwargs": {"net_arch": [64, 64]}},
    ...                         seed=0, tensorboard_log=None, device="cpu")
    >>> type(model).__name__
    'SAC'
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from gmc_rl.agents.ddpg import DDPG
from gmc_rl.agents.extractors import CNNS, MultimodalExtractor, needs_small_cnn
from gmc_rl.agents.noise import AnnealedOrnsteinUhlenbeckNoise
from gmc_rl.config import (
    MAX_DATA_BYTES,
    OFF_POLICY,
    check_hyperparams,
    check_memory,
    format_bytes,
    space_bytes,
    system_memory,
)
from gmc_rl.errors import ConfigError, suggest

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
}
"""Algorithm name (as in ``agent.algo``) -> SB3 class (``ddpg``: SB3's DDPG with an optional ``actor_learning_rate``,
:class:`gmc_rl.agents.ddpg.DDPG`)."""

CONTINUOUS_ONLY = ("sac", "td3", "ddpg")
DISCRETE_ONLY = ("dqn",)
# OFF_POLICY, the algorithms with a replay buffer, is gmc_rl.config.OFF_POLICY (beside the hyperparameter checks).

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
}

POLICIES = ("MlpPolicy", "MultiInputPolicy", "CnnPolicy")

EXTRACTORS: dict[str, type[BaseFeaturesExtractor]] = {"multimodal": MultimodalExtractor}
"""Feature extractors ``policy_kwargs.features_extractor_class`` may name (a name, never a Python path)."""

_SET_ELSEWHERE = {
    "env": "the environment is built from env_id",
    "seed": "use the agent seed (--seed / seeds)",
    "tensorboard_log": "TensorBoard logs go to the agent directory's tb/",
    "device": "use agent.device (--device)",
    "verbose": "verbosity is set by the caller",
    "n_timesteps": "use agent.total_timesteps (--total-timesteps)",
    "n_envs": "use agent.n_envs (--n-envs)",
    "normalize": "observation normalisation is not supported (latents are already bounded)",
    "frame_stack": "frame stacking is done by the environment",
    "env_wrapper": "wrappers are chosen by the method",
    "callback": "callbacks are set by train_agent",
}
"""rl-zoo3 keys (and constructor arguments) that are not hyperparameters here, with where they belong."""


class DecayingActionNoise(ActionNoise):
    """Exploration noise whose scale decays linearly from 1 to ``final_scale`` over ``decay_steps`` calls.

    The GMC paper's DDPG controller used Ornstein-Uhlenbeck noise with a decaying sigma; SB3 has no such
    schedule, so this wraps any SB3 noise and multiplies its output by the current scale.
    """

    def __init__(self, base: ActionNoise, decay_steps: int, final_scale: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.decay_steps = int(decay_steps)
        self.final_scale = float(final_scale)
        self.calls = 0

    @property
    def scale(self) -> float:
        """Current multiplier of the base noise."""
        fraction = min(self.calls / max(self.decay_steps, 1), 1.0)
        return 1.0 + fraction * (self.final_scale - 1.0)

    def __call__(self) -> np.ndarray:
        value = self.base() * self.scale
        self.calls += 1
        return value

    def reset(self) -> None:
        self.base.reset()

    def __repr__(self) -> str:
        return f"DecayingActionNoise({self.base!r}, decay_steps={self.decay_steps}, final_scale={self.final_scale})"


def make_action_noise(spec: Any, action_space: spaces.Space) -> ActionNoise | None:
    """Turn an ``action_noise`` config mapping into an SB3 :class:`ActionNoise` for ``action_space``.

    Keys: ``type`` (``normal``, ``ornstein_uhlenbeck`` or ``annealed_ornstein_uhlenbeck``), ``sigma`` (number or
    one per action dimension), ``mean`` (default 0), ``theta`` and ``dt`` (OU only), ``decay_steps`` and
    ``final_scale`` (optional linear decay of the noise's output for ``normal`` and ``ornstein_uhlenbeck``; of the
    increments' sigma for ``annealed_ornstein_uhlenbeck``, where ``decay_steps`` is required), ``start`` and
    ``reset_each_episode`` (``annealed_ornstein_uhlenbeck`` only, see
    :class:`~gmc_rl.agents.noise.AnnealedOrnsteinUhlenbeckNoise`), ``units``: ``scaled`` (default: ``sigma`` and
    ``mean`` in SB3's actions scaled to [-1, 1], to which SB3 adds the noise) or ``env`` (in the env's action
    units, divided here by the half-width of the action space). ``None`` means no noise.
    """
    if spec is None:
        return None
    if isinstance(spec, ActionNoise):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"agent.hyperparams.action_noise must be a mapping like {{type: normal, sigma: 0.1}}, got {spec!r}"
        )
    if not isinstance(action_space, spaces.Box):
        raise ConfigError(f"agent.hyperparams.action_noise needs a continuous Box action space, got {action_space}")
    spec = dict(spec)
    kind = _noise_kind(spec)
    mean, sigma = _noise_mean_sigma(spec, action_space)
    if kind == "annealed_ornstein_uhlenbeck":
        return _annealed_noise(spec, mean, sigma)
    if kind == "normal":
        noise: ActionNoise = NormalActionNoise(mean=mean, sigma=sigma)
    else:
        noise = OrnsteinUhlenbeckActionNoise(mean=mean, sigma=sigma, theta=_noise_number(spec, "theta", 0.15, 0.0),
                                             dt=_noise_number(spec, "dt", 1e-2, None))
    if "decay_steps" in spec:
        decay_steps = spec["decay_steps"]
        if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or decay_steps <= 0:
            raise ConfigError(
                f"agent.hyperparams.action_noise.decay_steps must be a positive integer, got {decay_steps!r}"
            )
        noise = DecayingActionNoise(noise, decay_steps, _noise_number(spec, "final_scale", 0.0, 0.0))
    return noise


def _noise_kind(spec: dict[str, Any]) -> str:
    """Pop the ``type`` of an ``action_noise`` mapping and check it and the keys that type takes; return the type.

    Raises:
        ConfigError: an unknown type (with a did-you-mean) or a key the type does not take.
    """
    kinds = ("normal", "ornstein_uhlenbeck", "annealed_ornstein_uhlenbeck")
    kind = spec.pop("type", None)
    if kind not in kinds:
        raise ConfigError(
            f"agent.hyperparams.action_noise.type must be one of {list(kinds)}, got {kind!r}."
            f"{suggest(str(kind), kinds)}"
        )
    valid = {"sigma", "mean", "decay_steps", "final_scale", "units"}
    if kind != "normal":
        valid |= {"theta", "dt"}
    if kind == "annealed_ornstein_uhlenbeck":
        valid |= {"start", "reset_each_episode"}
    unknown = sorted(set(spec) - valid)
    if unknown:
        raise ConfigError(
            f"agent.hyperparams.action_noise: unknown keys {unknown}; valid keys for {kind}: {sorted(valid)}"
        )
    return kind


def _noise_mean_sigma(spec: Mapping[str, Any], action_space: spaces.Box) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, sigma)`` of an ``action_noise`` mapping, one value per action dimension, in SB3's scaled actions
    (``units: env`` divided by the half-width of the action space).

    Raises:
        ConfigError: a value that is not finite or of the wrong length, a negative sigma, unknown units, or
            ``units: env`` with infinite or empty action bounds.
    """
    dim = int(np.prod(action_space.shape))

    def vector(key: str, default: float) -> np.ndarray:
        value = np.asarray(spec.get(key, default), dtype=np.float64)
        if value.ndim == 0:
            value = np.full(dim, float(value))
        if value.shape != (dim,) or not np.all(np.isfinite(value)):
            raise ConfigError(
                f"agent.hyperparams.action_noise.{key} must be a finite number or a list of {dim}, "
                f"got {spec.get(key)!r}"
            )
        return value

    sigma, mean = vector("sigma", 0.1), vector("mean", 0.0)
    if np.any(sigma < 0):
        raise ConfigError(f"agent.hyperparams.action_noise.sigma must be >= 0, got {spec.get('sigma')!r}")
    units = spec.get("units", "scaled")
    if units not in ("scaled", "env"):
        raise ConfigError(f"agent.hyperparams.action_noise.units must be 'scaled' (SB3's actions in [-1, 1]) or "
                          f"'env' (the env's action units), got {units!r}")
    if units == "env":
        half_width = (np.asarray(action_space.high, np.float64) - np.asarray(action_space.low, np.float64)).ravel() / 2
        if not np.all(np.isfinite(half_width)) or np.any(half_width <= 0):
            raise ConfigError("agent.hyperparams.action_noise.units: 'env' needs finite, non-empty action bounds, "
                              f"got {action_space}")
        sigma, mean = sigma / half_width, mean / half_width
    return mean, sigma


def _noise_number(spec: Mapping[str, Any], name: str, default: float, minimum: float | None) -> float:
    """``spec[name]`` (or ``default``) checked as a finite number ``>= minimum`` (``> 0`` when ``minimum`` is None)."""
    number = spec.get(name, default)
    ok = isinstance(number, (int, float)) and not isinstance(number, bool) and np.isfinite(number)
    if not ok or (number < minimum if minimum is not None else number <= 0):
        raise ConfigError(f"agent.hyperparams.action_noise.{name} must be a finite number "
                          f"{'>= 0' if minimum is not None else '> 0'}, got {number!r}")
    return float(number)


def _annealed_noise(spec: Mapping[str, Any], mean: np.ndarray, sigma: np.ndarray) -> ActionNoise:
    """The ``annealed_ornstein_uhlenbeck`` noise of an ``action_noise`` mapping (mean and sigma already scaled)."""
    key = "agent.hyperparams.action_noise"
    integers = {"decay_steps": (spec.get("decay_steps"), 1), "start": (spec.get("start", 0), 0)}
    for name, (value, low) in integers.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}.{name} must be an integer >= {low}"
                              f"{' (required for annealed_ornstein_uhlenbeck)' if name == 'decay_steps' else ''}, "
                              f"got {value!r}")
    theta, dt = _noise_number(spec, "theta", 0.15, 0.0), _noise_number(spec, "dt", 1.0, None)
    final_scale = _noise_number(spec, "final_scale", 0.0, 0.0)
    reset = spec.get("reset_each_episode", False)
    if not isinstance(reset, bool):
        raise ConfigError(f"{key}.reset_each_episode must be true or false, got {reset!r}")
    return AnnealedOrnsteinUhlenbeckNoise(mean=mean, sigma=sigma, theta=theta, dt=dt,
                                          decay_steps=integers["decay_steps"][0], final_scale=final_scale,
                                          start=integers["start"][0], reset_each_episode=reset)


def constructor_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``cls(...)`` takes: its ``__init__``'s, and its bases' where it passes ``**kwargs`` on."""
    arguments: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters
        for name, parameter in parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                arguments.setdefault(name, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return arguments


def _linear_schedule(initial: float):
    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _learning_rate(value: Any, key: str) -> Any:
    """A number, or ``"lin_<number>"`` for a linear decay to 0 (rl-zoo3 convention)."""
    if isinstance(value, str):
        if value.startswith("lin_"):
            try:
                return _linear_schedule(float(value[4:]))
            except ValueError:
                pass
        raise ConfigError(f"agent.hyperparams.{key} must be a number or 'lin_<number>', got {value!r}")
    return value


def _policy_kwargs(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        raise ConfigError(
            "agent.hyperparams.policy_kwargs must be a mapping (e.g. {net_arch: [256, 256]}); "
            f"strings like {value!r} are not evaluated"
        )
    if not isinstance(value, Mapping):
        raise ConfigError(f"agent.hyperparams.policy_kwargs must be a mapping, got {value!r}")
    kwargs = dict(value)
    activation = kwargs.get("activation_fn")
    if isinstance(activation, str):
        name = activation.lower().removeprefix("nn.")
        if name not in ACTIVATIONS:
            raise ConfigError(
                f"agent.hyperparams.policy_kwargs.activation_fn: unknown activation {activation!r}; "
                f"valid: {sorted(ACTIVATIONS)}.{suggest(name, ACTIVATIONS)}"
            )
        kwargs["activation_fn"] = ACTIVATIONS[name]
    extractor = kwargs.get("features_extractor_class")
    if isinstance(extractor, str):
        if extractor not in EXTRACTORS:
            raise ConfigError(
                f"agent.hyperparams.policy_kwargs.features_extractor_class: unknown extractor {extractor!r}; "
                f"valid: {sorted(EXTRACTORS)}.{suggest(extractor, EXTRACTORS)}"
            )
        kwargs["features_extractor_class"] = EXTRACTORS[extractor]
        cnn = (kwargs.get("features_extractor_kwargs") or {}).get("cnn", "auto")
        if extractor == "multimodal" and cnn != "auto" and cnn not in CNNS:
            raise ConfigError(f"agent.hyperparams.policy_kwargs.features_extractor_kwargs.cnn: unknown cnn {cnn!r}; "
                              f"valid: {['auto', *CNNS]}.{suggest(str(cnn), CNNS)}")
    return kwargs


def default_policy(observation_space: spaces.Space) -> str:
    """``MultiInputPolicy`` for a ``Dict`` observation space, ``MlpPolicy`` otherwise."""
    return "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"


def check_action_space(algo: str, action_space: spaces.Space) -> None:
    """Raise :class:`ConfigError` if ``algo`` cannot act in ``action_space``."""
    if algo in DISCRETE_ONLY and not isinstance(action_space, spaces.Discrete):
        raise ConfigError(
            f"algorithm {algo!r} needs a Discrete action space, but the environment's action space is {action_space}; "
            f"use one of {list(CONTINUOUS_ONLY) + ['ppo', 'a2c']} for continuous actions"
        )
    if algo in CONTINUOUS_ONLY and not isinstance(action_space, spaces.Box):
        raise ConfigError(
            f"algorithm {algo!r} needs a continuous Box action space, but the environment's action space is "
            f"{action_space}; use dqn, ppo or a2c for discrete actions"
        )


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of an algorithm name, with a clear error for unknown names."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algo!r}; valid: {list(ALGORITHMS)}.{suggest(str(algo), ALGORITHMS)}")
    return ALGORITHMS[algo]


def resolve_hyperparams(algo: str, hyperparams: Mapping[str, Any] | None, action_space: spaces.Space) -> dict[str, Any]:
    """Check ``hyperparams`` against ``algo``'s constructor and convert config values into SB3 objects."""
    cls = algorithm_class(algo)
    if hyperparams is None:
        hyperparams = {}
    if not isinstance(hyperparams, Mapping):
        raise ConfigError(f"agent.hyperparams must be a mapping, got {type(hyperparams).__name__}")
    params = copy.deepcopy(dict(hyperparams))
    accepted = list(constructor_arguments(cls))
    for key in params:
        if key in _SET_ELSEWHERE:
            raise ConfigError(f"agent.hyperparams.{key} is not a hyperparameter here: {_SET_ELSEWHERE[key]}")
        if key not in accepted:
            valid = sorted(set(accepted) - set(_SET_ELSEWHERE))
            raise ConfigError(
                f"agent.hyperparams: {key!r} is not an argument of {cls.__name__} ({algo}); valid: {valid}."
                f"{suggest(key, valid)}"
            )
    if "policy" in params and params["policy"] not in POLICIES:
        raise ConfigError(f"agent.hyperparams.policy must be one of {list(POLICIES)}, got {params['policy']!r}")
    if "policy_kwargs" in params:
        params["policy_kwargs"] = _policy_kwargs(params["policy_kwargs"])
    for key in ("learning_rate", "actor_learning_rate", "clip_range", "clip_range_vf"):
        if key in params:
            params[key] = _learning_rate(params[key], key)
    check_hyperparams(algo, dict(hyperparams))  # the values as given (schedules are functions by now)
    if "action_noise" in params:
        params["action_noise"] = make_action_noise(params["action_noise"], action_space)
    if isinstance(params.get("train_freq"), list):
        params["train_freq"] = tuple(params["train_freq"])
    return params


def check_buffer_memory(algo: str, params: Mapping[str, Any], observation_space: spaces.Space,
                        action_space: spaces.Space, n_envs: int = 1) -> None:
    """Raise :class:`ConfigError` if the buffer ``algo`` allocates when it is built cannot fit in memory.

    SB3 allocates its whole replay buffer (``buffer_size`` transitions: observation, next observation unless
    ``optimize_memory_usage``, action, reward and flags) or rollout buffer (``n_steps`` x ``n_envs`` rows, every
    value as float32) in the constructor. Numbers of the buffer's rows times the bytes of the spaces the policy
    observes give the size; it must fit :data:`~gmc_rl.config.MAX_DATA_BYTES` and the machine's total memory
    (a larger allocation can never be filled, and fails or swaps).
    """
    cls = algorithm_class(algo)
    defaults = {name: p.default for name, p in constructor_arguments(cls).items()}
    assert action_space.shape is not None  # the action spaces SB3 supports (Box, Discrete, Multi*) have one
    action_dim = max(int(np.prod(action_space.shape)), 1)
    if algo in OFF_POLICY:
        key, value = "buffer_size", int(params.get("buffer_size", defaults["buffer_size"]))
        rows, per_value = max(value // n_envs, 1) * n_envs, 1  # SB3 keeps buffer_size // n_envs rows per env
        copies = 1 if params.get("optimize_memory_usage") and not isinstance(observation_space, spaces.Dict) else 2
        action_bytes = action_dim * (4 if isinstance(action_space, spaces.Box) else 8)
        per_row = copies * space_bytes(observation_space) + action_bytes + 3 * 4
        what = f"the replay buffer ({rows:,} transitions of {format_bytes(per_row)})"
    else:
        key, value = "n_steps", int(params.get("n_steps", defaults["n_steps"]))
        rows, per_value = value * n_envs, n_envs  # n_steps rows per env
        per_row = space_bytes(observation_space, itemsize=4) + 4 * action_dim + 6 * 4
        what = f"the rollout buffer ({value:,} steps x {n_envs} envs, {format_bytes(per_row)} each)"
    total, _ = system_memory()
    fit = max(min(MAX_DATA_BYTES, total or MAX_DATA_BYTES) // (per_row * per_value), 1)
    check_memory(rows * per_row, f"agent.hyperparams.{key}", what, f"lower {key} to at most {fit:,}", total,
                 memory_name="memory of this machine")


def build_algorithm(
    algo: str,
    env: Any,
    hyperparams: Mapping[str, Any] | None,
    seed: int,
    tensorboard_log: str | None,
    device: str = "auto",
    verbose: int = 0,
) -> BaseAlgorithm:
    """Build the SB3 algorithm ``algo`` on ``env`` (a Gymnasium env or an SB3 VecEnv).

    Args:
        algo: one of :data:`ALGORITHMS` (``sac``, ``td3``, ``ddpg``, ``ppo``, ``a2c``, ``dqn``).
        env: the training environment; its observation space picks the default policy.
        hyperparams: constructor arguments of the algorithm (rl-zoo3 style, see the module docstring).
        seed: random seed of the algorithm (networks, exploration, env resets).
        tensorboard_log: directory for TensorBoard event files, or None.
        device: torch device ("auto", "cpu", "cuda").
        verbose: SB3 verbosity (0 silent, 1 info).

    Raises:
        ConfigError: unknown algorithm or hyperparameter, malformed value, or an action space ``algo`` cannot use.
    """
    cls = algorithm_class(algo)
    check_action_space(algo, env.action_space)
    params = resolve_hyperparams(algo, hyperparams, env.action_space)
    check_buffer_memory(algo, params, env.observation_space, env.action_space, int(getattr(env, "num_envs", 1)))
    policy = params.pop("policy", None) or default_policy(env.observation_space)
    if policy == "MultiInputPolicy" and needs_small_cnn(env.observation_space):
        kwargs = params.setdefault("policy_kwargs", {})
        kwargs.setdefault("features_extractor_class", MultimodalExtractor)
    try:
        return cls(policy, env, seed=seed, tensorboard_log=tensorboard_log, device=device, verbose=verbose, **params)
    except (TypeError, AssertionError, ValueError) as exc:
        raise ConfigError(f"cannot build {algo} with hyperparameters {dict(hyperparams or {})}: {exc}") from exc
    except MemoryError as exc:  # the estimate above leaves out the networks and other processes' use of memory
        raise ConfigError(f"cannot build {algo} with hyperparameters {dict(hyperparams or {})}: out of memory "
                          f"({exc}); lower buffer_size or n_steps") from exc
