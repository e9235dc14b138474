"""``gmc-rl pretrain``: train a GMC model on a collected dataset (see :mod:`gmc_rl.pretrain`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gmc_rl.commands.common import ConfigFlags, config_file_or, peek
from gmc_rl.config import ExperimentConfig

HELP = "pretrain a GMC encoder on a collected dataset (TensorBoard logs, checkpoints, --resume)"
CONFIG = ConfigFlags(sections=("pretrain",), top_level=("name", "env_id", "env_kwargs"), short="pretrain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="dataset directory written by `gmc-rl collect`, or minari:DATASET_ID for a Minari dataset "
                             "(needs pip install -e '.[minari]')")
    parser.add_argument("--out", required=True, help="output directory (checkpoint, last/, tb/, history.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="hide the progress bar (as every command's --no-progress; --quiet is the old name)")


def base_config(argv: Sequence[str]) -> ExperimentConfig:
    """The ``--config`` file; without one, the defaults with the env the dataset (``--data``) was collected on."""
    from gmc_rl.data import MINARI_PREFIX, read_metadata

    given = peek(argv, "--config", "--data")
    if given.config or not given.data:
        return config_file_or(argv)
    if given.data.startswith(MINARI_PREFIX):
        from gmc_rl.minari_data import minari_env_id

        return ExperimentConfig(env_id=minari_env_id(given.data[len(MINARI_PREFIX):]))
    return ExperimentConfig(env_id=str(read_metadata(given.data)["env_id"]))


def run(args: argparse.Namespace) -> int:
    from gmc_rl.pretrain import pretrain

    pretrain(args.experiment, args.data, args.out, resume=args.resume, progress=not args.no_progress)
    return 0
