"""Pretrain the MUSE baseline on the dataset GMC is pretrained on, with the same epochs, batch size and lr.

The output directory has the layout of every pretraining run (GMC, MVAE), so they are interchangeable for
:func:`gmc_rl.agents.train_agent` and ``gmc-rl pipeline``::

    run.json                         what decides the weights; the directory rules (refuse, resume, lock) are those
                                     of every pretraining run (gmc_rl.pretraining_run)
    config.json, model.safetensors   the best weights by validation loss (see gmc_rl.muse.checkpoint)
    last/trainer_state.pt            resumable state (weights, optimiser, epoch, history, MUSE settings),
                                     weights-only torch.save
    history.json                     per-epoch train and validation losses and their terms
    tb/                              TensorBoard scalars (muse/train_loss, muse/val_loss, muse/top_kl_weight, ...)

The objective is :func:`gmc_rl.muse.model.muse_loss`. The top-level KL weight beta_T rises linearly to 1 over the
first ``MUSEConfig.top_kl_warmup`` (40 %) of the epochs, then stays 1. The validation loss is the full objective with
beta_T = 1 and a fixed noise seed, so epochs compare fairly. Shuffling and noise are seeded from (seed, epoch): a
resumed run continues exactly as an uninterrupted one would.

The MUSE settings (:class:`~gmc_rl.muse.model.MUSEConfig`: bottom latent sizes, loss weights) are not part of the
experiment config; :func:`pretrain_muse` takes them as an argument (default: the authors' pendulum values) and keeps
them in the resumable state, so a resume with other settings is refused.
"""

from __future__ import annotations

import dataclasses
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
from gmc_rl.muse.checkpoint import WEIGHTS_FILE, save_muse
from gmc_rl.muse.model import MUSEConfig, MUSEModel, muse_loss, top_kl_weight
from gmc_rl.pretraining_run import LAST_DIR, open_pretraining_run
from gmc_rl.progress import progress_bar
from gmc_rl.vae_epochs import train_epoch, validation_loss

HISTORY_FILE = "history.json"
TB_DIR = "tb"


def _loss(model: Any, weight: float, batch: dict[str, torch.Tensor],
          generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """The MUSE objective of a batch with the KL weight ``weight`` (1 for validation)."""
    return muse_loss(model, batch, top_kl=weight, generator=generator)


def pretrain_muse(
    config: ExperimentConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resume: bool = False,
    *,
    progress: bool = True,
    muse: MUSEConfig | None = None,
) -> Path:
    """Train MUSE on the dataset in ``data_dir``; write the best checkpoint to ``out_dir`` and return it.

    Uses ``config.pretrain`` (epochs, batch_size, lr, checkpoint_every, seed, device) and ``config.pretrain.model``
    (same encoders as GMC; its ``latent_dim`` is the size of the top latent the controller reads). ``muse`` holds the
    bottom latent sizes and loss weights (default :class:`~gmc_rl.muse.model.MUSEConfig`).

    Raises:
        DatasetError: the dataset is missing or damaged.
        ConfigError: the dataset was collected on another env than ``config.env_id``, the batch size exceeds the
            training split, ``out_dir`` is not a fresh or resumable run directory for these settings (the rules of
            :mod:`gmc_rl.pretraining_run`, shared with GMC and MVAE pretraining), or a resumed run was made with
            other ``muse`` settings.
        CheckpointError: the resume state is damaged.
    """
    dataset = load_dataset(data_dir)
    with open_pretraining_run(config, dataset, data_dir, out_dir, resume, verbose=progress) as state:
        return _train(config, dataset, Path(data_dir), Path(out_dir), state, progress,
                      muse if muse is not None else MUSEConfig())


def _train(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, out_dir: Path,
           state: dict[str, Any] | None, progress: bool, muse: MUSEConfig) -> Path:
    """The epochs of :func:`pretrain_muse` (from ``state`` when resuming), run while it owns ``out_dir``."""
    settings = config.pretrain
    last = out_dir / LAST_DIR
    device = resolve_device(settings.device)
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(settings.seed)
        model = MUSEModel(dataset.specs, settings.model, dataset.normalization, muse)
    model.to(device)
    muse_settings = dataclasses.asdict(model.muse)  # with the resolved bottom latent sizes
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    start_epoch, best_val, best_epoch, history = 0, math.inf, -1, []
    if state is not None:
        if state.get("muse") != muse_settings:
            raise ConfigError(
                f"{out_dir} holds a MUSE run made with other MUSE settings ({state.get('muse')} there, "
                f"{muse_settings} now); it is not overwritten: resume with the same settings or choose another --out"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_val, best_epoch = int(state["epoch"]), float(state["best_val"]), int(state["best_epoch"])
        history = list(state["history"])
        if start_epoch >= settings.epochs and (out_dir / WEIGHTS_FILE).is_file():
            return out_dir

    provenance: dict[str, Any] = {
        "kind": "muse",
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
    batch_size = settings.batch_size  # at most the training split (checked by open_pretraining_run)
    bar = progress_bar(settings.epochs - start_epoch, "MUSE pretraining", "epoch", enabled=progress)
    try:
        for epoch in range(start_epoch, settings.epochs):
            began = time.perf_counter()
            beta = top_kl_weight(epoch, settings.epochs, model.muse.top_kl_warmup)
            rng = np.random.default_rng([settings.seed, epoch])
            generator = torch.Generator(device="cpu").manual_seed(settings.seed * 1_000_003 + epoch)
            train_loss, parts = train_epoch(model, optimizer, train, names, rng.permutation(n_train), batch_size,
                                            partial(_loss, model, beta), generator)
            val_loss = (validation_loss(model, val, names, batch_size, partial(_loss, model, 1.0))
                        if len(val[names[0]]) else train_loss)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise ConfigError(f"MUSE loss became non-finite at epoch {epoch + 1} (train {train_loss}, val "
                                  f"{val_loss}); lower pretrain.lr (--lr)")
            record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "top_kl_weight": beta,
                      "seconds": time.perf_counter() - began, **parts}
            history.append(record)
            writer.add_scalar("muse/train_loss", train_loss, epoch + 1)
            writer.add_scalar("muse/val_loss", val_loss, epoch + 1)
            writer.add_scalar("muse/top_kl_weight", beta, epoch + 1)
            for key, value in parts.items():
                writer.add_scalar(f"muse/{key}", value, epoch + 1)
            if val_loss < best_val:
                best_val, best_epoch = val_loss, epoch + 1
                save_muse(model, out_dir, {**provenance, "epoch": best_epoch, "val_loss": best_val})
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
                    "muse": muse_settings,
                })
            bar.set_postfix(train=f"{train_loss:.1f}", val=f"{val_loss:.1f}", best=best_epoch)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return out_dir
