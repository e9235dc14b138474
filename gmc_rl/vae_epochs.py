"""The epoch of the variational baselines (MVAE, MUSE): shuffled batches, one optimiser step per batch, the mean
loss and its logged parts, and a validation objective with fixed noise, so that epochs compare fairly.

A method supplies only ``loss_of(batch, generator) -> (loss, {name: value})``; the MVAE passes its KL weight, MUSE
its top-level KL weight. Shuffling and noise are seeded from (seed, epoch) by the callers, so a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

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

