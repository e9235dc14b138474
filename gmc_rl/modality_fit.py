"""The modality fit (``pretrain.modality_fit_epochs``): each modality encoder learns the frozen complete latent.

The contrastive loss only asks a modality latent ``z_m`` to be more similar to its own complete latent ``z_joint``
than to the other samples of a batch; a cosine of 0.99 already satisfies it. A controller trained on complete
latents reads the remaining gap as a different state, and some controllers react to it strongly (on
PendulumSound's quick config one agent loses 320 % of its return with the sound alone at a cosine of 0.992).
This stage closes the gap directly: with the joint encoder and the shared head frozen, each modality encoder is
trained to reproduce the complete latent of the same observation (loss ``1 - cos(z_m, z_joint)``), which makes
``z_m`` the best estimate of ``z_joint`` that modality's observation allows.

Only the modality encoders change, so the complete latent, and with it every agent trained on complete
observations, is bit-for-bit what the contrastive pretraining gave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from gmc_rl.loss import modality_fit_loss
from gmc_rl.model import GMCModel
from gmc_rl.progress import progress_bar

TARGET_BATCH = 1024
"""Observations per batch when complete latents (the fit's targets, the reference latents) and the validation
cosines are computed."""


@dataclass
class ModalityFitReport:
    """What the fit did: the mean validation cosine between each modality latent and the complete latent before
    and after it, and the mean training loss of each epoch."""

    epochs: int
    cosine_before: dict[str, float]
    cosine_after: dict[str, float]
    train_loss: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "val_cosine_before": self.cosine_before,
                "val_cosine_after": self.cosine_after, "train_loss": self.train_loss}


def complete_latents(model: GMCModel, observations: dict[str, torch.Tensor], rows: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """The complete latents of the rows ``rows`` of ``observations`` (every row by default), without gradients, in
    batches of :data:`TARGET_BATCH` (each batch is indexed out of the arrays, so no copy of the rows is made)."""
    if rows is None:
        rows = torch.arange(len(observations[model.modalities[0]]))
    model.eval()
    with torch.no_grad():
        return torch.cat([model.joint_latent(_rows(observations, chunk)) for chunk in rows.split(TARGET_BATCH)])


def modality_cosines(model: GMCModel, observations: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean cosine between each modality latent and the complete latent of the same observation."""
    names = list(model.modalities)
    sums = dict.fromkeys(names, 0.0)
    rows = torch.arange(len(observations[names[0]]))
    model.eval()
    with torch.no_grad():
        for chunk in rows.split(TARGET_BATCH):
            latents, joint = model.latents(_rows(observations, chunk))
            for name in names:
                sums[name] += float((latents[name] * joint).sum())
    return {name: total / len(rows) for name, total in sums.items()}


def fit_modality_encoders(model: GMCModel, train_obs: dict[str, torch.Tensor], val_obs: dict[str, torch.Tensor],
                          epochs: int, batch_size: int, lr: float, seed: int, progress: bool = True
                          ) -> ModalityFitReport:
    """Train ``model``'s modality encoders (in place) to reproduce its frozen complete latents.

    Adam with ``lr`` on :func:`gmc_rl.loss.modality_fit_loss` for ``epochs`` passes over ``train_obs`` in batches of
    ``batch_size`` shuffled with ``seed``. The joint encoder and the projection head are not trained, and the
    model is left frozen (eval mode, no gradients), as :func:`gmc_rl.checkpoint.load_gmc` hands it out.
    """
    names = list(model.modalities)
    report = ModalityFitReport(epochs, modality_cosines(model, val_obs), {})
    targets = complete_latents(model, train_obs)
    shuffle = torch.Generator().manual_seed(seed)
    n_train = len(targets)
    per_epoch = max(1, n_train // batch_size)
    bar = progress_bar(epochs * per_epoch, "fit modality encoders", "batch", enabled=progress)
    try:
        with trainable_encoders(model) as parameters:
            optimizer = torch.optim.Adam(parameters, lr=lr)
            for epoch in range(1, epochs + 1):
                bar.set_description(f"fit modality encoders, epoch {epoch}/{epochs}")
                total = 0.0
                batches = torch.randperm(n_train, generator=shuffle).split(batch_size)[:per_epoch]
                for index in batches:
                    index = index.to(targets.device)
                    latents = model.modality_latents(_rows(train_obs, index))
                    loss = modality_fit_loss([latents[name] for name in names], targets[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach())
                    bar.update(1)
                report.train_loss.append(total / len(batches))
                bar.set_postfix(loss=f"{report.train_loss[-1]:.4f}")
    finally:
        bar.close()
    report.cosine_after = modality_cosines(model, val_obs)
    return report


@contextmanager
def trainable_encoders(model: GMCModel) -> Iterator[list[torch.nn.Parameter]]:
    """Within the block only the modality encoders take gradients (train mode); afterwards the whole model is
    frozen in eval mode. The action fit (gmc_rl.agents.action_fit) trains them the same way."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = [parameter for encoder in model.encoders for parameter in encoder.parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    model.encoders.train()
    try:
        yield parameters
    finally:
        for parameter in parameters:
            parameter.requires_grad_(False)
        model.eval()


def _rows(observations: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: array[index.to(array.device)] for name, array in observations.items()}
