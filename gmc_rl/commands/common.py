"""What the subcommands share: reading the base config before the full parse, and printing the result tables.

A command that reads the experiment config declares ``CONFIG = ConfigFlags(...)`` (which sections and keys it reads)
and may define ``base_config(argv) -> ExperimentConfig`` (default: the ``--config`` file or the built-in defaults);
:func:`gmc_rl.cli.main` adds the flags, parses, and hands the checked config to ``run`` as ``args.experiment``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gmc_rl.commands.config_flags import TOP_LEVEL
from gmc_rl.config import ExperimentConfig, load_config
from gmc_rl.errors import ConfigError


@dataclass(frozen=True)
class ConfigFlags:
    """Which part of the experiment config a command reads (and so gets flags for)."""

    sections: tuple[str, ...]
    """Config sections whose every key is a flag (``--pretrain.epochs``)."""
    top_level: tuple[str, ...] = TOP_LEVEL
    """Top-level keys with a flag (``--env``, ``--seeds``...)."""
    short: str | None = None
    """The section whose keys also get short flags (``--epochs`` for ``--pretrain.epochs``)."""
    top_level_help: Mapping[str, str] = field(default_factory=dict)
    """Help of a top-level key where the command reads it differently (``evaluate``: ``--seeds`` are evaluation
    seeds)."""


def peek(argv: Sequence[str], *flags: str) -> argparse.Namespace:
    """The values of a few flags (``--resume`` is a switch, the others take a value), read before the full parse
    because they decide the base config that the other flags override."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in flags:
        if flag == "--resume":
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, action="append", default=None)
    known, _ = parser.parse_known_args(list(argv))
    for flag in flags:
        if flag == "--resume":
            continue
        dest = flag.lstrip("-").replace("-", "_")
        values = getattr(known, dest)
        if values is not None and len(values) > 1:  # a second --config would silently replace the first, not merge
            raise ConfigError(f"{flag} is given {len(values)} times ({', '.join(map(str, values))}); give it once")
        setattr(known, dest, values[0] if values else None)
    return known


def config_file_or(argv: Sequence[str], default: ExperimentConfig | None = None) -> ExperimentConfig:
    """The ``--config`` file given in ``argv``, else ``default`` (else the built-in defaults)."""
    path = peek(argv, "--config").config
    if path:
        return load_config(path)
    return default if default is not None else ExperimentConfig()


def print_tables(results: dict, heading: str) -> None:
    """Print the per-step reward table under ``heading``, the episode return table (both with 95 % CIs), then
    every agent that loses more than 10 % under a condition (or a line saying none does)."""
    from gmc_rl.results import markdown_table, robustness_summary

    print(heading)
    print()
    print(markdown_table(results, "per_step_reward"))
    print()
    print("Mean episode return (95 % CI):")
    print()
    print(markdown_table(results, "episode_return"))
    print()
    if len(results["conditions"]) > 1:
        print(robustness_summary(results))
        print()
