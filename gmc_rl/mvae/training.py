"""Pretrain the MVAE baseline on the dataset GMC is pretrained on, with the same epochs, batch size and lr.

The output directory has the layout of a GMC pretraining run, so the two are interchangeable for
:func:`gmc_rl.agents.train_agent` and ``gmc-rl pipeline``::

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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gmc_rl.mvae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_mvae
from gmc_rl.mvae.model import MVAEModel, mvae_loss
from gmc_rl import __version__
from gmc_rl.checkpoint import load_training_state, resolve_device, save_training_state
from gmc_rl.config import ExperimentConfig, config_hash, to_dict
from gmc_rl.data import load_dataset
from gmc_rl.errors import CheckpointError, ConfigError, DatasetError
from gmc_rl.io import ensure_writable_dir, write_json_atomic

LAST_DIR = "last"
HISTORY_FILE = "history.json"
TB_DIR = "tb"
VAL_NOISE_SEED = 12345


def kl_weight(epoch: int, epochs: int) -> float:
    """beta of epoch ``epoch`` (0-based): linear warm-up over the first ``max(1, epochs // 5)`` epochs."""
    warmup = max(1, epochs // 5)
    return min(1.0, (epoch + 1) / warmup)


def _batches(arrays: dict[str, np.ndarray], names: list[str], order: np.ndarray, batch_size: int):
    for start in range(0, len(order), batch_size):
        rows = np.sort(order[start:start + batch_size])
        yield {name: torch.from_numpy(np.ascontiguousarray(arrays[name][rows])) for name in names}


def _evaluate(model: MVAEModel, arrays: dict[str, np.ndarray], batch_size: int) -> float:
    """Validation objective (beta = 1, fixed noise), averaged over samples."""
    names = model.modalities
    n = len(arrays[names[0]])
    generator = torch.Generator(device="cpu").manual_seed(VAL_NOISE_SEED)
    total = 0.0
    model.eval()
    with torch.no_grad():
        for batch in _batches(arrays, names, np.arange(n), batch_size):
            loss, _ = mvae_loss(model, batch, beta=1.0, generator=generator)
            total += float(loss) * len(batch[names[0]])
    return total / max(n, 1)


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
        ConfigError: the dataset was collected on another env than ``config.env_id``, or ``out_dir`` already holds
            an MVAE run and ``resume`` is False.
        CheckpointError: the resume state is damaged or belongs to a different config.
    """
    settings = config.pretrain
    dataset = load_dataset(data_dir)
    if dataset.env_id != config.env_id:
        raise ConfigError(
            f"dataset {data_dir} was collected on {dataset.env_id!r}, but the config's env_id is {config.env_id!r}; "
            f"pass --env {dataset.env_id} or the matching --config"
        )
    out_dir = Path(out_dir)
    last = out_dir / LAST_DIR
    if not resume and ((out_dir / CONFIG_FILE).exists() or last.exists()):
        raise ConfigError(f"{out_dir} already holds an MVAE run; pass resume=True (--resume) or choose a new directory")
    ensure_writable_dir(out_dir, "MVAE output directory")
    device = resolve_device(settings.device)
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(settings.seed)
        model = MVAEModel(dataset.specs, settings.model, dataset.normalization)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    # What a resumed run must share with the interrupted one (epochs may grow, device and save interval may change).
    fixed = {k: v for k, v in to_dict(settings).items() if k not in ("epochs", "checkpoint_every", "device")}
    identity = {"pretrain": fixed, "env_id": config.env_id, "dataset": dataset.metadata.get("files", {})}
    start_epoch, best_val, best_epoch, history = 0, math.inf, -1, []

    if resume and (last / "trainer_state.pt").is_file():
        state = load_training_state(last)
        if state.get("identity_hash") != config_hash(identity):
            raise CheckpointError(
                f"{last} was written with different pretraining settings or dataset; train into a new directory"
            )
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
    if n_train == 0:
        raise DatasetError(f"dataset {data_dir} has an empty training split")
    batch_size = min(settings.batch_size, n_train)
    epochs = tqdm(range(start_epoch, settings.epochs), desc="MVAE pretraining", unit="epoch",
                  initial=start_epoch, total=settings.epochs, disable=not progress)
    try:
        for epoch in epochs:
            began = time.perf_counter()
            beta = kl_weight(epoch, settings.epochs)
            rng = np.random.default_rng([settings.seed, epoch])
            generator = torch.Generator(device="cpu").manual_seed(settings.seed * 1_000_003 + epoch)
            model.train()
            total, parts, count = 0.0, {}, 0
            for batch in _batches(train, names, rng.permutation(n_train), batch_size):
                loss, logs = mvae_loss(model, batch, beta=beta, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                size = len(batch[names[0]])
                total += float(loss.detach()) * size
                count += size
                for key, value in logs.items():
                    parts[key] = parts.get(key, 0.0) + value * size
            train_loss = total / count
            val_loss = _evaluate(model, val, batch_size) if len(val[names[0]]) else train_loss
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise ConfigError(f"MVAE loss became non-finite at epoch {epoch + 1} (train {train_loss}, val "
                                  f"{val_loss}); lower pretrain.lr (--lr)")
            record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "beta": beta,
                      "seconds": time.perf_counter() - began, **{k: v / count for k, v in parts.items()}}
            history.append(record)
            writer.add_scalar("mvae/train_loss", train_loss, epoch + 1)
            writer.add_scalar("mvae/val_loss", val_loss, epoch + 1)
            writer.add_scalar("mvae/beta", beta, epoch + 1)
            for key, value in parts.items():
                writer.add_scalar(f"mvae/{key}", value / count, epoch + 1)
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
                    "identity_hash": config_hash(identity),
                })
            epochs.set_postfix(train=f"{train_loss:.1f}", val=f"{val_loss:.1f}", best=best_epoch)
    finally:
        writer.close()
    return out_dir
