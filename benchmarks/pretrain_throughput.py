"""Benchmark of the GMC core on an experiment config: dataset size, training throughput, time to alignment.

Measures, for the config's env (PendulumSound by default):

1. collection: time, dataset size on disk and in memory (arrays of both splits);
2. pretraining throughput of the config's model: samples/s of full training steps (forward, GMC loss, backward,
   Adam) on batches of ``pretrain.batch_size``, after a warm-up;
3. unless ``--no-train``: a real :func:`gmc_rl.pretrain.pretrain` run with the config, printing per epoch the
   cumulative training seconds and the per-modality validation retrieval@1 (shuffled batches of
   ``pretrain.batch_size``), and the first epoch at which every modality reaches ``--target``.

Timings depend on the machine and on what else runs on it; the script prints the thread count and the load
average before and after so that numbers can be read in context.

Usage:
    python benchmarks/pretrain_throughput.py --config experiments/pendulum_sound.yaml --threads 2
    python benchmarks/pretrain_throughput.py --data runs/pendulum/data --no-train
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gmc_rl.collect import collect  # noqa: E402
from gmc_rl.config import ExperimentConfig, load_config  # noqa: E402
from gmc_rl.data import load_dataset  # noqa: E402
from gmc_rl.loss import gmc_loss  # noqa: E402
from gmc_rl.model import GMCModel  # noqa: E402
from gmc_rl.pretrain import pretrain  # noqa: E402


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure_throughput(config: ExperimentConfig, dataset, batches: int, warmup: int = 3) -> float:
    """Samples/s of complete training steps of the config's model on the dataset's training split."""
    settings = config.pretrain
    torch.manual_seed(settings.seed)
    model = GMCModel(dataset.specs, settings.model, dataset.normalization)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    train = {name: torch.from_numpy(dataset.train[name]) for name in model.modalities}
    n = len(train[model.modalities[0]])
    generator = torch.Generator().manual_seed(0)
    started = 0.0
    for step in range(warmup + batches):
        if step == warmup:
            started = time.perf_counter()
        index = torch.randint(0, n, (settings.batch_size,), generator=generator)
        latents, joint = model.latents({name: value[index] for name, value in train.items()})
        loss = gmc_loss(list(latents.values()), joint, settings.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batches * settings.batch_size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/pendulum_sound.yaml", help="experiment YAML")
    parser.add_argument("--data", default=None, help="existing dataset (default: collect config.collect.steps)")
    parser.add_argument("--out", default=None, help="pretraining output directory (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--batches", type=int, default=20, help="timed training steps for the throughput")
    parser.add_argument("--epochs", type=int, default=None, help="override pretrain.epochs for the training run")
    parser.add_argument("--target", type=float, default=0.8, help="retrieval@1 every modality must reach")
    parser.add_argument("--no-train", action="store_true", help="skip the full pretraining run")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.epochs is not None:
        config.pretrain.epochs = args.epochs
    print(f"config {args.config}: env {config.env_id}; torch threads {torch.get_num_threads()}; "
          f"cpu count {os.cpu_count()}; load average {_load()}")
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(args.data) if args.data else Path(scratch) / "data"
        if not args.data:
            started = time.perf_counter()
            collect(config, data_dir, progress=False)
            print(f"collect: {config.collect.steps} transitions in {time.perf_counter() - started:.1f} s "
                  f"({config.collect.n_envs} envs)")
        dataset = load_dataset(data_dir)
        disk = sum(f.stat().st_size for f in data_dir.iterdir() if f.is_file())
        print(f"dataset: {len(dataset)} transitions ({len(dataset.train['rewards'])} train, "
              f"{len(dataset.val['rewards'])} val); {disk / 1e6:.1f} MB on disk; "
              f"{dataset.nbytes / 1e6:.1f} MB in memory")

        rate = measure_throughput(config, dataset, args.batches)
        n_train = len(dataset.train["rewards"])
        print(f"throughput: {rate:.0f} samples/s (batch {config.pretrain.batch_size}, {args.batches} timed steps); "
              f"{n_train / rate:.1f} s per epoch of {n_train}; load average {_load()}")
        if args.no_train:
            return 0

        out = Path(args.out) if args.out else Path(scratch) / "gmc"
        started = time.perf_counter()
        pretrain(config, data_dir, out, progress=False)
        wall = time.perf_counter() - started
        history = json.loads((out / "history.json").read_text())
        cumulative, reached = 0.0, None
        print("epoch  train_s_cum  val_loss  " + "  ".join(f"r@1_{m}" for m in dataset.modalities))
        for row in history:
            cumulative += row["train_seconds"]
            r1 = [row[f"align/retrieval@1_{m}"] for m in dataset.modalities]
            print(f"{row['epoch']:5d}  {cumulative:11.1f}  {row['loss/val_total']:8.4f}  "
                  + "  ".join(f"{v:.3f}".rjust(5 + len(m)) for v, m in zip(r1, dataset.modalities)))
            if reached is None and min(r1) >= args.target:
                reached = (row["epoch"], cumulative)
        print(f"pretrain wall time {wall:.1f} s for {len(history)} epochs (incl. validation); load average {_load()}")
        if reached:
            print(f"every modality reached retrieval@1 >= {args.target} at epoch {reached[0]} "
                  f"after {reached[1]:.1f} s of training")
        else:
            print(f"retrieval@1 >= {args.target} was not reached for every modality in {len(history)} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
