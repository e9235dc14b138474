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
first ``pretrain.muse.top_kl_warmup`` (40 %) of the epochs, then stays 1. The validation loss is the full objective with
beta_T = 1 and a fixed noise seed, so epochs compare fairly. Shuffling and noise are seeded from (seed, epoch): a
resumed run continues exactly as an uninterrupted one would.

The MUSE settings (:class:`~gmc_rl.config.MUSEConfig`: bottom latent sizes, loss weights) are the config section
``pretrain.muse`` (default: the authors' pendulum values); :func:`pretrain_muse` also takes them as an argument, which
then replaces that section. They are part of the run's identity when they differ from the defaults
(:func:`gmc_rl.config.pretrain_identity`) and are kept in the resumable state, so a resume with other settings is
refused (also for a run made before the section existed, whose ``run.json`` does not record them).
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gmc_rl.checkpoint import resolve_device
from gmc_rl.config import ExperimentConfig, MUSEConfig
from gmc_rl.data import MultimodalDataset
from gmc_rl.errors import ConfigError
from gmc_rl.muse.checkpoint import save_muse
from gmc_rl.muse.model import MUSEModel, muse_loss, top_kl_weight
from gmc_rl.pretraining_setup import run_pretraining, seeded
from gmc_rl.vae_epochs import VAERun, fit


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

    Uses ``config.pretrain`` (epochs, batch_size, lr, checkpoint_every, seed, device), ``config.pretrain.model``
    (same encoders as GMC; its ``latent_dim`` is the size of the top latent the controller reads) and
    ``config.pretrain.muse`` (bottom latent sizes and loss weights). An explicit ``muse`` wins over
    ``config.pretrain.muse``: the run is made, recorded (``run.json``) and checked on resume as if the config held it.

    Raises:
        DatasetError: the dataset is missing or damaged.
        ConfigError: the dataset was collected on another env than ``config.env_id``, the batch size exceeds the
            training split, ``out_dir`` is not a fresh or resumable run directory for these settings (the rules of
            :mod:`gmc_rl.pretraining_run`, shared with GMC and MVAE pretraining), or a resumed run was made with
            other ``muse`` settings.
        CheckpointError: the resume state is damaged.
    """
    if muse is not None:
        config = dataclasses.replace(config, pretrain=dataclasses.replace(config.pretrain, muse=muse))
    return run_pretraining(_train, "muse", config, data_dir, out_dir, resume, progress)


def _train(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, out_dir: Path,
           state: dict[str, Any] | None, progress: bool) -> Path:
    """The epochs of :func:`pretrain_muse` (from ``state`` when resuming), run while it owns ``out_dir``."""
    settings = config.pretrain
    model = seeded(settings.seed, lambda: MUSEModel(dataset.specs, settings.model, dataset.normalization,
                                                    settings.muse))
    model.to(resolve_device(settings.device))
    muse_settings = dataclasses.asdict(model.muse)  # with the resolved bottom latent sizes
    if state is not None and state.get("muse") != muse_settings:
        raise ConfigError(
            f"{out_dir} holds a MUSE run made with other MUSE settings ({state.get('muse')} there, "
            f"{muse_settings} now); it is not overwritten: resume with the same pretrain.muse settings or choose "
            "another --out"
        )
    run = VAERun(kind="muse", weight_name="top_kl_weight",
                 weight_of=lambda epoch: top_kl_weight(epoch, settings.epochs, model.muse.top_kl_warmup),
                 loss_of=lambda weight: partial(_loss, model, weight), save=save_muse,
                 extra_state={"muse": muse_settings})
    return fit(run, model, config, dataset, data_dir, out_dir, state, progress)
