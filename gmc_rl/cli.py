"""The ``gmc-rl`` command line: one subcommand per stage of the pipeline.

Each subcommand lives in its own module under :mod:`gmc_rl.commands` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from importlib import import_module

from gmc_rl import __version__
from gmc_rl.errors import GMCError

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
    """The full argument parser (every command module is imported to declare its flags)."""
    parser = argparse.ArgumentParser(prog="gmc-rl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gmc-rl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = import_module(module_name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a job scheduler's stop) ends a command like Ctrl-C does: the running stage saves what it
    can, the pipeline stops its worker processes, and a rerun resumes."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gmc-rl`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args._run(args) or 0)
    except (GMCError, FileNotFoundError, PermissionError) as exc:
        print(f"gmc-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gmc-rl {args.command}: interrupted; rerun the same command (with --resume where offered) to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
