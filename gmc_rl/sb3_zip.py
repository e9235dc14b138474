"""Stable-Baselines3 ``.zip`` models of unknown origin, read and loaded without unpickling anything they hold.

SB3's own ``load`` runs ``cloudpickle.loads`` on several entries of the zip, so a crafted file executes code.
:func:`read_sb3_data` reads the ``data`` entry as plain JSON, :func:`check_sb3_spaces` compares the spaces SB3 keeps
a readable summary of, and :func:`load_sb3_zip` rebuilds every pickled entry from known values before SB3 reads the
weights with ``torch.load(weights_only=True)``. :mod:`gmc_rl.io` re-exports every public name.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

_SB3_PLACEHOLDERS: dict[str, Any] = {"train_freq": 1, "clip_range": 0.2}
"""Training-only entries that SB3 stores pickled and needs to be non-None to rebuild a model; acting ignores them.
Every other pickled entry (schedules, buffer classes, action noise) is replaced by None, which SB3 rebuilds."""

_TORCH_CLASSES = {
    "activation_fn": ("torch.nn", ("ReLU", "Tanh", "SiLU", "ELU", "LeakyReLU", "GELU", "Sigmoid")),
    "optimizer_class": ("torch.optim", ("Adam", "AdamW", "RMSprop", "SGD")),
}
"""policy_kwargs entries that name a class, and the torch classes they may name (read from the readable text)."""


SB3_TEXT_ENTRIES = ("data", "_stable_baselines3_version", "system_info.txt")
"""The entries of an SB3 ``.zip`` besides the ``.pth`` weights; SB3 writes them, :func:`load_model_weights` never
reads them."""
_ENTRY_MARGIN = 64 * 1024
_TENSOR_MARGIN = 1024
"""Bytes allowed beyond the tensors' own in a ``.pth`` entry: torch's zip and pickle framing (SB3's files carry
about 400 bytes a tensor and 1.3 KB an entry)."""
_OPTIMIZER_STATES = 3
"""State tensors an optimiser keeps a parameter at most (Adam 2, RMSprop centered with momentum 3), plus its step."""


def _nbytes(tensors: Any) -> tuple[int, int]:
    import torch

    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors), len(tensors)


def weight_entry_budgets(model: BaseAlgorithm) -> dict[str, int]:
    """The ``.pth`` entries SB3 writes for ``model`` and the most bytes each may unpack to, computed from ``model``'s
    own parameters: a state dict's tensors, an optimiser's state for its parameters, the torch variables."""
    import torch
    from stable_baselines3.common.save_util import recursive_getattr

    names, variables = model._get_torch_save_params()
    budgets = {}
    for name in names:
        owner = recursive_getattr(model, name)
        if isinstance(owner, torch.optim.Optimizer):
            size, count = _nbytes(p for group in owner.param_groups for p in group["params"])
            size, count = _OPTIMIZER_STATES * size + 8 * count, (_OPTIMIZER_STATES + 1) * count
        else:
            size, count = _nbytes(owner.state_dict().values())
        budgets[f"{name}.pth"] = size + _ENTRY_MARGIN + _TENSOR_MARGIN * count
    size, count = _nbytes(recursive_getattr(model, name) for name in variables or [])
    budgets["pytorch_variables.pth"] = size + _ENTRY_MARGIN + _TENSOR_MARGIN * count
    return budgets


def check_weight_entries(path: str | os.PathLike, model: BaseAlgorithm) -> dict[str, int]:
    """Refuse an SB3 ``.zip`` holding an entry SB3 does not write for ``model``, twice the same entry, or a ``.pth``
    entry that unpacks to more bytes than ``model``'s parameters need (:func:`weight_entry_budgets`), reading only
    the zip's directory: nothing is unpacked. Returns the budgets (the ``.pth`` entries SB3 writes for ``model``).

    Raises:
        CheckpointError: the message names the entry and its size.
        zipfile.BadZipFile, OSError: the file is not a zip or cannot be read.
    """
    from gmc_rl.errors import CheckpointError

    budgets = weight_entry_budgets(model)
    kind = type(model).__name__
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    names = [entry.filename for entry in entries]
    for entry in entries:
        if entry.filename not in budgets and entry.filename not in SB3_TEXT_ENTRIES:
            raise CheckpointError(
                f"model file {path} holds an entry {entry.filename!r} ({entry.file_size:,} bytes unpacked) that SB3 "
                f"does not write for a {kind}; it only writes {sorted(budgets) + list(SB3_TEXT_ENTRIES)}: it is not "
                "a model gmc-rl can load"
            )
        if names.count(entry.filename) > 1:
            raise CheckpointError(f"model file {path} holds the entry {entry.filename!r} "
                                  f"{names.count(entry.filename)} times; it is not a model gmc-rl can load")
        budget = budgets.get(entry.filename)
        if budget is not None and entry.file_size > budget:
            raise CheckpointError(
                f"model file {path}: its entry {entry.filename!r} unpacks to {entry.file_size:,} bytes, more than "
                f"the {budget:,} that the weights of this {kind} take; it is not a model for this configuration"
            )
    return budgets


def read_sb3_data(path: str | os.PathLike) -> dict[str, Any]:
    """The ``data`` entry of an SB3 ``.zip`` as plain JSON (pickled entries stay base64 text, never decoded)."""
    from gmc_rl.io import MAX_JSON_BYTES

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("data").file_size  # what unpacking it would allocate, checked first
            if size > MAX_JSON_BYTES:
                raise ValueError(f"{path} is not a Stable-Baselines3 model .zip gmc-rl can read: its data entry "
                                 f"unpacks to {size:,} bytes, more than the {MAX_JSON_BYTES:,} allowed "
                                 "(MAX_JSON_BYTES in gmc_rl.io); SB3 writes a few KB there")
            with archive.open("data") as entry:  # read(size) unpacks at most size bytes, whatever the entry holds
                data = json.loads(entry.read(size))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip ({exc})") from exc
    except MemoryError:
        raise ValueError(f"{path}: the data entry of this Stable-Baselines3 model .zip does not fit in the memory "
                         "available; free memory and rerun") from None
    except RecursionError:
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip (its data entry is nested too deeply)"
                         ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a Stable-Baselines3 model .zip (its data entry is not a mapping)")
    return data


def _is_pickled(value: Any) -> bool:
    return isinstance(value, dict) and ":serialized:" in value


def _stored_space(value: Any) -> str:
    """Readable summary SB3 keeps next to a pickled space: the Dict's sub-spaces, or a Box's shape and dtype."""
    if not isinstance(value, dict):
        return repr(value)
    if "spaces" in value:
        return str(value["spaces"])
    return f"{value.get(':type:', '?')} shape={value.get('_shape')} dtype={value.get('dtype')}"


def _space_summary(space: Any) -> str:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return str(space.spaces)
    return f"{type(space)} shape={list(space.shape) if space.shape is not None else None} dtype={space.dtype}"


def _safe_policy_kwargs(value: dict[str, Any], path: Path) -> dict[str, Any]:
    """Rebuild pickled ``policy_kwargs`` from their readable text, allowing only known torch classes."""
    import importlib
    import re

    kwargs = {}
    for key, item in value.items():
        if key.startswith(":"):
            continue
        text = str(item)
        if key in _TORCH_CLASSES:
            package, names = _TORCH_CLASSES[key]
            found = re.fullmatch(r"<class '(torch\.[\w.]+)\.(\w+)'>", text)
            if found is None or found.group(2) not in names:
                raise ValueError(
                    f"{path}: policy_kwargs[{key!r}] = {text} is stored pickled and is not one of the torch classes "
                    f"{list(names)} that can be rebuilt safely; gmc-rl does not unpickle model files"
                )
            kwargs[key] = getattr(importlib.import_module(package), found.group(2))
        elif isinstance(item, str) and text.startswith("<"):
            raise ValueError(
                f"{path}: policy_kwargs[{key!r}] = {text} is stored pickled; gmc-rl does not unpickle model files"
            )
        else:
            kwargs[key] = item
    return kwargs


def check_sb3_spaces(path: str | os.PathLike, observation_space: Any, action_space: Any) -> None:
    """Raise ValueError if the SB3 ``.zip`` at ``path`` was trained on other spaces (read without unpickling)."""
    data = read_sb3_data(path)
    for key, space in (("observation_space", observation_space), ("action_space", action_space)):
        value = data.get(key)
        if not _is_pickled(value):
            raise ValueError(f"{path} has no readable {key}; it is not a Stable-Baselines3 model .zip")
        if _stored_space(value) != _space_summary(space):
            what = "observations" if key == "observation_space" else "actions"
            raise ValueError(f"{path} was trained on {what} {_stored_space(value)}, but the env has {space}")


def _skeleton(path: Path, algo_class: type[BaseAlgorithm], custom: dict[str, Any], device: str) -> BaseAlgorithm:
    """The model SB3's ``load`` builds from the ``data`` entry, before any weight is read: its parameters bound the
    sizes of the zip's ``.pth`` entries. ``custom`` replaces every pickled entry, so nothing is unpickled."""
    from stable_baselines3.common.save_util import json_to_data

    with zipfile.ZipFile(path) as archive:  # read_sb3_data checked the entry's size
        data = json_to_data(archive.read("data").decode(), custom_objects=custom)
    kwargs = data.get("policy_kwargs")
    if isinstance(kwargs, dict):
        kwargs.pop("device", None)
    model = algo_class(policy=data["policy_class"], env=None, device=device,
                       _init_setup_model=False)  # type: ignore[call-arg]
    model.__dict__.update(data)
    model._setup_model()
    return model


