"""MUSE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC and MVAE ones.

``config.json`` holds the format tag (``gmc-rl/muse-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the top latent size, the preprocessing statistics, the MUSE settings (bottom
latent sizes, loss weights: :class:`~gmc_rl.muse.model.MUSEConfig`), the SHA-256 of the weights and a
``provenance`` mapping. Writing, reading and verifying are those of every kind of checkpoint
(:class:`gmc_rl.checkpoint.CheckpointKind`); weights are read with safetensors, so nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gymnasium import spaces

from gmc_rl.checkpoint import CheckpointKind
from gmc_rl.errors import CheckpointError
from gmc_rl.muse.model import MUSEModel

FORMAT = "gmc-rl/muse-checkpoint"
FORMAT_VERSION = 1
MUSE_CHECKPOINT = CheckpointKind(MUSEModel, FORMAT, "MUSE checkpoint", "a MUSE checkpoint", "MUSE", "MUSE model",
                                 "MUSE pretraining", extra_fields={"muse": dict}, version=FORMAT_VERSION)
"""MUSE checkpoints, written by :func:`gmc_rl.muse.pretrain_muse`; their config also holds the ``muse`` settings."""


def save_muse(model: MUSEModel, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
    """Write ``model`` into ``directory`` (weights first, then the config naming their SHA-256); return it."""
    if not isinstance(model, MUSEModel):
        raise CheckpointError(f"save_muse expects a MUSEModel, got {type(model).__name__}")
    return MUSE_CHECKPOINT.save(model, directory, provenance)


def read_muse_config(path: str | os.PathLike) -> dict[str, Any]:
    """The format- and structure-checked ``config.json`` of a MUSE checkpoint directory (the shared reader of
    :func:`gmc_rl.checkpoint.read_config_file`: the SHA-256 of the weights is required), with its ``muse`` section."""
    return MUSE_CHECKPOINT.read_config(path)


def load_muse(path_or_model: str | os.PathLike | MUSEModel, device: str = "cpu") -> MUSEModel:
    """Load a MUSE checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it or are not finite.
        ConfigError: ``device`` names a device this machine does not have.
    """
    return MUSE_CHECKPOINT.load(path_or_model, device)


def check_space_matches(model: MUSEModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the MUSE model's modalities and ``observation_space``."""
    MUSE_CHECKPOINT.check_space(model, observation_space)
