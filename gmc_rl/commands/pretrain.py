"""``gmc-rl pretrain``: train a GMC model on a collected dataset (see :mod:`gmc_rl.pretrain`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gmc_rl.commands.common import ConfigFlags, config_file_or, peek
from gmc_rl.config import ExperimentConfig, stored_config
from gmc_rl.errors import ConfigError
from gmc_rl.io import wrong_path

HELP = "pretrain a GMC encoder on a collected dataset (TensorBoard logs, checkpoints, --resume)"
CONFIG = ConfigFlags(sections=("pretrain",), top_level=("name", "env_id", "env_kwargs"), short="pretrain")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None,
                        help="dataset directory written by `gmc-rl collect`, or minari:DATASET_ID for a Minari dataset "
                             "(needs pip install -e '.[minari]'); with --resume, the run's own dataset by default")
    parser.add_argument("--out", required=True, help="output directory (checkpoint, last/, tb/, history.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="hide the progress bar (as every command's --no-progress; --quiet is the old name)")


def pretraining_run(out: str) -> dict[str, Any] | None:
    """The ``run.json`` of the pretraining run in ``out`` (its config and dataset), or None if there is none."""
    from gmc_rl.io import read_json_object
    from gmc_rl.pretraining_run import RUN_FILE

    run_file = Path(out) / RUN_FILE
    if not run_file.is_file():
        return None
    return read_json_object(run_file, "pretraining run file", {"experiment": dict, "data_dir": str}, ConfigError)


def resumed_run(argv: Sequence[str]) -> dict[str, Any] | None:
    """The pretraining run in ``--out`` when ``--resume`` is given without ``--config``, else None.

    Resuming continues that run with its own settings (as ``gmc-rl train --resume`` does); flags still override them.
    """
    given = peek(argv, "--resume", "--out", "--config")
    if not given.resume or given.config or not given.out:
        return None
    return pretraining_run(given.out)


def base_config(argv: Sequence[str]) -> ExperimentConfig:
    """The config the flags apply to: the resumed run's own (``--resume`` without ``--config``), else the
    ``--config`` file, else the defaults with the env the dataset (``--data``) was collected on."""
    from gmc_rl.data import MINARI_PREFIX, read_metadata

    run = resumed_run(argv)
    if run is not None:
        return stored_config(run["experiment"])
    given = peek(argv, "--config", "--data")
    if given.config or not given.data:
        return config_file_or(argv)
    if given.data.startswith(MINARI_PREFIX):
        from gmc_rl.minari_data import minari_env_id

        return ExperimentConfig(env_id=minari_env_id(given.data[len(MINARI_PREFIX):]))
    return ExperimentConfig(env_id=str(read_metadata(given.data)["env_id"]))


def run(args: argparse.Namespace) -> int:
    from gmc_rl.pretrain import pretrain

    data = args.data
    if data is None:
        run = pretraining_run(args.out) if args.resume else None
        if run is None:
            why = ""
            if args.resume:  # say what --out is instead
                holds = f"--out {args.out} holds no pretraining run (no run.json)"
                why = f"; {wrong_path(args.out, '--out') if not Path(args.out).is_dir() else holds}"
            raise ConfigError("--data is required (the dataset to pretrain on), unless --resume continues a run in "
                              f"--out {args.out!r} that names its own{why}")
        data = run["data_dir"]
    pretrain(args.experiment, data, args.out, resume=args.resume, progress=not args.no_progress)
    return 0
