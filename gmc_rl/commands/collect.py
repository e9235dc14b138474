"""``gmc-rl collect``: roll out a behaviour policy and write a multimodal dataset (see :mod:`gmc_rl.collect`)."""

from __future__ import annotations

import argparse

from gmc_rl.commands.common import ConfigFlags

HELP = "collect a multimodal dataset of env transitions (uniform random policy by default)"
CONFIG = ConfigFlags(sections=("collect",), top_level=("name", "env_id", "env_kwargs"), short="collect")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset directory to write (metadata.json, train.npz, val.npz)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset already in --out that was collected with other settings")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gmc_rl.collect import collect
    from gmc_rl.data import load_dataset

    path = collect(args.experiment, args.out, overwrite=args.overwrite, progress=not args.quiet)
    dataset = load_dataset(path)
    on_disk = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"{dataset!r}")
    print(f"wrote {path}: {len(dataset.train['rewards'])} train + {len(dataset.val['rewards'])} validation transitions, "
          f"{on_disk / 1e6:.1f} MB on disk, {dataset.nbytes / 1e6:.1f} MB in memory")
    return 0
