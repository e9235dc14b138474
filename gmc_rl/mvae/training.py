"""Pretrain the MVAE baseline on the dataset GMC is pretrained on, with the same epochs, batch size and lr.

The output directory has the layout of a GMC pretraining run, so the two are interchangeable for
:func:`gmc_rl.agents.train_agent` and ``gmc-rl pipeline``::

    run.json                         what decides the weights; the directory rules (refuse, resume, lock) are those
                                     of every pretraining run (gmc_rl.pretraining_run)
    config.json, model.safetensors   the best weights by validation loss (see gmc_rl.mvae.checkpoint)
    last/trainer_state.pt            resumable state (weights, optimiser, epoch, history), weights-only torch.save
    history.json                     per-epoch train and validation losses
    tb/                              TensorBoard scalars (mvae/train_loss, mvae/val_loss, mvae/beta, ...)

The KL weight beta is annealed linearly from 1/A to 1 over the first A = max(1, epochs // 5) epochs (the MVAE
paper anneals it as well), then stays 1. The validation loss is the full objective with beta = 1 and a fixed noise
seed, so epochs compare fairly. Shuffling and noise are seeded from (seed, epoch): a resumed run continues exactly as
an uninterrupted one would.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmc_rl import __version__
from gmc_rl.checkpoint import resolve_device, save_training_state
from gmc_rl.config import ExperimentConfig
from gmc_rl.data import MultimodalDataset, load_dataset
from gmc_rl.errors import ConfigError
from gmc_rl.io import write_json_atomic
from gmc_rl.mvae.checkpoint import WEIGHTS_FILE, save_mvae
from gmc_rl.mvae.model import MVAEModel, mvae_loss
from gmc_rl.pretraining_run import LAST_DIR, open_pretraining_run
from gmc_rl.progress import progress_bar
from gmc_rl.vae_epochs import train_epoch, validation_loss

HISTORY_FILE = "history.json"
TB_DIR = "tb"


def kl_weight(epoch: int, epochs: int) -> float:
    """beta of epoch ``epoch`` (0-based): linear warm-up over the first ``max(1, epochs // 5)`` epochs."""
    warmup = max(1, epochs // 5)
    return min(1.0, (epoch + 1) / warmup)


def _loss(model: Any, weight: float, batch: dict[str, torch.Tensor],
          generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """The MVAE objective of a batch with the KL weight ``weight`` (1 for validation)."""
    return mvae_loss(model, batch, beta=weight, generator=generator)


def pretrain_mvae(
    config: ExperimentConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resume: bool = False,
    *,
    progress: bool = True,
) -> Path:
    """Train the MVAE on the dataset in ``data_dir``; write the best checkpoint to ``out_dir`` and return it.

    Uses ``config.pretrain`` (epochs, batch_size, lr, checkpoint_every, seed, device) and
    ``config.pretrain.model`` (same encoders and latent size as GMC).

    Raises:
        DatasetError: the dataset is missing or damaged.
        ConfigError: the dataset was collected on another env than ``config.env_id``, the batch size exceeds the
            training split, or ``out_dir`` is not a fresh or resumable run directory for these settings (the
            rules of :mod:`gmc_rl.pretraining_run`, shared with GMC pretraining).
        CheckpointError: the resume state is damaged.
    """
    dataset = load_dataset(data_dir)
    with open_pretraining_run(config, dataset, data_dir, out_dir, resume, verbose=progress) as state:
        return _train(config, dataset, Path(data_dir), Path(out_dir), state, progress)


def _train(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, out_dir: Path,
           state: dict[str, Any] | None, progress: bool) -> Path:
    """The epochs of :func:`pretrain_mvae` (from ``state`` when resuming), run while it owns ``out_dir``."""
    settings = config.pretrain
    last = out_dir / LAST_DIR
    device = resolve_device(settings.device)
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(settings.seed)
        model = MVAEModel(dataset.specs, settings.model, dataset.normalization)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    start_epoch, best_val, best_epoch, history = 0, math.inf, -1, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_val, best_epoch = int(state["epoch"]), float(state["best_val"]), int(state["best_epoch"])
        history = list(state["history"])
        if start_epoch >= settings.epochs and (out_dir / WEIGHTS_FILE).is_file():
            return out_dir

    provenance: dict[str, Any] = {
        "kind": "mvae",
        "env_id": config.env_id,
        "env_kwargs": config.env_kwargs,
        "dataset": str(Path(data_dir)),
        "dataset_files": dataset.metadata.get("files", {}),
        "seed": settings.seed,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "gmc_rl_version": __version__,
    }
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / TB_DIR))
    names = model.modalities
    train = {name: dataset.train[name] for name in names}
    val = {name: dataset.val[name] for name in names}
    n_train = len(train[names[0]])
    batch_size = settings.batch_size  # at most the training split (checked by pretrain_mvae)
    bar = progress_bar(settings.epochs - start_epoch, "MVAE pretraining", "epoch", enabled=progress)
    try:
        for epoch in range(start_epoch, settings.epochs):
            began = time.perf_counter()
            beta = kl_weight(epoch, settings.epochs)
            rng = np.random.default_rng([settings.seed, epoch])
            generator = torch.Generator(device="cpu").manual_seed(settings.seed * 1_000_003 + epoch)
            train_loss, parts = train_epoch(model, optimizer, train, names, rng.permutation(n_train), batch_size,
                                            partial(_loss, model, beta), generator)
            val_loss = (validation_loss(model, val, names, batch_size, partial(_loss, model, 1.0))
                        if len(val[names[0]]) else train_loss)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise ConfigError(f"MVAE loss became non-finite at epoch {epoch + 1} (train {train_loss}, val "
                                  f"{val_loss}); lower pretrain.lr (--lr)")
            record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "beta": beta,
                      "seconds": time.perf_counter() - began, **parts}
            history.append(record)
            writer.add_scalar("mvae/train_loss", train_loss, epoch + 1)
            writer.add_scalar("mvae/val_loss", val_loss, epoch + 1)
            writer.add_scalar("mvae/beta", beta, epoch + 1)
            for key, value in parts.items():
                writer.add_scalar(f"mvae/{key}", value, epoch + 1)
            if val_loss < best_val:
                best_val, best_epoch = val_loss, epoch + 1
                save_mvae(model, out_dir, {**provenance, "epoch": best_epoch, "val_loss": best_val})
            write_json_atomic(out_dir / HISTORY_FILE, {"history": history, "best_epoch": best_epoch,
                                                       "best_val_loss": best_val})
            finished = epoch + 1 == settings.epochs
            if finished or (epoch + 1) % settings.checkpoint_every == 0:
                save_training_state(last, {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "history": history,
                })
            bar.set_postfix(train=f"{train_loss:.1f}", val=f"{val_loss:.1f}", best=best_epoch)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return out_dir
