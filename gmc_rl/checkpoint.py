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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

import torch
from gymnasium import spaces
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gmc_rl import __version__
from gmc_rl.data import file_sha256
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError
from gmc_rl.io import (
    FieldType,
    atomic_path,
    ensure_writable_dir,
    read_json_object,
    refuse_non_file,
    require_fields,
    require_path,
    resolve_path,
    write_error,
    write_json_atomic,
    wrong_path,
)
from gmc_rl.modalities import compare_specs, modality_specs
from gmc_rl.model import GMCModel, MultimodalModel

FORMAT = "gmc-rl/gmc-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_STATE_FILE = "trainer_state.pt"


def resolve_device(device: str | torch.device, key: str | None = None) -> torch.device:
    """The torch device for a device setting: the one function pretraining, training, evaluation and loading use.

    ``"auto"`` picks CUDA when it is available, else the CPU. A device named explicitly (``"cuda"``,
    ``"cuda:1"``) that this machine does not have is refused rather than silently replaced by the CPU: a run
    asked to use a GPU should not take hours on the CPU unnoticed. ``key`` names the config key in the message.

    Raises:
        ConfigError: an unknown device name, or a CUDA device on a machine without CUDA (or without that GPU).
    """
    where = f"config key {key!r}: " if key else ""
    if not isinstance(device, (str, torch.device)):
        raise ConfigError(f"{where}device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"{where}unknown device {str(device)!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{where}device {str(device)!r} requested but CUDA is not available on this machine; use 'cpu', "
                "or 'auto' to use a GPU only when there is one"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{where}device {str(device)!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    elif resolved.type != "cpu":
        raise ConfigError(f"{where}unsupported device {str(device)!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    return resolved


def save_gmc(model: GMCModel, directory: str | os.PathLike, provenance: dict) -> Path:
    """Write ``model`` as a self-contained checkpoint into ``directory`` (created if needed); return the directory.

    ``provenance`` is stored verbatim in ``config.json`` and must be a JSON-serialisable dict. Each file is written
    atomically; the weights go first, so a crash leaves either the previous or the new config next to them, and
    the SHA-256 recorded in the config tells a mismatched pair apart at load time.
    """
    return GMC_CHECKPOINT.save(model, directory, provenance)


class SavableModel(Protocol):
    """A model :func:`write_checkpoint` writes: its tensors, and the JSON description it is rebuilt from."""

    def state_dict(self) -> dict[str, Any]: ...

    def architecture(self) -> dict[str, Any]: ...


def write_checkpoint(model: SavableModel, directory: str | os.PathLike, provenance: dict, fmt: str, version: int,
                     what: str) -> Path:
    """Write ``model`` (which has ``architecture()``) as ``model.safetensors`` + ``config.json`` into ``directory``.

    Shared by the GMC and the MVAE checkpoints: the weights first, then the config naming their SHA-256, both
    atomically. ``what`` names the directory in a write error.
    """
    if not isinstance(provenance, dict):
        raise CheckpointError(f"provenance must be a JSON-serialisable dict, got {type(provenance).__name__}")
    try:
        json.dumps(provenance, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"provenance must be a JSON-serialisable dict: {exc}") from exc
    directory = ensure_writable_dir(directory, what)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        try:
            save_file(tensors, str(tmp), metadata={"format": fmt, "format_version": str(version)})
        except SafetensorError as exc:
            raise write_error(exc, directory / WEIGHTS_FILE) from exc
    write_json_atomic(directory / CONFIG_FILE, {
        "format": fmt,
        "format_version": version,
        "gmc_rl_version": __version__,
        **model.architecture(),
        "weights_sha256": file_sha256(directory / WEIGHTS_FILE),
        "provenance": dict(provenance),
    })
    return directory


def checkpoint_dir(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """The directory of a checkpoint given as the directory or one of its two files, checked to hold both.

    Shared by the GMC and the MVAE checkpoints (``what`` names the kind in the messages).

    Raises:
        CheckpointError: ``path`` does not exist, is not a directory, or lacks ``config.json`` or the weights.
    """
    path = require_path(path, f"{what} must be a path to a checkpoint directory (or a loaded model)", CheckpointError)
    if path.is_file() and resolve_path(path).name in (CONFIG_FILE, WEIGHTS_FILE):  # a link to one counts too
        path = resolve_path(path).parent
    if not path.is_dir():
        raise CheckpointError(f"{wrong_path(path, what)}; a checkpoint is a directory holding {CONFIG_FILE} and "
                              f"{WEIGHTS_FILE}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):  # a file replaced by a directory or a FIFO is not "missing"
        refuse_non_file(path / name, f"{what} file", CheckpointError,
                        "restore the file from a copy, or pretrain the checkpoint again")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        hint = " (pretraining may not have finished an epoch yet)" if (path / "last").is_dir() else ""
        raise CheckpointError(f"{what} directory {path} is missing {missing}{hint}")
    return path


CONFIG_FIELDS: dict[str, Any] = {
    "format": str,
    "format_version": int,
    "modalities": list,
    "specs": list,
    "model": dict,
    "latent_dim": int,
    "weights_sha256": str,
    "provenance": dict,
}
"""Keys every checkpoint ``config.json`` (GMC and MVAE) must hold, with their JSON types."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_config_file(path: str | os.PathLike, fmt: str, version: int, what: str, a_what: str,
                     extra_fields: Mapping[str, FieldType] | None = None) -> dict[str, Any]:
    """Read and check the ``config.json`` of a checkpoint directory of format ``fmt`` and version ``version``.

    Shared by every kind of checkpoint (:class:`CheckpointKind`). The format tag is checked first (so another kind of
    checkpoint is named as such), then every key of :data:`CONFIG_FIELDS` with its type: a config without the SHA-256
    of its weights is refused, because only that hash ties the weights to the config that describes them; last the
    keys of ``extra_fields`` that this kind needs besides. ``what`` / ``a_what`` name the kind in messages
    ("MVAE checkpoint" / "an MVAE checkpoint").

    Raises:
        CheckpointError: missing files, invalid JSON, another format or version, a missing or mistyped key.
    """
    directory = checkpoint_dir(path, what)
    file = directory / CONFIG_FILE
    config = read_json_object(file, f"{what} config", {"format": str}, CheckpointError)
    if config["format"] != fmt:
        raise CheckpointError(f"{directory} is not {a_what} (format {config['format']!r} in {file}, expected {fmt!r})")
    if config.get("format_version") != version:
        raise CheckpointError(
            f"{directory} has {what} format version {config.get('format_version')!r}; this gmc-rl reads {version}"
        )
    require_fields(config, CONFIG_FIELDS, file, CheckpointError)
    if not _SHA256.fullmatch(config["weights_sha256"]):
        raise CheckpointError(f"{file}: key 'weights_sha256' must be 64 lower-case hex digits, got "
                              f"{config['weights_sha256'][:80]!r}")
    for index, spec in enumerate(config["specs"]):
        require_fields(spec, {"name": str}, file, CheckpointError, where=f"specs[{index}]")
    return require_fields(config, extra_fields or {}, file, CheckpointError)


def read_checkpoint_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a GMC checkpoint directory (format and structure checked)."""
    return GMC_CHECKPOINT.read_config(path)


def load_gmc(path_or_model: str | os.PathLike | GMCModel, device: str = "cpu") -> GMCModel:
    """Load a checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

    A :class:`GMCModel` passed in is frozen in place and stays on its device. A loaded model goes to ``device``
    (``"auto"`` picks CUDA when present) and gets ``provenance`` (dict) and ``checkpoint_path`` attributes.

    Raises:
        CheckpointError: missing files, a malformed config, weights that do not match it or are not finite.
        ConfigError: ``device`` names a device this machine does not have.
    """
    return GMC_CHECKPOINT.load(path_or_model, device)


def build_from_checkpoint(
    directory: Path,
    config: dict[str, Any],
    build: Callable[[dict[str, Any]], Any],
    what: str,
    producer: str,
) -> Any:
    """Build a model from a checkpoint's JSON ``config`` and load its safetensors weights, verified.

    Shared by every safetensors + JSON checkpoint (GMC, the MVAE baseline): the config must record the SHA-256 of
    the weights and the weights must have it, ``build(config)`` must succeed, every tensor must be finite, and the
    tensors must fit the built model exactly.
    Sets ``provenance`` and ``checkpoint_path`` on the model (a torch module; ``build`` returns Any because torch
    types any new attribute of a module as a tensor or a module). ``what`` names the model and ``producer`` the stage
    that writes it, for the error messages.
    """
    weights = directory / WEIGHTS_FILE
    config = require_fields(config, CONFIG_FIELDS, directory / CONFIG_FILE, CheckpointError)
    if file_sha256(weights) != config["weights_sha256"]:
        raise CheckpointError(
            f"{weights} does not match {directory / CONFIG_FILE} (SHA-256 differs): the checkpoint was modified "
            f"or a write was interrupted; re-run or resume {producer}"
        )
    try:
        model = build(config)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # GMCError is a ValueError
        raise CheckpointError(f"{directory / CONFIG_FILE} describes no valid {what}: {exc!r}") from exc
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"cannot read weights {weights}: {exc}") from exc
    check_finite(state, str(weights))
    _load_state(model, state, str(weights))
    if getattr(model, "reference_latents", None) is not None:  # the loaded values pass the checks set_ applies
        try:
            model.set_reference_latents(model.reference_latents, model.reference_neighbours)
        except ModalityError as exc:
            raise CheckpointError(f"{weights}: {exc}") from exc
    model.provenance = dict(config["provenance"])
    model.checkpoint_path = directory
    return model


def check_finite(tensors: dict[str, Any], source: str) -> None:
    """Raise CheckpointError naming the first tensor of ``tensors`` holding NaN or inf.

    A hash proves only that the weights are the ones the config names; weights edited (or diverged) to NaN with
    the hash recomputed would otherwise load, and every latent computed from them would be NaN.
    """
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source}: entry {name!r} is {type(tensor).__name__}, not a tensor")
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(
                    f"{source}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf); the weights are "
                    "corrupted or training diverged, so they are not loaded"
                )


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


def check_model_space(model: Any, observation_space: spaces.Space, kind: str, label: str) -> None:
    """Raise CheckpointError naming every difference between a model's modalities (``model.specs``) and
    ``observation_space``; ``kind`` ("GMC") names its checkpoints and ``label`` ("GMC model") the model itself.
    Shared by GMC and the MVAE and MUSE baselines."""
    try:
        actual = modality_specs(observation_space)
    except ModalityError as exc:
        raise CheckpointError(f"the {label} expects modalities {model.modalities}, but {exc}") from exc
    problems = compare_specs(model.specs, actual)
    if problems:
        source = getattr(model, "checkpoint_path", None)
        what = f"{kind} checkpoint {source}" if source else label
        raise CheckpointError(
            f"{what} does not match the observation space: " + "; ".join(problems)
            + f". It was trained on modalities {[s.to_json() for s in model.specs.values()]}"
        )


def check_space_matches(model: GMCModel, observation_space: spaces.Space) -> None:
    """Raise CheckpointError naming every difference between the model's modalities and ``observation_space``."""
    GMC_CHECKPOINT.check_space(model, observation_space)


_Model = TypeVar("_Model", bound=MultimodalModel)


@dataclass(frozen=True)
class CheckpointKind(Generic[_Model]):
    """One kind of ``config.json`` + ``model.safetensors`` checkpoint (GMC, the MVAE, MUSE): its format, the model
    class it holds and the names its messages use.

    Saving, reading, loading and checking a checkpoint against an observation space are the same for every kind
    (the methods below, on the shared helpers of this module); each kind's module names them for its model
    (:func:`save_gmc`, :func:`load_gmc`; ``gmc_rl.mvae.load_mvae = MVAE_CHECKPOINT.load``, ...).
    """

    model_type: type[_Model]
    """The model class: a model of it is taken as it is by :meth:`load`; its ``from_architecture`` rebuilds one."""
    fmt: str
    """The format tag of ``config.json`` and of the weights' metadata, e.g. ``gmc-rl/mvae-checkpoint``."""
    what: str
    """The checkpoint in messages: ``"checkpoint"`` (GMC), ``"MVAE checkpoint"``."""
    a_what: str
    """The same with its article, for a directory of another format: ``"a gmc-rl GMC checkpoint"``."""
    method: str
    """The method in messages about observation spaces: ``"GMC"``, ``"MVAE"``."""
    label: str
    """The model in messages: ``"GMC model"``, ``"MVAE"``."""
    producer: str
    """The stage that writes it, named when the weights no longer match their config: ``"MVAE pretraining"``."""
    extra_fields: Mapping[str, FieldType] = field(default_factory=dict)
    """Keys its ``config.json`` holds besides :data:`CONFIG_FIELDS` (MUSE: its settings), with their JSON types."""
    version: int = 1
    """The format version this gmc-rl writes and reads."""
    saver: str = field(kw_only=True)
    """The saving function in messages about a model of another class: ``"save_gmc"``, ``"save_mvae"``."""
    a_model: str = field(kw_only=True)
    """The model class with its article, in the same messages: ``"a GMCModel"``, ``"an MVAEModel"``."""

    def save(self, model: _Model, directory: str | os.PathLike, provenance: dict[str, Any]) -> Path:
        """Write ``model`` into ``directory`` (:func:`write_checkpoint`: the weights first, then the config naming
        their SHA-256; ``provenance`` verbatim, a JSON-serialisable dict); return the directory.

        Raises:
            CheckpointError: ``model`` is not of :attr:`model_type`, or ``directory`` cannot hold a checkpoint.
        """
        if not isinstance(model, self.model_type):
            raise CheckpointError(f"{self.saver} expects {self.a_model}, got {type(model).__name__}")
        return write_checkpoint(model, directory, provenance, self.fmt, self.version, f"{self.what} directory")

    def read_config(self, path: str | os.PathLike) -> dict[str, Any]:
        """The format- and structure-checked ``config.json`` of a checkpoint directory of this kind
        (:func:`read_config_file`)."""
        return read_config_file(path, self.fmt, self.version, self.what, self.a_what, self.extra_fields)

    def load(self, path_or_model: str | os.PathLike | _Model, device: str = "cpu") -> _Model:
        """Load a checkpoint directory (or take a model) and return it frozen: eval mode, no gradients.

        A model passed in is frozen in place and stays on its device. A loaded model goes to ``device`` (``"auto"``
        picks CUDA when present) and gets ``provenance`` (dict) and ``checkpoint_path`` attributes
        (:func:`build_from_checkpoint`).
        """
        if isinstance(path_or_model, self.model_type):
            model = path_or_model
        else:
            torch_device = resolve_device(device)
            directory = checkpoint_dir(cast("str | os.PathLike", path_or_model), self.what)  # not a model: a path
            config = self.read_config(directory)
            model = build_from_checkpoint(directory, config, self.model_type.from_architecture, self.label,
                                          self.producer)
            model.to(torch_device)
        model.eval()
        model.requires_grad_(False)
        return model

    def check_space(self, model: Any, observation_space: spaces.Space) -> None:
        """Raise CheckpointError naming every difference between the model's modalities and ``observation_space``
        (:func:`check_model_space`)."""
        check_model_space(model, observation_space, self.method, self.label)


GMC_CHECKPOINT = CheckpointKind(GMCModel, FORMAT, "checkpoint", "a gmc-rl GMC checkpoint", "GMC", "GMC model",
                                "pretraining", version=FORMAT_VERSION, saver="save_gmc", a_model="a GMCModel")
"""GMC checkpoints, written by pretraining (:func:`gmc_rl.pretrain.pretrain`)."""


# ----------------------------------------------------------------------------------------------------------------
# Resumable training state (pretraining's last/).


def save_training_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write a training state (tensors, numbers, strings, lists, dicts only) to ``directory``."""
    directory = ensure_writable_dir(directory, "checkpoint directory")
    path = directory / TRAINER_STATE_FILE
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:  # the zip writer's "file write failed": the state holds tensors and numbers only
            raise write_error(exc, path) from exc
    return path


TRAINING_STATE_FIELDS: dict[str, Any] = {"epoch": int, "model": dict}
"""Entries every resumable training state holds: the epoch count and the model's weights (name -> tensor)."""


def load_training_state(directory: str | os.PathLike, required: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` with ``weights_only=True`` (no arbitrary objects).

    The state must hold the entries of :data:`TRAINING_STATE_FIELDS` plus the caller's ``required`` ones (name ->
    type, e.g. ``{"optimizer": dict, "history": list}``), the epoch must be >= 0 and the ``model`` weights must be
    finite tensors, so a damaged state is refused here, naming the file and the entry, instead of failing later
    with a raw KeyError or inside ``load_state_dict``.

    Raises:
        CheckpointError: no state, an unreadable or unsafe file, a missing or mistyped entry, non-finite weights.
    """
    path = Path(directory) / TRAINER_STATE_FILE
    refuse_non_file(path, "training state", CheckpointError, "remove it to start over, or restore it from a copy")
    if not path.is_file():
        raise CheckpointError(f"no training state to resume from: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError ...)
        raise CheckpointError(f"cannot load training state {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"training state {path} is not a dict but {type(state).__name__}")
    require_fields(state, {**TRAINING_STATE_FIELDS, **(required or {})}, path, CheckpointError)
    if state["epoch"] < 0:
        raise CheckpointError(f"{path}: key 'epoch' must be >= 0, got {state['epoch']}")
    check_finite(state["model"], f"{path} (entry 'model')")
    return state
