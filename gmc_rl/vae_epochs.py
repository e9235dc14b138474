"""The epoch of the variational baselines (MVAE, MUSE): shuffled batches, one optimiser step per batch, the mean
loss and its logged parts, and a validation objective with fixed noise, so that epochs compare fairly.

A method supplies only ``loss_of(batch, generator) -> (loss, {name: value})``; the MVAE passes its KL weight, MUSE
its top-level KL weight. Shuffling and noise are seeded from (seed, epoch) by the callers, so a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmc_rl import __version__
from gmc_rl.checkpoint import WEIGHTS_FILE, save_training_state
from gmc_rl.config import ExperimentConfig
from gmc_rl.data import MultimodalDataset
from gmc_rl.errors import ConfigError
from gmc_rl.io import write_json_atomic
from gmc_rl.pretraining_run import LAST_DIR
from gmc_rl.progress import progress_bar

HISTORY_FILE = "history.json"
TB_DIR = "tb"

VAL_NOISE_SEED = 12345
"""Seed of the noise of every validation pass."""

LossOf = Callable[[dict[str, torch.Tensor], torch.Generator], tuple[torch.Tensor, Mapping[str, float]]]


def batches(arrays: Mapping[str, np.ndarray], names: list[str], order: np.ndarray,
            batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of ``arrays`` in the row order ``order`` (rows sorted within a batch, for faster indexing)."""
    for start in range(0, len(order), batch_size):
        rows = np.sort(order[start:start + batch_size])
        yield {name: torch.from_numpy(np.ascontiguousarray(arrays[name][rows])) for name in names}


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, arrays: Mapping[str, np.ndarray],
                names: list[str], order: np.ndarray, batch_size: int, loss_of: LossOf,
                generator: torch.Generator) -> tuple[float, dict[str, float]]:
    """One pass over ``arrays`` in ``order``; return the mean loss and the mean of each logged part (per sample)."""
    model.train()
    total, count = 0.0, 0
    parts: dict[str, float] = {}
    for batch in batches(arrays, names, order, batch_size):
        loss, logs = loss_of(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        size = len(batch[names[0]])
        total += float(loss.detach()) * size
        count += size
        for key, value in logs.items():
            parts[key] = parts.get(key, 0.0) + value * size
    return total / count, {key: value / count for key, value in parts.items()}


def validation_loss(model: torch.nn.Module, arrays: Mapping[str, np.ndarray], names: list[str], batch_size: int,
                    loss_of: LossOf) -> float:
    """The objective on ``arrays`` (in order, noise seeded with :data:`VAL_NOISE_SEED`), averaged over samples."""
    n = len(arrays[names[0]])
    generator = torch.Generator(device="cpu").manual_seed(VAL_NOISE_SEED)
    total = 0.0
    model.eval()
    with torch.no_grad():
        for batch in batches(arrays, names, np.arange(n), batch_size):
            loss, _ = loss_of(batch, generator)
            total += float(loss) * len(batch[names[0]])
    return total / max(n, 1)



@dataclass
class VAERun:
    """What one variational baseline's pretraining differs in; :func:`fit` does the rest."""

    kind: str
    """Method name: the TensorBoard prefix, the progress label and the checkpoint's ``kind``."""
    weight_name: str
    """Name of the per-epoch KL weight in the history and TensorBoard (``beta``, ``top_kl_weight``)."""
    weight_of: Callable[[int], float]
    """The KL weight of epoch ``epoch`` (0-based)."""
    loss_of: Callable[[float], LossOf]
    """The batch objective with a given KL weight (1 for validation)."""
    save: Callable[[Any, Path, dict[str, Any]], Any]
    """Save the model as a checkpoint with the given provenance."""
    extra_state: dict[str, Any] = field(default_factory=dict)
    """Entries stored in every resume state beside the weights (e.g. the model's own settings)."""


def fit(run: VAERun, model: torch.nn.Module, config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path,
        out_dir: Path, state: dict[str, Any] | None, progress: bool) -> Path:
    """Train ``model`` with Adam for ``config.pretrain.epochs`` (from ``state`` when resuming) into ``out_dir``:
    the best model by validation loss, ``last/`` every ``checkpoint_every`` epochs and at the end, ``history.json``
    and TensorBoard scalars. The caller owns ``out_dir`` (:func:`gmc_rl.pretraining_run.open_pretraining_run`)."""
    from torch.utils.tensorboard import SummaryWriter

    settings = config.pretrain
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
        "kind": run.kind, "env_id": config.env_id, "env_kwargs": config.env_kwargs, "dataset": str(data_dir),
        "dataset_files": dataset.metadata.get("files", {}), "seed": settings.seed, "epochs": settings.epochs,
        "batch_size": settings.batch_size, "lr": settings.lr, "gmc_rl_version": __version__,
    }
    names = list(dataset.specs)
    train = {name: dataset.train[name] for name in names}
    val = {name: dataset.val[name] for name in names}
    n_train = len(train[names[0]])
    writer = SummaryWriter(str(out_dir / TB_DIR))
    bar = progress_bar(settings.epochs - start_epoch, f"{run.kind.upper()} pretraining", "epoch", enabled=progress)
    try:
        for epoch in range(start_epoch, settings.epochs):
            began = time.perf_counter()
            weight = run.weight_of(epoch)
            order = np.random.default_rng([settings.seed, epoch]).permutation(n_train)
            generator = torch.Generator(device="cpu").manual_seed(settings.seed * 1_000_003 + epoch)
            train_loss, parts = train_epoch(model, optimizer, train, names, order, settings.batch_size,
                                            run.loss_of(weight), generator)
            val_loss = (validation_loss(model, val, names, settings.batch_size, run.loss_of(1.0))
                        if len(val[names[0]]) else train_loss)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise ConfigError(f"{run.kind.upper()} loss became non-finite at epoch {epoch + 1} (train "
                                  f"{train_loss}, val {val_loss}); lower pretrain.lr (--lr)")
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                            run.weight_name: weight, "seconds": time.perf_counter() - began, **parts})
            for key, value in {"train_loss": train_loss, "val_loss": val_loss, run.weight_name: weight,
                               **parts}.items():
                writer.add_scalar(f"{run.kind}/{key}", value, epoch + 1)
            if val_loss < best_val:
                best_val, best_epoch = val_loss, epoch + 1
                run.save(model, out_dir, {**provenance, "epoch": best_epoch, "val_loss": best_val})
            write_json_atomic(out_dir / HISTORY_FILE, {"history": history, "best_epoch": best_epoch,
                                                       "best_val_loss": best_val})
            if epoch + 1 == settings.epochs or (epoch + 1) % settings.checkpoint_every == 0:
                save_training_state(out_dir / LAST_DIR, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                    "best_val": best_val, "best_epoch": best_epoch, "history": history, **run.extra_state,
                })
            bar.set_postfix(train=f"{train_loss:.1f}", val=f"{val_loss:.1f}", best=best_epoch)
            bar.update(1)
    finally:
        bar.close()
        writer.close()
    return out_dir
