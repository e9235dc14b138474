"""GMC pretraining: Adam on the GMC loss over a collected dataset, with validation, TensorBoard and resume.

Example:
    >>> from gmc_rl.config import load_config
    >>> config = load_config("experiments/pendulum_sound.yaml")                          # doctest: +SKIP
    >>> pretrain(config, "runs/pendulum/data", "runs/pendulum/gmc")                        # doctest: +SKIP
    >>> model = gmc_rl.load_gmc("runs/pendulum/gmc")                                       # doctest: +SKIP

Output directory:

- ``config.json`` + ``model.safetensors``: the best model by validation loss (a checkpoint for :func:`load_gmc`);
- ``last/``: the latest state (every ``pretrain.checkpoint_every`` epochs and at the end): a loadable checkpoint plus
  ``trainer_state.pt`` (weights, optimizer, epoch, shuffling RNG, history) from which ``resume=True`` continues;
- ``tb/``: TensorBoard scalars per epoch: ``loss/train_total``, ``loss/train_<m>``, ``loss/val_total``,
  ``loss/val_<m>``, ``loss/train_temporal`` and ``loss/train_frame_order`` (when
  their weights are > 0), ``align/retrieval@1_<m>``,
  ``align/pos_cos_<m>``, ``align/neg_cos_<m>``, ``perf/samples_per_s``;
- ``history.json`` (the same numbers per epoch), ``alignment.json`` (metrics of the best model),
  ``latents_pca.png`` (complete vs single-modality latents), ``run.json`` (the config and data it was made from);
- ``state_probe.json`` when the dataset records the env's true state: how well each state variable can be read from
  the complete and from each single-modality latent (:mod:`gmc_rl.state_probe`); an unreadable variable of the
  complete latent is also reported as a :class:`~gmc_rl.state_probe.StateProbeWarning`.

Training is deterministic for a given seed on a given device, and a resumed run reaches the same weights as an
uninterrupted one. An output directory made with a different config or dataset is never overwritten.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gmc_rl import __version__
from gmc_rl.checkpoint import (
    CONFIG_FILE,
    load_gmc,
    resolve_device,
    save_gmc,
    save_training_state,
)
from gmc_rl.config import ExperimentConfig, config_hash, pretrain_identity
from gmc_rl.data import MultimodalDataset
from gmc_rl.errors import ConfigError
from gmc_rl.io import write_json_atomic
from gmc_rl.loss import frame_order_loss, gmc_loss_terms, temporal_loss
from gmc_rl.metrics import evaluate_alignment, plot_latents_pca
from gmc_rl.modality_fit import complete_latents, fit_modality_encoders
from gmc_rl.model import GMCModel
from gmc_rl.pretraining_run import LAST_DIR, pretraining_identity
from gmc_rl.pretraining_setup import run_pretraining, seeded
from gmc_rl.progress import progress_bar
from gmc_rl.state_probe import PROBE_FILE, probe_dataset_split, warn_unreadable

HISTORY_FILE = "history.json"
ALIGNMENT_FILE = "alignment.json"
PCA_FILE = "latents_pca.png"
TB_DIR = "tb"


def _train_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A fresh shuffle into batches; the short last batch is dropped (unless it is the only one)."""
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def successor_mask(split: dict[str, Any]) -> torch.Tensor:
    """Rows whose next row is the next step of the same episode (the row neither terminated nor truncated it):
    the pairs of the temporal term. Collection writes each env's steps in order and marks every cut as a
    truncation, so row i + 1 follows row i exactly when row i did not end an episode."""
    ended = torch.from_numpy(split["terminated"] | split["truncated"])
    has_next = ~ended
    has_next[-1] = False
    return has_next


def reference_latents(model: GMCModel, observations: dict[str, torch.Tensor], count: int, seed: int
                      ) -> torch.Tensor:
    """Complete latents of at most ``count`` observations (a random subset drawn with ``seed`` when there are
    more): the reference onto which partial latents are projected."""
    total = len(observations[model.modalities[0]])
    rows = torch.arange(total)
    if total > count:
        rows = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return complete_latents(model, observations, rows)


