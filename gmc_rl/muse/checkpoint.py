"""MUSE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC and MVAE ones.

``config.json`` holds the format tag (``gmc-rl/muse-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the top latent size, the preprocessing statistics, the MUSE settings (bottom
latent sizes, loss weights: :class:`~gmc_rl.muse.model.MUSEConfig`), the SHA-256 of the weights and a
``provenance`` mapping. Writing, reading and verifying go through the shared helpers of :mod:`gmc_rl.checkpoint`;
weights are read with safetensors, so nothing is unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gymnasium import spaces

from gmc_rl.checkpoint import (
    build_from_checkpoint,
    check_model_space,
    checkpoint_dir,
    read_config_file,
    resolve_device,
    write_checkpoint,
)
from gmc_rl.errors import CheckpointError
from gmc_rl.io import require_fields
from gmc_rl.muse.model import MUSEModel

FORMAT = "gmc-rl/muse-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_muse(model: MUSEModel, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
    """Write ``model`` into ``directory`` (weights first, then the config naming their SHA-256); return it."""
    if not isinstance(model, MUSEModel):
        raise CheckpointError(f"save_muse expects a MUSEModel, got {type(model).__name__}")
    return write_checkpoint(model, directory, provenance, FORMAT, FORMAT_VERSION, "MUSE checkpoint directory")


def read_muse_config(path: str | os.PathLike) -> dict[str, Any]:
    """The format- and structure-checked ``config.json`` of a MUSE checkpoint directory (the shared reader of
    :func:`gmc_rl.checkpoint.read_config_file`: the SHA-256 of the weights is required), with its ``muse`` section."""
    config = read_config_file(path, FORMAT, FORMAT_VERSION, "MUSE checkpoint", "a MUSE checkpoint")
    return require_fields(config, {"muse": dict}, checkpoint_dir(path, "MUSE checkpoint") / CONFIG_FILE,
                          CheckpointError)


def load_muse(path_or_model: str | os.PathLike | MUSEModel, device: str = "cpu") -> MUSEModel:
    """Load a MUSE checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it or are not finite.
        ConfigError: ``device`` names a device this machine does not have.
    """
    if isinstance(path_or_model, MUSEModel):
        model = path_or_model
    else:
        torch_device = resolve_device(device)
        directory = checkpoint_dir(path_or_model, "MUSE checkpoint")
        config = read_muse_config(directory)
        model = build_from_checkpoint(directory, config, MUSEModel.from_architecture, "MUSE model", "MUSE pretraining")
        model.to(torch_device)
    model.eval()
    model.requires_grad_(False)
    return model


def check_space_matches(model: MUSEModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the MUSE model's modalities and ``observation_space``."""
    check_model_space(model, observation_space, "MUSE", "MUSE model")
