"""Checks of the env settings that need more than the config itself: the Gymnasium registry and the env's
constructor.

Gymnasium is imported inside the functions, so that importing :mod:`gmc_rl.config` stays light (no Gymnasium,
torch or SB3: tests/test_methods.py).
"""

from __future__ import annotations

from typing import Any

from gmc_rl.errors import ConfigError, suggest


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