def _temporal_term(model: GMCModel, observations: dict[str, torch.Tensor], index: torch.Tensor, joint: torch.Tensor,
                   has_next: torch.Tensor, temperature: float) -> torch.Tensor:
    """The temporal loss of one batch: its rows that have a next step, paired with the complete latents of those
    next steps (zero when fewer than two rows of the batch have one)."""
    keep = has_next[index]
    if int(keep.sum()) < 2:
        return torch.zeros((), device=joint.device)
    following = index[keep] + 1
    next_joint = model.joint_latent({name: observations[name][following] for name in observations})
    return temporal_loss(joint[keep], next_joint, temperature)


def _frame_order_term(model: GMCModel, observations: dict[str, torch.Tensor], index: torch.Tensor,
                      latents: dict[str, torch.Tensor], joint: torch.Tensor, temperature: float) -> torch.Tensor:
    """The frame-order loss of one batch: its modality latents against those of the same observations with the
    stacked frames (axis 1 of a batch) back to front."""
    names = list(latents)
    reversed_latents = model.modality_latents({name: observations[name][index].flip(1) for name in names})
    return frame_order_loss(joint, [latents[m] for m in names], [reversed_latents[m] for m in names], temperature)


def check_frame_stacks(specs: dict[str, Any]) -> None:
    """Refuse the frame-order term for a modality whose first axis cannot be a stack of frames."""
    for name, spec in specs.items():
        if len(spec.shape) < 2 or spec.shape[0] < 2:
            raise ConfigError(
                f"pretrain.frame_order_weight needs every modality's first axis to be a stack of at least 2 frames; "
                f"modality {name!r} has shape {tuple(spec.shape)} (set pretrain.frame_order_weight to 0, or stack "
                "frames in the env)"
            )


