"""``gmc-rl collect``: roll out a behaviour policy and write a multimodal dataset (see :mod:`gmc_rl.collect`), or
a Minari dataset of whole episodes with ``--minari ID`` (see :mod:`gmc_rl.minari_data`)."""

from __future__ import annotations

import argparse

from gmc_rl.commands.common import ConfigFlags
from gmc_rl.errors import ConfigError

HELP = "collect a multimodal dataset of env transitions (uniform random policy by default)"
CONFIG = ConfigFlags(sections=("collect",), top_level=("name", "env_id", "env_kwargs"), short="collect")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="dataset directory to write (metadata.json, train.npz, val.npz)")
    parser.add_argument("--minari", default=None, metavar="DATASET_ID",
                        help="instead of --out: write a Minari dataset of whole episodes with this id (e.g. "
                             "gmc_rl/pendulum-sound-random-v0) into Minari's data directory ($MINARI_DATASETS_PATH or "
                             "~/.minari/datasets); needs pip install -e '.[minari]'")
    parser.add_argument("--update", "--overwrite", dest="update_dataset", action="store_true",
                        help="collect again when --out (or the --minari id) holds a dataset collected with other "
                             "settings, replacing it "
                             "(the pipeline's --update; without it such a dataset is refused)")
    parser.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                        help="hide the progress bar (as every command's --no-progress; --quiet is the old name)")


def run(args: argparse.Namespace) -> int:
    if (args.out is None) == (args.minari is None):
        raise ConfigError("give either --out DIR (gmc-rl's npz dataset) or --minari DATASET_ID (a Minari dataset)")
    if args.minari is not None:
        return _run_minari(args)
    from gmc_rl.collect import collect
    from gmc_rl.data import load_dataset

    path = collect(args.experiment, args.out, overwrite=args.update_dataset, progress=not args.no_progress)
    dataset = load_dataset(path)
    on_disk = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"{dataset!r}")
    n_train, n_val = len(dataset.train["rewards"]), len(dataset.val["rewards"])
    print(f"wrote {path}: {n_train} train + {n_val} validation transitions, "
          f"{on_disk / 1e6:.1f} MB on disk, {dataset.nbytes / 1e6:.1f} MB in memory")
    return 0


def _run_minari(args: argparse.Namespace) -> int:
    from gmc_rl.data import MINARI_PREFIX
    from gmc_rl.minari_data import collect_minari, dataset_path

    dataset = collect_minari(args.experiment, args.minari, overwrite=args.update_dataset, progress=not args.no_progress)
    path = dataset_path(args.minari)
    on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    print(f"wrote Minari dataset {args.minari!r} to {path}: {dataset.total_episodes} episodes, {dataset.total_steps} "
          f"steps, {on_disk / 1e6:.1f} MB on disk")
    print(f"pretrain on it with: gmc-rl pretrain --data {MINARI_PREFIX}{args.minari} --out DIR")
    return 0
