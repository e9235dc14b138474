"""``gmc-rl collect``: roll out a behaviour policy and write a multimodal dataset (see :mod:`gmc_rl.collect`)."""

from __future__ import annotations

import argparse

from gmc_rl.commands.common import ConfigFlags

HELP = "collect a multimodal dataset of env transitions (uniform random policy by default)"
CONFIG = ConfigFlags(sections=("collect",), top_level=("name", "env_id", "env_kwargs"), short="collect")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset directory to write (metadata.json, train.npz, val.npz)")
    parser.add_argument("--update", "--overwrite", dest="update_dataset", action="store_true",
                        help="collect again when --out holds a dataset collected with other settings, replacing it "
                             "(the pipeline's --update; without it such a dataset is refused)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gmc_rl.collect import collect
    from gmc_rl.data import load_dataset

    path = collect(args.experiment, args.out, overwrite=args.update_dataset, progress=not args.quiet)
    dataset = load_dataset(path)
    on_disk = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"{dataset!r}")
    print(f"wrote {path}: {len(dataset.train['rewards'])} train + {len(dataset.val['rewards'])} validation transitions, "
          f"{on_disk / 1e6:.1f} MB on disk, {dataset.nbytes / 1e6:.1f} MB in memory")
    return 0
