"""``gmc-rl pretrain``: train a GMC model on a collected dataset (see :mod:`gmc_rl.pretrain`)."""

from __future__ import annotations

import argparse

from gmc_rl.commands.common import add_experiment_arguments, resolve_config
from gmc_rl.config import PretrainConfig

HELP = "pretrain a GMC encoder on a collected dataset (TensorBoard logs, checkpoints, --resume)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset directory written by `gmc-rl collect`")
    parser.add_argument("--out", required=True, help="output directory (checkpoint, last/, tb/, history.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_experiment_arguments(parser, "pretrain", PretrainConfig)


def run(args: argparse.Namespace) -> int:
    from gmc_rl.data import read_metadata
    from gmc_rl.pretrain import pretrain

    if not args.config and not hasattr(args, "cfg__env_id"):
        # No config and no --env: the dataset says which env it comes from.
        args.cfg__env_id = read_metadata(args.data)["env_id"]
    config = resolve_config(args)
    pretrain(config, args.data, args.out, resume=args.resume, progress=not args.quiet)
    return 0
