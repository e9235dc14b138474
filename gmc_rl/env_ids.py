"""Environment ids: the one check of an env id before ``gymnasium.make``, and the rule for ``"module:Name"`` ids.

Gymnasium reads ``"module:Name-v0"`` as "import ``module``, then make ``Name-v0``". Importing a module runs its
code, so where an id comes from decides whether its module may be imported:

- from the user, in an experiment config or on the command line (``allow_import=True``): the module is imported,
  as Gymnasium would (this is how a user's own env registers itself: ``myproject.envs:MyEnv-v0``);
- from a file that travels with an artifact (``allow_import=False``): the module must already be imported by the
  user, else the id is refused. Such a file is someone else's data; an ``env_id`` of
  ``"payload:gmc_rl/PendulumSound-v0"`` in an ``agent.json`` next to a ``payload.py`` must not run that file when
  the agent is loaded from its folder. ``agent.json`` is the one such file whose env id gmc-rl builds envs from
  (checked by :func:`gmc_rl.agents.agent_dir.read_agent_json`); dataset metadata, checkpoint provenance and
  evaluation records only record theirs, and nothing makes an env from them.

Either way the name after the colon must then be in Gymnasium's registry, and nothing else is ever imported.

Example:
    >>> check_env_id("gmc_rl/PendulumSound-v0", allow_import=False)
    >>> check_env_id("payload:gmc_rl/PendulumSound-v0", allow_import=False, source="agent.json")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gmc_rl.errors.ConfigError: agent.json: env_id 'payload:gmc_rl/PendulumSound-v0' names module 'payload', ...
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from gmc_rl.config import check_env_kwargs, registered_env_ids
from gmc_rl.errors import ConfigError, suggest


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``"module:Name-v0"`` -> ``("module", "Name-v0")``; an id without a module -> ``(None, env_id)``."""
    if ":" in env_id:
        module, _, name = env_id.partition(":")
        return module, name
    return None, env_id


def check_env_id(
    env_id: Any,
    *,
    allow_import: bool,
    key: str = "env_id",
    source: str | os.PathLike | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> None:
    """Raise :class:`ConfigError` unless ``gymnasium.make(env_id)`` finds the env without importing anything new.

    Args:
        env_id: a registered Gymnasium id, or ``"module:Name-v0"``.
        allow_import: True only where the id comes from the user (an experiment config, a command-line flag):
            then the module of a ``"module:"`` id is imported. False for ids read from files that travel with
            artifacts: the module must already be in ``sys.modules`` (imported by the user), else the id is refused.
        key: the config key the id came from, for the message.
        source: the file the id was read from, for the message (artifacts).
        env_kwargs: if given, checked against the env's constructor (:func:`gmc_rl.config.check_env_kwargs`).

    Raises:
        ConfigError: not a string, a module that is not imported (``allow_import=False``) or cannot be imported,
            or a name that is not registered (the message lists the registered ``gmc_rl/`` ids and close matches).
    """
    import gymnasium as gym

    where = f"{source}: {key}" if source is not None else f"config key {key!r}:"
    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"{where} must be a registered Gymnasium id (a string), got {env_id!r}")
    module, name = split_env_id(env_id)
    if module is not None:
        if allow_import:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"{where} cannot import module {module!r} of env id {env_id!r}: {exc}") from exc
        elif module not in sys.modules:
            raise ConfigError(
                f"{where} {env_id!r} names module {module!r}, which is not imported; gmc-rl never imports a module "
                f"named by a file it loads: import {module} yourself before loading (its own code then registers "
                f"{name!r}), or give the id on the command line or in your experiment config"
            )
    if name not in gym.registry:
        raise ConfigError(
            f"{where} environment id {env_id!r} is not registered; registered gmc_rl ids: {registered_env_ids()}."
            f"{suggest(name, list(gym.registry))}"
        )
    if env_kwargs is not None:
        check_env_kwargs(env_id, env_kwargs)
