"""Why a modality latent stays away from the complete latent: too little fitting, or what the modality cannot know?

The modality fit (``pretrain.modality_fit_epochs``) trains each modality encoder to reproduce the complete latent.
When a modality's validation cosine stays low after it (CartPoleSensors' image at about 0.90), two measurements
tell the causes apart:

- **More fitting** (``--epochs``): continue the fit on a copy of the encoder in steps of ``--step`` epochs and print
  each modality's cosine on the training and the validation split after each step. A cosine that keeps rising is
  under-fitted; one that is flat, and as low on the training split as on the validation split, has reached what
  this encoder can get from that modality.
- **What the complete latent holds that no single modality can** (``--perturb``): add Gaussian noise of
  ``--noise`` times each feature's standard deviation (over the validation split) to one modality and print the
  mean cosine between the complete latents before and after. A complete latent that moves when only one sensor's
  noise is redrawn encodes that noise, which the other modalities cannot predict.

Example::

    OMP_NUM_THREADS=1 python experiments/modality_gap.py RUN/gmc RUN/data --epochs 20 --perturb joints \\
        --noise 0.05 0.1 --json gap.json
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gmc_rl.checkpoint import load_gmc
from gmc_rl.data import load_dataset
from gmc_rl.io import write_json_atomic
from gmc_rl.modality_fit import fit_modality_encoders, modality_cosines
from gmc_rl.model import GMCModel

TRAIN_ROWS = 4000
"""Rows of the training split on which the training cosine is measured (a fixed first slice)."""


def fitting_curve(model: GMCModel, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor], epochs: int,
                  step: int, batch_size: int, lr: float) -> list[dict[str, Any]]:
    """Cosines per modality on both splits before and after each ``step`` epochs of further fitting."""
    model = copy.deepcopy(model)
    head = {name: array[:TRAIN_ROWS] for name, array in train.items()}
    rows = [{"epochs": 0, "val": modality_cosines(model, val), "train": modality_cosines(model, head)}]
    print(rows[-1], flush=True)
    for index in range(epochs // step):
        report = fit_modality_encoders(model, train, val, step, batch_size, lr, seed=index, progress=False)
        rows.append({"epochs": step * (index + 1), "val": report.cosine_after,
                     "train": modality_cosines(model, head), "train_loss": report.train_loss[-1]})
        print(rows[-1], flush=True)
    return rows


def noise_sensitivity(model: GMCModel, val: dict[str, np.ndarray], modality: str, scales: Sequence[float],
                      seed: int = 0) -> dict[str, float]:
    """Mean cosine between the complete latents of ``val`` and of ``val`` with ``modality`` perturbed, per scale."""
    rng = np.random.default_rng(seed)
    values = val[modality].astype(np.float32)
    spread = values.std(axis=0)
    with torch.no_grad():
        complete = model.encode(val)
        out = {}
        for scale in scales:
            noisy = values + rng.normal(0.0, 1.0, values.shape).astype(np.float32) * spread * scale
            dtype = val[modality].dtype
            if np.issubdtype(dtype, np.integer):  # an image: stay within its pixel range, whole values
                limits = np.iinfo(dtype)
                noisy = np.clip(np.rint(noisy), limits.min, limits.max)
            moved = model.encode({**val, modality: noisy.astype(dtype)})
            out[str(scale)] = float((complete * moved).sum(dim=1).mean())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("encoder", help="a GMC checkpoint directory (a run's gmc/)")
    parser.add_argument("data", help="the dataset it was pretrained on (a run's data/)")
    parser.add_argument("--epochs", type=int, default=20, help="further fit epochs in all (default 20)")
    parser.add_argument("--step", type=int, default=5, help="epochs between two measurements (default 5)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="the fit's learning rate (the pipeline's: 1e-3)")
    parser.add_argument("--perturb", nargs="*", default=[], help="modalities whose noise is redrawn")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.1],
                        help="noise scales, in standard deviations of each feature (default 0.05 0.1)")
    parser.add_argument("--rows", type=int, default=2000, help="validation rows for the noise test (default 2000)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_gmc(args.encoder)
    dataset = load_dataset(args.data)
    val_np = {name: array[: args.rows] for name, array in dataset.observations("val").items()}
    results: dict[str, Any] = {"encoder": args.encoder, "noise": {}}
    for modality in args.perturb:
        results["noise"][modality] = noise_sensitivity(model, val_np, modality, args.noise)
        print(f"{modality} perturbed: mean cosine of the complete latent to its own {results['noise'][modality]}")
    if args.epochs:
        train = {name: torch.from_numpy(array) for name, array in dataset.observations("train").items()}
        val = {name: torch.from_numpy(array) for name, array in dataset.observations("val").items()}
        results["fitting"] = fitting_curve(model, train, val, args.epochs, args.step, args.batch_size, args.lr)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
