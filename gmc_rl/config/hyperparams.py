"""The SB3 hyperparameters of ``agent.hyperparams``: the values each algorithm allows, and how one method's changes
are merged on top of the shared ones.

Values are checked when the config is built (:func:`check_hyperparams`, with :data:`HYPERPARAM_CHECKS`), so that a
bad value is refused before a run directory or an agent directory is written. Which keys an algorithm takes at all
is checked against the SB3 constructor by gmc_rl.agents.registry (the core cannot import the agents layer), which
takes the names of the off-policy algorithms (:data:`OFF_POLICY`) from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gmc_rl.config.checks import _is_finite, _is_integer, _require
from gmc_rl.config.limits import MAX_BUFFER_SIZE, MAX_EPISODES, MAX_LAYER_WIDTH, MAX_LAYERS, MAX_SB3_BATCH

OFF_POLICY = ("sac", "td3", "ddpg", "dqn")
"""The algorithms that learn from a replay buffer (their :data:`HYPERPARAM_CHECKS` start from the off-policy keys
such as ``buffer_size``); the others (ppo, a2c) fill a rollout buffer. gmc_rl.agents.registry sizes the buffer by
it, and gmc_rl.agents.loading builds a loaded agent without replay memory."""


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
"as many as environment steps") and the limits of :mod:`gmc_rl.config.limits` for sizes that allocate (buffer,
batch, rollout, widths). ``policy_kwargs.net_arch`` widths are bounded by :func:`check_hyperparams`; ``policy``,
the rest of ``policy_kwargs`` and ``action_noise`` are checked and converted by gmc_rl.agents.registry."""


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