def pretrain(
    config: ExperimentConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train a GMC model on the dataset in ``data_dir`` with ``config.pretrain``; return ``out_dir``.

    ``resume=True`` continues from ``out_dir/last`` (the epoch count, optimizer and shuffling RNG included); the
    number of epochs may be raised when resuming. Raises ConfigError if ``out_dir`` holds a run made with another
    config or dataset, or a run with the same settings and ``resume`` is False (trained weights are never
    replaced), if another process is pretraining into ``out_dir`` (:mod:`gmc_rl.locking`), or if the loss
    becomes non-finite (e.g. a too large learning rate).
    """
    return run_pretraining(_train, "gmc", config, data_dir, out_dir, resume, progress)


@dataclass
class _Training:
    """What every epoch of one pretraining run uses: the settings, the model, the data on the device, and the loss
    terms in use (the GMC terms, then the optional ones with a weight > 0, in the order of ``optional``)."""

    settings: Any
    model: GMCModel
    device: torch.device
    train_obs: dict[str, torch.Tensor]
    val_obs: dict[str, torch.Tensor]
    weights: dict[str, float]
    optional: list[str]
    has_next: torch.Tensor | None
    joints_as_negatives: bool

    @property
    def names(self) -> list[str]:
        return list(self.model.modalities)

    def batch_loss(self, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The loss of one batch (rows ``index``), its GMC terms and its optional terms (unweighted)."""
        settings, names = self.settings, self.names
        latents, joint = self.model.latents({name: self.train_obs[name][index] for name in names})
        terms = gmc_loss_terms([latents[m] for m in names], joint, settings.temperature, self.joints_as_negatives)
        loss = terms.sum()
        optional_terms = []
        if self.has_next is not None:
            optional_terms.append(_temporal_term(self.model, self.train_obs, index, joint, self.has_next,
                                                 settings.temperature))
        if "frame_order" in self.optional:
            optional_terms.append(_frame_order_term(self.model, self.train_obs, index, latents, joint,
                                                    settings.temperature))
        for name, value in zip(self.optional, optional_terms):
            loss = loss + self.weights[name] * value
        if not torch.isfinite(loss):
            raise ConfigError(
                f"the GMC loss became {float(loss.detach())} at epoch {epoch}; "
                f"lower pretrain.lr (now {settings.lr}) or raise pretrain.temperature "
                f"(now {settings.temperature})"
            )
        return loss, terms, optional_terms


def _setup(config: ExperimentConfig, dataset: MultimodalDataset) -> _Training:
    """The model (seeded), the data on the device and the loss terms in use, for :func:`_train`."""
    settings = config.pretrain
    device = resolve_device(settings.device)
    model = seeded(settings.seed, lambda: GMCModel(dataset.specs, settings.model, dataset.normalization))
    model.to(device)
    names = model.modalities
    weights = {"temporal": settings.temporal_weight, "frame_order": settings.frame_order_weight}
    optional = [name for name, weight in weights.items() if weight > 0]  # the optional loss terms in use, in order
    if "frame_order" in optional:
        check_frame_stacks(dataset.specs)
    return _Training(
        settings=settings, model=model, device=device,
        train_obs={name: torch.from_numpy(dataset.train[name]).to(device) for name in names},
        val_obs={name: torch.from_numpy(dataset.val[name]).to(device) for name in names},
        weights=weights, optional=optional,
        has_next=successor_mask(dataset.train).to(device) if "temporal" in optional else None,
        joints_as_negatives=settings.loss == "joints_as_negatives",
    )


def _provenance(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, run: _Training
                ) -> dict[str, Any]:
    """What the checkpoints record about how they were made (the epoch and validation loss are added per save)."""
    settings = config.pretrain
    provenance = {
        "env_id": dataset.env_id,
        "env_kwargs": dataset.metadata.get("env_kwargs", {}),
        "data_dir": str(data_dir),
        "data_files": pretraining_identity(config, dataset, "gmc")["data"],
        "data_seed": dataset.metadata.get("seed"),
        "pretrain_seed": settings.seed,
        "pretrain_config_hash": config_hash(pretrain_identity(settings, "gmc")),
        "loss": settings.loss,
        "temperature": settings.temperature,
        "gmc_rl_version": __version__,
    }
    provenance.update({f"{name}_weight": run.weights[name] for name in run.optional})
    return provenance


def _train(config: ExperimentConfig, dataset: MultimodalDataset, data_dir: Path, out_dir: Path,
           state: dict[str, Any] | None, progress: bool) -> Path:
    """The epochs of :func:`pretrain` (from ``state`` when resuming), run while it owns ``out_dir``."""
    settings = config.pretrain
    run = _setup(config, dataset)
    model = run.model
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    shuffle = torch.Generator().manual_seed(settings.seed)
    history: list[dict[str, Any]] = []
    best_val, start_epoch = math.inf, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle.set_state(state["shuffle_rng"])
        history = list(state["history"])
        best_val, start_epoch = float(state["best_val"]), int(state["epoch"])
    provenance = _provenance(config, dataset, data_dir, run)
    n_train = len(dataset.train[run.names[0]])

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / TB_DIR), purge_step=start_epoch + 1)
    per_epoch = len(_train_batches(n_train, settings.batch_size, torch.Generator().manual_seed(0)))
    remaining = max(0, settings.epochs - start_epoch)
    bar = progress_bar(remaining * per_epoch, "pretrain", "batch", enabled=progress)
    try:
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            bar.set_description(f"pretrain epoch {epoch}/{settings.epochs}")
            scalars, seconds = _epoch(run, optimizer, _train_batches(n_train, settings.batch_size, shuffle), epoch,
                                      bar)
            report = evaluate_alignment(model, run.val_obs, settings.batch_size, settings.seed,
                                        settings.temperature, run.joints_as_negatives)
            scalars.update(report.scalars())
            scalars["perf/samples_per_s"] = scalars.pop("perf/samples") / seconds
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, epoch)
            writer.flush()
            history.append({"epoch": epoch, **scalars, "train_seconds": seconds})

            assert report.loss_total is not None  # evaluate_alignment computes it when given a temperature
            val_total = float(report.loss_total)
            if val_total < best_val:
                best_val = val_total
                save_gmc(model, out_dir, {**provenance, "epoch": epoch, "val_loss": val_total})
            if epoch % settings.checkpoint_every == 0 or epoch == settings.epochs:
                save_gmc(model, out_dir / LAST_DIR, {**provenance, "epoch": epoch, "val_loss": val_total})
                save_training_state(out_dir / LAST_DIR, {
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "shuffle_rng": shuffle.get_state(),
                    "history": history,
                    "best_val": best_val,
                })
            write_json_atomic(out_dir / HISTORY_FILE, history)
            worst_r1 = min(report.retrieval_at_1.values())
            bar.set_postfix(loss=f"{scalars['loss/train_total']:.3f}", val=f"{val_total:.3f}", r1_min=f"{worst_r1:.2f}")
    finally:
        bar.close()
        writer.close()

    if not (out_dir / CONFIG_FILE).is_file():  # resumed a finished run whose best model was removed
        save_gmc(model, out_dir, {**provenance, "epoch": start_epoch})
    _finish(run, dataset, out_dir, n_train, progress)
    return out_dir


