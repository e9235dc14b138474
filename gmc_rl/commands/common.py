"""Flags and config resolution shared by the subcommands."""

from __future__ import annotations

import argparse

from gmc_rl.config import ExperimentConfig, add_config_arguments, apply_arguments, load_config


def add_experiment_arguments(parser: argparse.ArgumentParser, section: str | None, section_cls: type | None) -> None:
    """Add ``--config`` plus the experiment's top-level flags and, if given, one section's flags."""
    parser.add_argument("--config", default=None, help="YAML experiment config (flags given here override it)")
    add_config_arguments(parser, ExperimentConfig)
    if section_cls is not None:
        add_config_arguments(parser, section_cls, section)


def resolve_config(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment config: the ``--config`` file (or the defaults) with the command-line flags applied."""
    config = load_config(args.config) if getattr(args, "config", None) else ExperimentConfig()
    return apply_arguments(config, args)


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
