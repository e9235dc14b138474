"""MVAE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC checkpoints.

``config.json`` holds the format tag (``gmc-rl/mvae-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the latent size, the preprocessing statistics, the SHA-256 of the weights
and a ``provenance`` mapping. Weights are read with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gymnasium import spaces
from safetensors.torch import save_file

from gmc_rl.mvae.model import MVAEModel
from gmc_rl import __version__
from gmc_rl.checkpoint import build_from_checkpoint, resolve_device
from gmc_rl.data import file_sha256
from gmc_rl.errors import CheckpointError, ModalityError
from gmc_rl.io import atomic_path, ensure_writable_dir, write_json_atomic
from gmc_rl.modalities import compare_specs, modality_specs

FORMAT = "gmc-rl/mvae-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_mvae(model: MVAEModel, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
    """Write ``model`` into ``directory`` (weights first, then the config naming their SHA-256); return it."""
    if not isinstance(model, MVAEModel):
        raise CheckpointError(f"save_mvae expects an MVAEModel, got {type(model).__name__}")
    try:
        json.dumps(provenance, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"provenance must be a JSON-serialisable dict: {exc}") from exc
    directory = ensure_writable_dir(directory, "MVAE checkpoint directory")
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    write_json_atomic(directory / CONFIG_FILE, {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gmc_rl_version": __version__,
        **model.architecture(),
        "weights_sha256": file_sha256(directory / WEIGHTS_FILE),
        "provenance": dict(provenance),
    })
    return directory


def read_mvae_config(path: str | os.PathLike) -> dict[str, Any]:
    """The format-checked ``config.json`` of an MVAE checkpoint directory."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"MVAE checkpoint not found: {directory} is not a directory")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        hint = " (pretraining may not have finished an epoch yet)" if (directory / "last").is_dir() else ""
        raise CheckpointError(f"MVAE checkpoint directory {directory} is missing {missing}{hint}")
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not valid JSON ({exc}); the checkpoint is corrupted") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise CheckpointError(f"{directory} is not an MVAE checkpoint (format {found!r}, expected {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} has MVAE checkpoint format version {config.get('format_version')}; this gmc-rl reads "
            f"{FORMAT_VERSION}"
        )
    return config


def load_mvae(path_or_model: str | os.PathLike | MVAEModel, device: str = "cpu") -> MVAEModel:
    """Load an MVAE checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it.
    """
    if isinstance(path_or_model, MVAEModel):
        model = path_or_model
    else:
        directory = Path(path_or_model)
        config = read_mvae_config(directory)
        model = build_from_checkpoint(directory, config, MVAEModel.from_architecture, "MVAE", "MVAE pretraining")
        model.to(resolve_device(device))
    model.eval()
    model.requires_grad_(False)
    return model


def check_space_matches(model: MVAEModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the MVAE's modalities and ``observation_space``."""
    try:
        actual = modality_specs(observation_space)
    except ModalityError as exc:
        raise CheckpointError(f"the MVAE expects modalities {model.modalities}, but {exc}") from exc
    problems = compare_specs(model.specs, actual)
    if problems:
        source = getattr(model, "checkpoint_path", None)
        raise CheckpointError(
            f"{'MVAE checkpoint ' + str(source) if source else 'MVAE'} does not match the observation space: "
            + "; ".join(problems)
        )
