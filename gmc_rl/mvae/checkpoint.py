"""MVAE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC checkpoints.

``config.json`` holds the format tag (``gmc-rl/mvae-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the latent size, the preprocessing statistics, the SHA-256 of the weights
and a ``provenance`` mapping. Writing, reading and verifying are those of every kind of checkpoint
(:class:`gmc_rl.checkpoint.CheckpointKind`); weights are read with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gymnasium import spaces

from gmc_rl.checkpoint import CheckpointKind
from gmc_rl.errors import CheckpointError
from gmc_rl.mvae.model import MVAEModel

FORMAT = "gmc-rl/mvae-checkpoint"
FORMAT_VERSION = 1
MVAE_CHECKPOINT = CheckpointKind(MVAEModel, FORMAT, "MVAE checkpoint", "an MVAE checkpoint", "MVAE", "MVAE",
                                 "MVAE pretraining", version=FORMAT_VERSION)
"""MVAE checkpoints, written by :func:`gmc_rl.mvae.pretrain_mvae`."""


def save_mvae(model: MVAEModel, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
    """Write ``model`` into ``directory`` (weights first, then the config naming their SHA-256); return it."""
    if not isinstance(model, MVAEModel):
        raise CheckpointError(f"save_mvae expects an MVAEModel, got {type(model).__name__}")
    return MVAE_CHECKPOINT.save(model, directory, provenance)


def read_mvae_config(path: str | os.PathLike) -> dict[str, Any]:
    """The format- and structure-checked ``config.json`` of an MVAE checkpoint directory (shared reader of
    :func:`gmc_rl.checkpoint.read_config_file`: the SHA-256 of the weights is required)."""
    return MVAE_CHECKPOINT.read_config(path)


def load_mvae(path_or_model: str | os.PathLike | MVAEModel, device: str = "cpu") -> MVAEModel:
    """Load an MVAE checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it or are not finite.
        ConfigError: ``device`` names a device this machine does not have.
    """
    return MVAE_CHECKPOINT.load(path_or_model, device)


def check_space_matches(model: MVAEModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the MVAE's modalities and ``observation_space``."""
    MVAE_CHECKPOINT.check_space(model, observation_space)