def _epoch(run: _Training, optimizer: torch.optim.Optimizer, batches: list[torch.Tensor], epoch: int,
           bar: Any) -> tuple[dict[str, float], float]:
    """One pass over ``batches``: the mean training losses per term (TensorBoard tags) and the seconds it took.

    ``perf/samples`` (the samples seen) is returned among the scalars for the caller to turn into a rate.
    """
    started = time.perf_counter()
    run.model.train()
    sums = torch.zeros(len(run.names), dtype=torch.float64)
    optional_sums = torch.zeros(len(run.optional), dtype=torch.float64)
    for index in batches:
        loss, terms, optional_terms = run.batch_loss(index.to(run.device), epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums += terms.detach().double().cpu()
        if optional_terms:
            optional_sums += torch.stack(optional_terms).detach().double().cpu()
        bar.update(1)
    seconds = time.perf_counter() - started
    train_terms = (sums / len(batches)).tolist()
    scalars = {"loss/train_total": sum(train_terms)}
    scalars.update({f"loss/train_{m}": value for m, value in zip(run.names, train_terms)})
    scalars.update({f"loss/train_{name}": value
                    for name, value in zip(run.optional, (optional_sums / len(batches)).tolist())})
    scalars["perf/samples"] = float(len(batches) * run.settings.batch_size)
    return scalars, seconds


def _finish(run: _Training, dataset: MultimodalDataset, out_dir: Path, n_train: int, progress: bool) -> None:
    """After the epochs: the best model gets its modality fit (when configured), reference latents, alignment
    metrics, PCA plot and state probe."""
    settings = run.settings
    best = load_gmc(out_dir, device=str(run.device))
    provenance = dict(best.provenance)
    if settings.modality_fit_epochs > 0 and "modality_fit" not in provenance:  # not yet fitted (a resumed run may be)
        fit = fit_modality_encoders(best, run.train_obs, run.val_obs, settings.modality_fit_epochs,
                                    settings.batch_size, settings.lr, settings.seed, progress)
        provenance["modality_fit"] = fit.to_json()
        if progress:
            before, after = fit.cosine_before, fit.cosine_after
            cosines = ", ".join(f"{m} {before[m]:.4f} -> {after[m]:.4f}" for m in after)
            tqdm.write(f"modality fit: validation cosine to the complete latent {cosines}")
    if settings.reference_latents > 0:
        best.set_reference_latents(reference_latents(best, run.train_obs, settings.reference_latents, settings.seed),
                                   min(settings.reference_neighbours, settings.reference_latents, n_train))
    if settings.reference_latents > 0 or provenance != best.provenance:
        save_gmc(best, out_dir, provenance)
    report = evaluate_alignment(best, run.val_obs, settings.batch_size, settings.seed, settings.temperature,
                                run.joints_as_negatives)
    write_json_atomic(out_dir / ALIGNMENT_FILE, {"epoch": best.provenance.get("epoch"), **report.to_json()})
    plot_latents_pca(best, run.val_obs, out_dir / PCA_FILE, seed=settings.seed,
                     title=f"{dataset.env_id}: GMC latents (validation, PCA)", replace=True)  # its own checkpoint
    probe = probe_dataset_split(best, dataset)
    if probe is not None:  # the env records its true state: can the controller's input show every variable?
        write_json_atomic(out_dir / PROBE_FILE, probe.to_json())
        if progress:
            tqdm.write(f"state probe (validation split, R^2 of k-NN (linear) regression from each latent):\n"
                       f"{probe.table()}")
        warn_unreadable(probe, f"GMC encoder {out_dir}")
    if progress:
        r1 = ", ".join(f"{m} {v:.3f}" for m, v in report.retrieval_at_1.items())
        tqdm.write(f"best epoch {best.provenance.get('epoch')}: val loss {report.loss_total:.4f}; "
                   f"retrieval@1 (batches of {settings.batch_size}): {r1}; saved to {out_dir}")
