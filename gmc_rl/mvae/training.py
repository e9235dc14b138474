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

import os
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gmc_rl.checkpoint import resolve_device
from gmc_rl.config import ExperimentConfig
from gmc_rl.data import MultimodalDataset
from gmc_rl.mvae.checkpoint import save_mvae
from gmc_rl.mvae.model import MVAEModel, mvae_loss
from gmc_rl.pretraining_setup import run_pretraining, seeded
from gmc_rl.vae_epochs import VAERun, fit


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
    return run_pretraining(_train, "mvae", config, data_dir, out_dir, resume, progress)


def _train(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, out_dir: Path,
           state: dict[str, Any] | None, progress: bool) -> Path:
    """The epochs of :func:`pretrain_mvae` (from ``state`` when resuming), run while it owns ``out_dir``."""
    settings = config.pretrain
    model = seeded(settings.seed, lambda: MVAEModel(dataset.specs, settings.model, dataset.normalization))
    model.to(resolve_device(settings.device))
    run = VAERun(kind="mvae", weight_name="beta", weight_of=lambda epoch: kl_weight(epoch, settings.epochs),
                 loss_of=lambda weight: partial(_loss, model, weight), save=save_mvae)
    return fit(run, model, config, dataset, data_dir, out_dir, state, progress)