def load_sb3_zip(
    path: str | os.PathLike,
    algo_class: type[BaseAlgorithm],
    observation_space: Any,
    action_space: Any,
    device: str = "cpu",
) -> Any:
    """Load an SB3 model ``.zip`` for acting, without unpickling anything stored in it.

    SB3's own ``load`` runs ``cloudpickle.loads`` on several entries of the zip (spaces, policy class, schedules,
    ``policy_kwargs`` holding classes), so a crafted file executes code. Here every such entry is replaced before
    SB3 sees it: the spaces by the env's (after comparing them with the readable summary SB3 keeps), the policy
    class by the algorithm's own ``MultiInputPolicy`` / ``MlpPolicy``, class-valued ``policy_kwargs`` by known torch
    classes named in their readable text, and training-only entries by neutral values. The weights are then read
    by SB3 with ``torch.load(weights_only=True)``.

    Raises:
        ValueError: the file is not an SB3 zip, was trained on other spaces, holds a pickled entry that cannot be
            rebuilt safely, holds entries SB3 does not write or larger than the rebuilt model's weights (checked
            before anything is unpacked, :func:`check_weight_entries`), or its weights do not fit the rebuilt model
            (the message names which).
    """
    import pickle

    from gymnasium import spaces

    path = Path(path)
    data = read_sb3_data(path)
    check_sb3_spaces(path, observation_space, action_space)
    custom: dict[str, Any] = {}
    for key, value in data.items():
        if not _is_pickled(value):
            continue
        if key in ("observation_space", "action_space"):
            custom[key] = observation_space if key == "observation_space" else action_space
        elif key == "policy_class":
            name = "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"
            custom[key] = algo_class.policy_aliases[name]
        elif key == "policy_kwargs":
            custom[key] = _safe_policy_kwargs(value, path)
        else:
            custom[key] = _SB3_PLACEHOLDERS.get(key)
    try:
        check_weight_entries(path, _skeleton(path, algo_class, custom, device))  # nothing unpacked before it
        return algo_class.load(path, device=device, custom_objects=custom)
    except (RuntimeError, KeyError, TypeError, AttributeError, AssertionError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"cannot load {path} as a {algo_class.__name__} model: {exc}") from exc
