"""Self-contained GMC checkpoints: ``config.json`` + ``model.safetensors``, loaded without unpickling.

A checkpoint directory holds

- ``model.safetensors``: every weight and buffer (including the preprocessing statistics);
- ``config.json``: format tag and version, the modality names, shapes and dtypes, the preprocessing of each
  modality and its statistics, the architecture (:class:`~gmc_rl.config.ModelConfig`), the latent size, the
  SHA-256 of the weights file, and a free-form ``provenance`` mapping (env id, dataset, seed, version, epoch...).

Pretraining additionally keeps a resumable training state (``trainer_state.pt``: weights, optimizer, epoch, RNG
states, history) in the ``last/`` subdirectory; it is written with ``torch.save`` and read back with
``torch.load(..., weights_only=True)``, which refuses arbitrary Python objects.

Example:
    >>> from gmc_rl.checkpoint import load_gmc                     # doctest: +SKIP
    >>> model = load_gmc("runs/pendulum/gmc")                      # doctest: +SKIP
    >>> z = model.encode(obs_batch, modalities=["sound"])          # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gmc_rl import __version__
from gmc_rl.data import file_sha256
from gmc_rl.errors import CheckpointError, GMCError, ModalityError
from gmc_rl.io import atomic_path, ensure_writable_dir, write_json_atomic
from gmc_rl.modalities import compare_specs, modality_specs
from gmc_rl.model import GMCModel

FORMAT = "gmc-rl/gmc-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_STATE_FILE = "trainer_state.pt"


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CheckpointError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    return resolved


def save_gmc(model: GMCModel, directory: str | os.PathLike, provenance: dict) -> Path:
    """Write ``model`` as a self-contained checkpoint into ``directory`` (created if needed); return the directory.

    ``provenance`` is stored verbatim in ``config.json`` and must be JSON-serialisable. Each file is written
    atomically; the weights go first, so a crash leaves either the previous or the new config next to them, and
    the SHA-256 recorded in the config tells a mismatched pair apart at load time.
    """
    if not isinstance(model, GMCModel):
        raise CheckpointError(f"save_gmc expects a GMCModel, got {type(model).__name__}")
    try:
        json.dumps(provenance, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"provenance must be a JSON-serialisable dict: {exc}") from exc
    directory = ensure_writable_dir(directory, "checkpoint directory")
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gmc_rl_version": __version__,
        **model.architecture(),
        "weights_sha256": file_sha256(directory / WEIGHTS_FILE),
        "provenance": dict(provenance),
    }
    write_json_atomic(directory / CONFIG_FILE, config)
    return directory


def _checkpoint_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_file() and path.name in (CONFIG_FILE, WEIGHTS_FILE):
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} does not exist")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} must be a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        hint = " (pretraining may not have finished an epoch yet)" if (path / "last").is_dir() else ""
        raise CheckpointError(f"checkpoint directory {path} is missing {missing}{hint}")
    return path


def read_checkpoint_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory (format-checked)."""
    directory = _checkpoint_dir(path)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not valid JSON ({exc}); the checkpoint is corrupted") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not a gmc-rl GMC checkpoint config (format {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} has checkpoint format version {config.get('format_version')}; this gmc-rl reads {FORMAT_VERSION}"
        )
    return config


def load_gmc(path_or_model: str | os.PathLike | GMCModel, device: str = "cpu") -> GMCModel:
    """Load a checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    A :class:`GMCModel` passed in is frozen in place and stays on its device. A loaded model goes to ``device``
    (``"auto"`` picks CUDA when present) and gets ``provenance`` (dict) and ``checkpoint_path`` attributes.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it.
    """
    if isinstance(path_or_model, GMCModel):
        model = path_or_model
    else:
        directory = _checkpoint_dir(path_or_model)
        config = read_checkpoint_config(directory)
        model = build_from_checkpoint(directory, config, GMCModel.from_architecture, "GMC model", "pretraining")
        model.to(resolve_device(device))
    model.eval()
    model.requires_grad_(False)
    return model


def build_from_checkpoint(
    directory: Path,
    config: dict[str, Any],
    build: Callable[[dict[str, Any]], torch.nn.Module],
    what: str,
    producer: str,
) -> Any:
    """Build a model from a checkpoint's JSON ``config`` and load its safetensors weights, verified.

    Shared by every safetensors + JSON checkpoint (GMC, the MVAE baseline): the weights must have the SHA-256
    recorded in the config, ``build(config)`` must succeed, and the tensors must fit the built model exactly.
    Sets ``provenance`` and ``checkpoint_path`` on the model. ``what`` names the model and ``producer`` the stage
    that writes it, for the error messages.
    """
    weights = directory / WEIGHTS_FILE
    expected_sha = config.get("weights_sha256")
    if expected_sha is not None and file_sha256(weights) != expected_sha:
        raise CheckpointError(
            f"{weights} does not match {directory / CONFIG_FILE} (SHA-256 differs): the checkpoint was modified "
            f"or a write was interrupted; re-run or resume {producer}"
        )
    try:
        model = build(config)
    except (KeyError, TypeError, GMCError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE} describes no valid {what}: {exc!r}") from exc
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights {weights}: {exc}") from exc
    _load_state(model, state, str(weights))
    model.provenance = dict(config.get("provenance") or {})
    model.checkpoint_path = directory
    return model


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with a CheckpointError naming missing/unexpected/mis-shaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{key}: {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
        for key in own
        if key in state and state[key].shape != own[key].shape
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"weights in {source} do not fit the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {shapes[:5]}"
        )
    model.load_state_dict(state, strict=True)


def check_space_matches(model: GMCModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the model's modalities and ``observation_space``."""
    try:
        actual = modality_specs(observation_space)
    except ModalityError as exc:
        raise CheckpointError(f"the GMC model expects modalities {model.modalities}, but {exc}") from exc
    problems = compare_specs(model.specs, actual)
    if problems:
        source = getattr(model, "checkpoint_path", None)
        what = f"GMC checkpoint {source}" if source else "GMC model"
        raise CheckpointError(
            f"{what} does not match the observation space: " + "; ".join(problems)
            + f". It was trained on modalities {[s.to_json() for s in model.specs.values()]}"
        )


# ----------------------------------------------------------------------------------------------------------------
# Resumable training state (pretraining's last/).


def save_training_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write a training state (tensors, numbers, strings, lists, dicts only) to ``directory``."""
    directory = ensure_writable_dir(directory, "checkpoint directory")
    path = directory / TRAINER_STATE_FILE
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_training_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` with ``weights_only=True`` (no arbitrary objects)."""
    path = Path(directory) / TRAINER_STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"no training state to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError ...)
        raise CheckpointError(f"cannot load training state {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"training state {path} is not a dict")
    return state
