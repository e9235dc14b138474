"""Environment ids: the one check of an env id before ``gymnasium.make``, and the rule for ``"module:Name"`` ids.

Gymnasium reads ``"module:Name-v0"`` as "import ``module``, then make ``Name-v0``". Importing a module runs its
code, so where an id comes from decides whether its module may be imported:

- from the user, in an experiment config or on the command line (``allow_import=True``): the module is imported,
  as Gymnasium would (this is how a user's own env registers itself: ``myproject.envs:MyEnv-v0``);
- from a file that travels with an artifact (``allow_import=False``): the module must already be imported by the
  user, else the id is refused. Such a file is someone else's data; an ``env_id`` of
  ``"payload:gmc_rl/PendulumSound-v0"`` in an ``agent.json`` next to a ``payload.py`` must not run that file when
  the agent is loaded from its folder. gmc-rl builds envs from the ids of two such files: ``agent.json`` (checked by
  :func:`gmc_rl.agents.agent_dir.read_agent_json`) and, for ``gmc-rl train --gmc DIR`` without ``--env``, the
  checkpoint's provenance; dataset metadata and evaluation records only record theirs.

The user imports such a module with ``--import MODULE``, which every ``gmc-rl`` command takes
(:func:`import_user_modules`, called before anything else is read): ``gmc-rl evaluate --import my_package.sensors
--agent runs/ppo``. The ``env_id`` of a ``--config`` file is the user's too: its module is imported.

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
import re
import sys
from collections.abc import Sequence
from typing import Any

from gmc_rl.config import check_env_kwargs, registered_env_ids
from gmc_rl.errors import ConfigError, suggest

IMPORT_FLAG = "--import"
"""The command-line flag of every ``gmc-rl`` command that imports a module the user names
(:func:`import_user_modules`)."""

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def import_user_modules(names: Sequence[str], flag: str = IMPORT_FLAG) -> list[str]:
    """Import the modules a user named on the command line (``gmc-rl evaluate --import my_package.sensors``).

    This is how an env registered by the user's own code becomes known to a command that reads its id from a file
    (an agent's ``agent.json``, a checkpoint's provenance): the module's own code registers the id, and the id
    check of :func:`check_env_id` (``allow_import=False``) then finds the module imported. Only module names are
    accepted, never paths or ``"module:id"`` strings. The current directory is searched last (after the installed
    packages), as ``python -m`` would search it, so a package of the user's project is found without installing it.

    Args:
        names: dotted module names, in the order given.
        flag: the flag they came from, for the messages.

    Returns:
        The names imported (each once, in order).

    Raises:
        ConfigError: a name that is not a dotted module name (a path, an env id) or a module that cannot be imported
            (the message holds the ImportError).

    Example:
        >>> import_user_modules(["json", "json"])
        ['json']
        >>> import_user_modules(["my_package/sensors.py"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gmc_rl.errors.ConfigError: --import 'my_package/sensors.py' is not a module name ...
    """
    done: list[str] = []
    if names:
        _search_current_directory()
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
            hint = ""
            if isinstance(name, str) and ":" in name:
                hint = f"; for the env id {name!r} give its module: {flag} {name.partition(':')[0]}"
            raise ConfigError(f"{flag} {name!r} is not a module name (dotted Python identifiers, e.g. "
                              f"my_package.sensors, importable from the current directory or sys.path){hint}")
        if name in done:
            continue
        import gymnasium as gym

        before = set(gym.registry)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{flag} {name}: cannot import module {name!r}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - the user's module failed while it ran: say so, on one line
            raise ConfigError(f"{flag} {name}: importing module {name!r} failed: {type(exc).__name__}: {exc}") from exc
        REGISTERED_BY_IMPORT.setdefault(name, []).extend(sorted(set(gym.registry) - before))
        done.append(name)
    return done


REGISTERED_BY_IMPORT: dict[str, list[str]] = {}
"""The env ids that each module imported by :func:`import_user_modules` registered (``gmc-rl envs`` lists them)."""


def _search_current_directory() -> None:
    """Let imports find modules in the current directory, as ``python -m`` does; appended to ``sys.path``, so that
    an installed package of the same name wins. (A console script such as ``gmc-rl`` does not search it.)"""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


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
    if module is not None and not _MODULE_NAME.fullmatch(module):
        raise ConfigError(f"{where} {env_id!r}: the part before ':' must be a module name (dotted Python identifiers, "
                          f"e.g. my_package.sensors:{name or 'MyEnv-v0'}), got {module!r}")
    if module is not None:
        if allow_import:
            _search_current_directory()
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"{where} cannot import module {module!r} of env id {env_id!r}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - the user's module failed while it ran
                raise ConfigError(f"{where} importing module {module!r} of env id {env_id!r} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        elif module not in sys.modules:
            raise ConfigError(
                f"{where} {env_id!r} names module {module!r}, which is not imported; gmc-rl never imports a module "
                f"named by a file it loads: name it on the command line with {IMPORT_FLAG} {module} (every gmc-rl "
                f"command takes it), or in Python import {module} before loading (its own code then registers "
                f"{name!r})"
            )
    if name not in gym.registry:
        raise ConfigError(
            f"{where} environment id {env_id!r} is not registered; registered gmc_rl ids: {registered_env_ids()}."
            f"{suggest(name, list(gym.registry))}"
        )
    if env_kwargs is not None:
        check_env_kwargs(env_id, env_kwargs)
