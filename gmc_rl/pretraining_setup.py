"""How every encoder pretraining (GMC, MVAE, MUSE) starts: the dataset is loaded, the output directory is owned
under the rules of :mod:`gmc_rl.pretraining_run`, and the model's initial weights are drawn from the run's seed.

Each method supplies only its training loop, ``train(config, dataset, data_dir, out_dir, state, progress)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from gmc_rl.config import ExperimentConfig
from gmc_rl.data import MultimodalDataset
from gmc_rl.dataset_sources import load_dataset
from gmc_rl.pretraining_run import open_pretraining_run

Train = Callable[[ExperimentConfig, MultimodalDataset, Path, Path, "dict[str, Any] | None", bool], Path]
"""A method's training loop: ``(config, dataset, data_dir, out_dir, state, progress) -> out_dir``; ``state`` is the
resumable state to continue from (None for a fresh run)."""

_Built = TypeVar("_Built")


def run_pretraining(train: Train, method: str, config: ExperimentConfig, data_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, resume: bool, progress: bool) -> Path:
    """Load the dataset in ``data_dir`` and run ``train``, the training loop of the registered method ``method``
    (which decides the pretrain settings of the run's identity), while it owns ``out_dir``
    (:func:`~gmc_rl.pretraining_run.open_pretraining_run`: refuse, resume and lock as for every method); return what
    ``train`` returns.

    Raises:
        DatasetError: the dataset is missing or damaged.
        ConfigError: ``out_dir`` is not a fresh or resumable run directory for these settings, or the dataset does
            not fit ``config`` (another env, a batch size larger than the training split).
    """
    dataset = load_dataset(data_dir)
    with open_pretraining_run(config, method, dataset, data_dir, out_dir, resume, verbose=progress) as state:
        return train(config, dataset, Path(data_dir), Path(out_dir), state, progress)


def seeded(seed: int, build: Callable[[], _Built]) -> _Built:
    """``build()`` under ``torch.manual_seed(seed)``, leaving the caller's RNG as it was: a model's initial weights
    depend on the pretraining seed alone, whatever ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
