"""Alignment metrics of a GMC model on held-out data, and a 2-D PCA picture of its latent space.

For each modality m, over shuffled batches of B samples:

- ``retrieval@1``: the fraction of samples i whose complete latent z_{1:M}^i is the most similar (cosine) of the
  batch's complete latents to z_m^i (chance is 1/B);
- ``pos_cos``: mean cosine of the positive pairs (z_m^i, z_{1:M}^i);
- ``neg_cos``: mean cosine of the negative pairs (z_m^i, z_{1:M}^j), j != i.

GMC is working when retrieval@1 is high and pos_cos is well above neg_cos: a controller reading z_m then sees
almost what it would see with every sensor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gmc_rl.artifacts import check_plot_path
from gmc_rl.errors import ConfigError, DatasetError
from gmc_rl.io import LATENTS_PCA, atomic_path, png_metadata, png_not_own, refuse_long_name, wrong_path
from gmc_rl.loss import gmc_loss_terms
from gmc_rl.model import GMCModel


@dataclass
class AlignmentReport:
    """Per-modality alignment metrics (and, when a temperature was given, the GMC loss) on a data split."""

    modalities: list[str]
    retrieval_at_1: dict[str, float]
    pos_cos: dict[str, float]
    neg_cos: dict[str, float]
    n_samples: int
    batch_size: int
    """The largest batch the retrieval ran among: the size asked for, or the split's size when that is smaller."""
    loss_total: float | None = None
    loss_per_modality: dict[str, float] | None = None

    @property
    def chance_retrieval_at_1(self) -> float:
        """retrieval@1 of latents that carry no information: one right answer among ``batch_size``."""
        return 1.0 / self.batch_size

    def scalars(self) -> dict[str, float]:
        """Flat name -> value with the TensorBoard tag names (``align/retrieval@1_<m>``, ``loss/val_total``...)."""
        out = {}
        for name in self.modalities:
            out[f"align/retrieval@1_{name}"] = self.retrieval_at_1[name]
            out[f"align/pos_cos_{name}"] = self.pos_cos[name]
            out[f"align/neg_cos_{name}"] = self.neg_cos[name]
        if self.loss_total is not None:
            out["loss/val_total"] = self.loss_total
            for name, value in (self.loss_per_modality or {}).items():
                out[f"loss/val_{name}"] = value
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shuffled_batches(n: int, batch_size: int, seed: int) -> list[Tensor]:
    """Index batches of a fixed random permutation of ``range(n)``; a short last batch is dropped if others exist."""
    if n < 2:
        raise DatasetError(f"alignment metrics need at least 2 samples, got {n}")
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    batches = list(permutation.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def batch_alignment(modality_latents: Tensor, joint_latents: Tensor) -> tuple[float, float, float]:
    """(retrieval@1, mean positive cosine, mean negative cosine) of one batch of L2-normalised latents (B, k).

    Retrieval: for each i, is z_joint^i the most similar of the batch's complete latents to z_m^i?
    """
    size = joint_latents.shape[0]
    sim = modality_latents @ joint_latents.T
    targets = torch.arange(size, device=sim.device)
    off_diagonal = ~torch.eye(size, dtype=torch.bool, device=sim.device)
    retrieval = float((sim.argmax(dim=1) == targets).float().mean())
    return retrieval, float(sim.diagonal().mean()), float(sim[off_diagonal].mean())


def _take(observations: Mapping[str, Any], names: list[str], index: Tensor) -> dict[str, Any]:
    return {name: observations[name][index.numpy() if isinstance(observations[name], np.ndarray) else index]
            for name in names}


@torch.no_grad()
def evaluate_alignment(
    model: GMCModel,
    observations: Mapping[str, np.ndarray | Tensor],
    batch_size: int = 128,
    seed: int = 0,
    temperature: float | None = None,
    joints_as_negatives: bool = False,
) -> AlignmentReport:
    """Alignment metrics (and the GMC loss if ``temperature`` is given) over shuffled batches of ``observations``.

    ``observations`` maps every modality to an array ``(N, *shape)`` of raw env values (a dataset split). The
    batches come from a permutation seeded with ``seed``, so repeated calls compare like with like. A
    ``batch_size`` larger than the split gives one batch of the whole split, and the report records that size
    (the chance level is one over it, not over the size asked for).
    """
    names = model.modalities
    n = len(observations[names[0]])
    was_training = model.training
    model.eval()
    sums = {key: dict.fromkeys(names, 0.0) for key in ("r1", "pos", "neg", "loss")}
    counted = 0
    batches = shuffled_batches(n, batch_size, seed)
    try:
        for index in batches:
            latents, joint = model.latents(_take(observations, names, index))
            size = len(index)
            for name in names:
                r1, pos, neg = batch_alignment(latents[name], joint)
                sums["r1"][name] += r1 * size
                sums["pos"][name] += pos * size
                sums["neg"][name] += neg * size
            if temperature is not None:
                terms = gmc_loss_terms([latents[m] for m in names], joint, temperature, joints_as_negatives)
                for name, term in zip(names, terms.tolist()):
                    sums["loss"][name] += term * size
            counted += size
    finally:
        model.train(was_training)
    mean = {key: {name: value / counted for name, value in per.items()} for key, per in sums.items()}
    return AlignmentReport(
        modalities=list(names),
        retrieval_at_1=mean["r1"],
        pos_cos=mean["pos"],
        neg_cos=mean["neg"],
        n_samples=counted,
        batch_size=max(len(index) for index in batches),
        loss_total=sum(mean["loss"].values()) if temperature is not None else None,
        loss_per_modality=mean["loss"] if temperature is not None else None,
    )


@torch.no_grad()
def check_png_out(path: str | os.PathLike, label: str) -> None:
    """Refuse a PNG output ``path`` (``label`` names it in the message) that would replace what is not gmc-rl's own
    plot: another suffix (a dataset's ``train.npz``, a user's ``notes.txt``), a symbolic link (replaced by a file),
    a FIFO or directory, or an existing file that is not a latents PCA plot gmc-rl marked as such
    (:func:`gmc_rl.io.png_not_own`): a user's PNG, another gmc-rl figure (an evaluation's ``results.png``), or a PNG
    gmc-rl wrote before its figures said what they show (it may be an evaluation's figure); or that would add a
    file to an artifact's directory or folders (:func:`gmc_rl.artifacts.check_plot_path`).

    Raises:
        ConfigError: naming the path and what it is.
    """
    path = Path(path)
    refuse_long_name(path, label, ConfigError)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"{label} {str(path)!r} must name a .png file (the plot is a PNG)")
    if path.is_symlink():
        raise ConfigError(f"{label} {path} is a symbolic link; it would be replaced by the plot: name a file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{wrong_path(path, label, 'file')}; name a new file")
    why = png_not_own(path, LATENTS_PCA) if path.exists() else None
    if why is not None:
        raise ConfigError(f"{label} {path} exists and {why}; it is not overwritten: choose another path (or remove "
                          "the file yourself if it is a plot you no longer need)")
    check_plot_path(path, label)


