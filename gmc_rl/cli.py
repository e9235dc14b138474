"""The ``gmc-rl`` command line: one subcommand per stage of the pipeline.

Each subcommand lives in its own module under :mod:`gmc_rl.commands` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; one that reads the experiment config also declares ``CONFIG``
(:class:`gmc_rl.commands.common.ConfigFlags`) and gets ``args.experiment``. Only the module of the command that
runs is imported, except for ``gmc-rl --help``, which lists them all. Every command takes ``--import MODULE``
(repeatable): the modules a user names there are imported before anything else, so that the ids their code registers
are known when an agent, checkpoint or dataset of such an env is read (:func:`import_given_modules`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from importlib import import_module
from types import ModuleType
from typing import Any

from gmc_rl import __version__
from gmc_rl.env_ids import IMPORT_FLAG
from gmc_rl.errors import ConfigError, GMCError, WorkerLostError
from gmc_rl.io import NO_ROOM_ERRNOS

COMMANDS = {
    "collect": "gmc_rl.commands.collect",
    "pretrain": "gmc_rl.commands.pretrain",
    "align": "gmc_rl.commands.align",
    "train": "gmc_rl.commands.train",
    "evaluate": "gmc_rl.commands.evaluate",
    "pipeline": "gmc_rl.commands.pipeline",
    "report": "gmc_rl.commands.report",
    "envs": "gmc_rl.commands.envs",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``gmc-rl --help`` (the list of commands) and ``--version``."""
    parser = argparse.ArgumentParser(prog="gmc-rl", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"gmc-rl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        sub.add_parser(name, help=import_module(module_name).HELP, add_help=False)
    return parser


def build_command_parser(name: str) -> tuple[ModuleType, Any]:
    """The module of command ``name`` and its parser (a jsonargparse parser, see
    :mod:`gmc_rl.commands.config_flags`)."""
    from gmc_rl.commands.config_flags import (
        add_config_arguments,
        add_import_argument,
        add_print_config_argument,
        command_parser,
    )

    module = import_module(COMMANDS[name])
    parser = command_parser(f"gmc-rl {name}", module.HELP)
    module.add_arguments(parser)
    add_import_argument(parser)
    add_print_config_argument(parser)
    flags = getattr(module, "CONFIG", None)
    if flags is not None:
        add_config_arguments(parser, flags.sections, flags.top_level, flags.short, flags.top_level_help)
    return module, parser


PATH_FLAGS = frozenset({"--out", "--data", "--config", "--agent", "--model", "--encoder", "--gmc", "--mvae", "--muse",
                        "--teacher", "--plot", "--pretrain-data", "--mvae-data", "--collect", "--pretrain",
                        "--evaluate", "--pretrain.model", "--pretrain.muse"})
"""The flags that take a path (a file or directory), whose empty value would silently mean the current directory."""

_ENV_ID_HINT = "an environment id such as gmc_rl/PendulumSound-v0 (`gmc-rl envs` lists them)"
_ENV_KWARGS_HINT = "the env's keyword arguments as JSON, e.g. '{\"image_size\": 64}' (or leave the flag out)"
_POLICY_HINT = "'random' or the path of an SB3 agent .zip ([algo:]path)"
EMPTY_VALUE_HINTS = {
    IMPORT_FLAG: "a module name such as mypkg.envs (the Python module that registers your env, importable from the "
                 "current directory or sys.path)",
    "--env": _ENV_ID_HINT, "--env_id": _ENV_ID_HINT,
    "--env-kwargs": _ENV_KWARGS_HINT, "--env_kwargs": _ENV_KWARGS_HINT,
    "--minari": "a Minari dataset id such as gmc_rl/pendulum-sound-random-v0",
    "--collect.policy": _POLICY_HINT, "--policy": _POLICY_HINT,
    "--name": "the experiment's name, e.g. pendulum",
    "--address": "the Ray cluster's address, e.g. HEAD_IP:6379 (or leave the flag out)",
}
"""What an empty value of a flag that takes no path should have been, for the message that refuses it."""

EMPTY_ALLOWED_FLAGS = frozenset({"--agent.distill_from", "--distill-from"})
"""Flags whose empty value is a value: ``agent.distill_from`` "" (its default) means every agent learns by RL."""


def refuse_empty_values(argv: Sequence[str]) -> None:
    """Raise ConfigError for an empty (or blank) value anywhere in ``argv``: ``--out ""``, ``--data=``, a blank run
    directory, ``--import ""``. As a path it would silently mean the current directory (``Path("") == Path(".")``),
    so the message would name ``.`` rather than what was given; as another value it is not one. The message says what
    the flag takes: a path (``.`` for the current directory), a module name (``--import``), an env id, and so on.
    Only the flags of :data:`EMPTY_ALLOWED_FLAGS` take an empty value."""
    for index, word in enumerate(argv):
        flag, equals, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if (equals or not flag) and not value.strip():
            if not equals and index > 0 and argv[index - 1].startswith("-"):
                flag = argv[index - 1]
            elif not equals:
                raise ConfigError(f"argument {index + 1} is given an empty value ({word!r}); give a path or value "
                                  "(use . for the current directory)")
            if flag in EMPTY_ALLOWED_FLAGS and not value:
                continue
            if flag in EMPTY_VALUE_HINTS:
                expected = f"give {EMPTY_VALUE_HINTS[flag]}"
            elif flag in PATH_FLAGS:
                expected = "give a path (use . for the current directory)"
            else:
                expected = f"give a value (`--help` lists what {flag} takes)"
            raise ConfigError(f"flag {flag} is given an empty value ({word!r}); {expected}")


REPEATABLE_FLAGS = (IMPORT_FLAG,)
"""The only flags that may be given more than once (each ``--import`` adds a module)."""


def refuse_repeated_flags(argv: Sequence[str]) -> None:
    """Raise ConfigError for a flag given twice (``--out a --out b``, ``--model=x --model y``): argparse would keep
    the last value silently, so a command would read or write another path than the first one named."""
    given: dict[str, list[str]] = {}
    for index, word in enumerate(argv):
        if not word.startswith("--") or word == "--":
            continue
        flag, equals, value = word.partition("=")
        if not equals:
            value = argv[index + 1] if index + 1 < len(argv) and not argv[index + 1].startswith("--") else ""
        given.setdefault(flag, []).append(value)
    for flag, values in given.items():
        if len(values) > 1 and flag not in REPEATABLE_FLAGS:
            raise ConfigError(f"{flag} is given {len(values)} times ({', '.join(values)}); give it once")


def _run_command(name: str, argv: list[str]) -> int:
    """Parse ``argv`` for command ``name`` (its config flags on top of its base config) and run it.

    ``--help`` shows the values given beside it; ``--print_config`` prints the settings in effect instead of
    running (:func:`print_config`).
    """
    from gmc_rl.commands.common import config_file_or
    from gmc_rl.commands.config_flags import (
        HELP_FLAGS,
        PRINT_CONFIG_FLAGS,
        SectionFile,
        config_from_args,
        read_section_files,
        set_config_defaults,
        show_given_values,
    )
    from gmc_rl.config import ExperimentConfig

    refuse_empty_values(argv)
    refuse_repeated_flags(argv)
    import_given_modules(argv)  # before anything reads a file that names a user's env (agent.json, a checkpoint)
    module, parser = build_command_parser(name)
    flags = getattr(module, "CONFIG", None)
    section_files: list[SectionFile] = []
    if flags is not None:  # section files (--pretrain FILE) are read as --config is, before anything parses argv
        argv = read_section_files(argv, flags.sections, section_files)
        parser.section_files = section_files
    printing = any(word in PRINT_CONFIG_FLAGS for word in argv)
    argv = [word for word in argv if word not in PRINT_CONFIG_FLAGS]
    base: ExperimentConfig | None = None
    if flags is not None:
        base = module.base_config(argv) if hasattr(module, "base_config") else config_file_or(argv)
        set_config_defaults(parser, base, flags.sections, flags.top_level)
    if any(word in HELP_FLAGS for word in argv):
        show_given_values(parser, argv)
    if printing:
        for action in parser._actions:
            action.required = False  # the settings can be seen before every required flag is chosen
    args = parser.parse_args(argv)
    if flags is not None and base is not None:
        args.experiment = config_from_args(args, base, flags.sections, flags.top_level, section_files)
    if printing:
        print(print_config(name, parser, args), end="")
        return 0
    args.given_flags = given_flags(argv)  # a command whose flags depend on its mode refuses the others (align)
    return int(module.run(args) or 0)


def given_flags(argv: Sequence[str]) -> list[str]:
    """The flags written in ``argv`` (``--batch-size 8`` and ``--batch-size=8`` both give ``--batch-size``), in
    order: what the user chose, as opposed to a default equal to it (flags are never abbreviated)."""
    flags = [word.partition("=")[0] for word in argv if word.startswith("--") and word != "--"]
    return list(dict.fromkeys(flags))


def print_config(name: str, parser: Any, args: Any) -> str:
    """The settings of a parsed command as YAML: its own flags as comments, then the experiment config in effect
    (checked, with every key; a valid ``--config`` file), or for a command without one its flags as YAML."""
    from gmc_rl.commands.config_flags import own_values
    from gmc_rl.config import dump_yaml, to_dict

    # dump_yaml quotes text that YAML would read back as another value ('1e3', '0o17'): the output is a config
    own = own_values(parser, args)
    if not hasattr(args, "experiment"):
        return f"# gmc-rl {name}: the settings in effect\n" + dump_yaml(own, sort_keys=False)
    comments = "".join(f"#   {line}\n" for line in dump_yaml(own, sort_keys=False).splitlines())
    return (f"# gmc-rl {name}: the experiment config in effect (usable as --config FILE); the command's own flags:\n"
            f"{comments}" + dump_yaml(to_dict(args.experiment), sort_keys=False))


def import_given_modules(argv: list[str]) -> list[str]:
    """Import the modules named by ``--import MODULE`` in ``argv`` (each flag one module, repeatable), then the
    module of the ``env_id`` of a ``--config`` file: both are the user's word on the command line, so both may run
    code (:mod:`gmc_rl.env_ids`). A module named by a file that gmc-rl loads (``agent.json``, a checkpoint) is
    never imported; the user names it here.

    Returns:
        The modules imported.
    """
    from gmc_rl.env_ids import IMPORT_FLAG, import_user_modules, split_env_id

    peeker = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    peeker.add_argument(IMPORT_FLAG, dest="modules", action="append", default=[])
    peeker.add_argument("--config", default=None)
    known, _ = peeker.parse_known_args(argv)
    done = import_user_modules(known.modules)
    if known.config:
        from gmc_rl.config import load_config

        module, _ = split_env_id(load_config(known.config).env_id)
        if module is not None and module not in done:
            done += import_user_modules([module], flag=f"{known.config}: env_id's module")
    return done


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a job scheduler's stop) ends a command like Ctrl-C does: the running stage saves what it
    can, the pipeline stops its worker processes, and a rerun resumes."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gmc-rl`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv)  # --help, --version, or an error naming the unknown command
        parser.print_help()
        return 2
    command = argv[0]
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_command(command, argv[1:])
    except (GMCError, WorkerLostError, OSError) as exc:  # OSError: the system refused a read or write (a file named)
        hint = ""
        if isinstance(exc, OSError) and exc.errno in NO_ROOM_ERRNOS:
            hint = ("; make room (or raise the file-size limit) and rerun the same command: files are written "
                    "atomically, so nothing already written was replaced, and finished stages are kept")
        print(f"gmc-rl {command}: error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gmc-rl {command}: interrupted; rerun the same command (with --resume where offered) to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