def plot_latents_pca(
    model: GMCModel,
    observations: Mapping[str, np.ndarray | Tensor],
    path: str | os.PathLike,
    max_points: int = 500,
    seed: int = 0,
    title: str | None = None,
    replace: bool = False,
) -> None:
    """Save a PNG scatter of complete and single-modality latents projected on their first 2 principal components.

    Well-aligned models show each modality's cloud on top of the complete one; thin grey lines join the latents
    of the same sample for a few of them. ``path`` must be a new ``.png`` or a latents PCA plot gmc-rl wrote, outside
    other artifacts' directories (:func:`check_png_out`): nothing else is overwritten. ``replace`` skips that check for
    the one caller that owns the destination: pretraining, which writes the plot into its own checkpoint.
    """
    if not replace:
        check_png_out(path, "plot path")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = model.modalities
    n = len(observations[names[0]])
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # a figure needs values, not gradients (a model with requires_grad weights too)
            latents, joint = model.latents(_take(observations, names, index))
    finally:
        model.train(was_training)
    groups = {"complete": joint.cpu().numpy(), **{name: z.cpu().numpy() for name, z in latents.items()}}
    stacked = np.concatenate(list(groups.values()))
    centre = stacked.mean(axis=0)
    _, _, components = np.linalg.svd(stacked - centre, full_matrices=False)
    project = lambda z: (z - centre) @ components[:2].T  # noqa: E731
    fig, ax = plt.subplots(figsize=(6, 5))
    for i in range(min(30, len(index))):
        for name in names:
            a, b = project(groups["complete"][i]), project(groups[name][i])
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.8", lw=0.5, zorder=0)
    markers = ["o", "^", "s", "D", "v", "P", "X"]
    for k, (label, z) in enumerate(groups.items()):
        xy = project(z)
        ax.scatter(xy[:, 0], xy[:, 1], s=8 if k else 14, alpha=0.6, marker=markers[k % len(markers)], label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "GMC latents: complete vs single modality (PCA)")
    ax.legend(markerscale=2, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=png_metadata(LATENTS_PCA))
    plt.close(fig)

