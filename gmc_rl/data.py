"""Multimodal transition datasets on disk: ``metadata.json`` + ``train.npz`` + ``val.npz``.

Layout of a dataset directory (written by :func:`gmc_rl.collect.collect`):

- ``train.npz`` / ``val.npz``: NumPy ``.npz`` archives (loaded with ``allow_pickle=False``) holding one array per
  modality, named after it, of shape ``(N, *shape)`` with the env's dtype (images stay ``uint8``), plus
  ``actions`` ``(N, *action_shape)``, ``rewards`` float32 ``(N,)``, ``terminated`` and ``truncated`` bool ``(N,)``.
  Row t holds the observation *before* action t. Rows are grouped per parallel env in time order, so the next
  observation of row t is row t + 1 unless row t is terminated or truncated (the last row of each env's chunk is
  marked truncated). Next observations are not stored (this halves the size).
- ``metadata.json``: format tag and version, env id and kwargs, modality specs and action space, seed, steps,
  split sizes, the behaviour policy, the package version, per-feature ``normalization`` statistics (mean and std
  of every vector modality over the training split; images need none, the model scales them by 1/255), the
  array dtypes/shapes, the SHA-256 of both archives (``files``) and the SHA-256 of the metadata itself
  (``metadata_sha256``, over its canonical JSON without that key), so an edit of ``metadata.json`` is detected.
  Every key is checked for its presence and type when the metadata is read (:func:`read_metadata`).

The archives are written with fixed zip timestamps, so the same seed and config give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmc_rl.errors import DatasetError
from gmc_rl.io import (
    read_json_object,
    refuse_non_file,
    require_existing,
    require_fields,
    require_path,
    write_json_atomic,
)
from gmc_rl.modalities import ModalitySpec
from gmc_rl.npz_files import (  # noqa: F401  (re-exported: gmc_rl.data is where callers import them)
    _NPZ_ERRORS,
    METADATA_FILE,
    NPZ_SLACK,
    ArrayLayout,
    _size_text,
    check_npz,
    file_sha256,
    load_npz,
    npz_headers,
    read_npz,
    save_npz,
)

FORMAT = "gmc-rl/dataset"
FORMAT_VERSION = 2
"""Version written by this gmc-rl. Version 2 added the metadata's own SHA-256 (``metadata_sha256``)."""
READABLE_VERSIONS = (1, 2)
"""Versions this gmc-rl reads: datasets collected before the metadata was hashed (1) keep working, their archives
still checked against their SHA-256; only an edit of their metadata.json goes unnoticed."""
SPLITS = ("train", "val")
TRANSITION_KEYS = ("actions", "rewards", "terminated", "truncated")
"""Arrays of every transition, stored next to the modalities."""
STATES_KEY = "states"
"""Optional array of the env's true state per row (``info["state"]``, float32 ``(N, d)``), recorded when the env
exposes one: read only by diagnostics (:mod:`gmc_rl.state_probe`), never by an encoder or a controller."""
RESERVED_KEYS = (*TRANSITION_KEYS, STATES_KEY)
"""Every array name stored next to the modalities: no modality may use these names."""
MINARI_PREFIX = "minari:"
""":func:`load_dataset` reads ``"minari:<dataset id>"`` from Minari's data directory (:mod:`gmc_rl.minari_data`)."""


def finite_json(obj: Any) -> Any:
    """Copy of ``obj`` safe for strict JSON: non-finite floats become the strings "inf", "-inf", "nan".

    ``float()`` reads those strings back, so e.g. :meth:`ModalitySpec.from_json` round-trips unbounded boxes.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Mapping):
        return {key: finite_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(value) for value in obj]
    return obj


def normalization_stats(arrays: Mapping[str, np.ndarray], specs: Mapping[str, ModalitySpec]) -> dict[str, dict]:
    """Per-feature mean and std (flat lists) of every vector modality; images get none (scaled by 1/255)."""
    stats = {}
    for name, spec in specs.items():
        if spec.kind == "image":
            continue
        values = np.asarray(arrays[name], dtype=np.float64).reshape(len(arrays[name]), -1)
        if len(values) == 0:
            raise DatasetError(f"cannot compute normalisation statistics of {name!r} from 0 transitions")
        stats[name] = {"mean": values.mean(axis=0).tolist(), "std": values.std(axis=0).tolist()}
    return stats


def space_to_json(space: Any) -> dict[str, Any]:
    """JSON description of a Gymnasium space (action spaces in metadata)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return finite_json({"type": "Box", "shape": list(space.shape), "dtype": np.dtype(space.dtype).name,
                            "low": space.low.astype(float).ravel().tolist(),
                            "high": space.high.astype(float).ravel().tolist()})
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    return {"type": type(space).__name__, "repr": str(space)}


def array_layout(specs: Mapping[str, ModalitySpec], action_shape: tuple[int, ...],
                 action_dtype: str, state_dim: int | None = None) -> dict[str, dict]:
    """Expected per-row shape and dtype of every array of a split (``states`` only with a ``state_dim``)."""
    layout = {name: {"shape": list(spec.shape), "dtype": spec.dtype} for name, spec in specs.items()}
    layout["actions"] = {"shape": list(action_shape), "dtype": action_dtype}
    layout["rewards"] = {"shape": [], "dtype": "float32"}
    layout["terminated"] = {"shape": [], "dtype": "bool"}
    layout["truncated"] = {"shape": [], "dtype": "bool"}
    if state_dim is not None:
        layout[STATES_KEY] = {"shape": [state_dim], "dtype": "float32"}
    return layout


def write_dataset(
    directory: str | os.PathLike, train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray], metadata: dict
) -> Path:
    """Write both splits, then ``metadata.json`` (last: its presence marks a complete dataset)."""
    directory = Path(directory)
    files = {}
    for split, arrays in (("train", train), ("val", val)):
        path = save_npz(directory / f"{split}.npz", arrays)
        files[path.name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    metadata = finite_json(dict(metadata, files=files))
    metadata[DIGEST_KEY] = metadata_digest(metadata)
    write_json_atomic(directory / METADATA_FILE, metadata)
    return directory


DIGEST_KEY = "metadata_sha256"
"""Key of ``metadata.json`` holding the SHA-256 of the rest of the metadata (:func:`metadata_digest`)."""


def metadata_digest(metadata: Mapping[str, Any]) -> str:
    """SHA-256 of ``metadata`` without :data:`DIGEST_KEY`, as canonical JSON (sorted keys, no spaces).

    The metadata says how to read the arrays and how to normalise them (its ``normalization`` statistics end up in
    every model trained on the dataset), so an edit of it must be as visible as an edit of an archive. Like the
    archives' hashes it detects accidents and careless edits, not someone who recomputes it.
    """
    body = {key: value for key, value in metadata.items() if key != DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class MultimodalDataset:
    """A loaded dataset: ``train`` and ``val`` dicts of arrays, the ``metadata`` dict and the modality ``specs``."""

    path: Path
    metadata: dict[str, Any]
    specs: dict[str, ModalitySpec]
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    @property
    def modalities(self) -> list[str]:
        return list(self.specs)

    @property
    def env_id(self) -> str:
        return str(self.metadata["env_id"])

    @property
    def normalization(self) -> dict[str, dict]:
        """Per-feature mean/std of the vector modalities (training split), as stored in the metadata."""
        return dict(self.metadata.get("normalization") or {})

    @property
    def nbytes(self) -> int:
        """Bytes held in memory by all arrays of both splits."""
        return sum(a.nbytes for split in (self.train, self.val) for a in split.values())

    def observations(self, split: str = "train") -> dict[str, np.ndarray]:
        """The modality arrays of one split (a dict shaped like a batch of env observations)."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; valid: {list(SPLITS)}")
        arrays = self.train if split == "train" else self.val
        return {name: arrays[name] for name in self.specs}

    def __len__(self) -> int:
        return len(self.train["rewards"]) + len(self.val["rewards"])

    def __repr__(self) -> str:
        mods = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in self.specs.values())
        return (f"MultimodalDataset({str(self.path)!r}, env={self.env_id}, train={len(self.train['rewards'])}, "
                f"val={len(self.val['rewards'])}, modalities: {mods})")


METADATA_FIELDS: dict[str, Any] = {
    "format": str,
    "format_version": int,
    "env_id": str,
    "env_kwargs": dict,
    "modalities": list,
    "spaces": dict,
    "n_train": int,
    "n_val": int,
    "normalization": dict,
    "arrays": dict,
    "identity": dict,
    "files": dict,
    DIGEST_KEY: str,
}
"""Keys every ``metadata.json`` holds, with their JSON types (checked by :func:`read_metadata`)."""

METADATA_OPTIONAL: dict[str, Any] = {
    "gmc_rl_version": str, "seed": int, "steps": int, "n_envs": int, "policy": str, "focused_envs": int,
    "episodes_ended": dict, "versions": dict, "state_names": list,
}
"""Informative keys, checked for their type when present."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_shape(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a dataset's ``metadata.json`` and check its whole structure.

    Every key of :data:`METADATA_FIELDS` must be present with its type, the SHA-256 of both archives must be
    recorded (without them an edited or swapped archive would go unnoticed), and the modality specs, array layout
    and normalisation statistics must agree with one another. The metadata's own SHA-256 is checked by
    :func:`load_dataset` once the arrays are (:func:`check_metadata_digest`).

    Raises:
        DatasetError: no dataset directory or metadata, invalid JSON, another format or version, or a missing,
            mistyped or inconsistent key (the message names the file and the key).
    """
    directory = require_existing(path, "dataset directory", "directory", DatasetError)
    file = directory / METADATA_FILE
    refuse_non_file(file, "dataset metadata", DatasetError, "collect the dataset again with `gmc-rl collect`")
    if not file.is_file():
        raise DatasetError(
            f"{directory} is not a gmc-rl dataset: {METADATA_FILE} is missing (collection may not have finished; "
            "run `gmc-rl collect` to create one)"
        )
    metadata = read_json_object(file, "dataset metadata", {}, DatasetError)
    if metadata.get("format") != FORMAT:
        raise DatasetError(f"{file} is not gmc-rl dataset metadata (format {FORMAT!r})")
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise DatasetError(f"{file} has format version {version}; this gmc-rl reads versions {list(READABLE_VERSIONS)}")
    for key in ("files", DIGEST_KEY) if version >= 2 else ("files",):
        if key not in metadata:
            raise DatasetError(
                f"{file} lacks the required key {key!r} (the SHA-256 that makes edits of the dataset detectable); "
                "it was edited or written by another program: collect the dataset again"
            )
    required = METADATA_FIELDS if version >= 2 else {k: v for k, v in METADATA_FIELDS.items() if k != DIGEST_KEY}
    require_fields(metadata, required, file, DatasetError, optional=METADATA_OPTIONAL)
    for split in SPLITS:
        entry = require_fields(metadata["files"], {f"{split}.npz": dict}, file, DatasetError, where="files")
        require_fields(entry[f"{split}.npz"], {"sha256": str, "bytes": int}, file, DatasetError,
                       where=f"files.{split}.npz")
        if not _SHA256.fullmatch(entry[f"{split}.npz"]["sha256"]):
            raise DatasetError(f"{file}: key 'files.{split}.npz.sha256' must be 64 lower-case hex digits")
    for key in ("n_train", "n_val"):
        if metadata[key] < 0:
            raise DatasetError(f"{file}: key {key!r} must be >= 0, got {metadata[key]}")
    observation = require_fields(metadata["spaces"], {"observation": list}, file, DatasetError, where="spaces")
    names = []
    for index, spec in enumerate(observation["observation"]):
        spec = require_fields(spec, {"name": str}, file, DatasetError, where=f"spaces.observation[{index}]")
        names.append(spec["name"])
    if names != metadata["modalities"]:
        raise DatasetError(f"{file}: key 'modalities' {metadata['modalities']} disagrees with the observation specs "
                           f"{names} of 'spaces.observation'")
    missing = [name for name in (*names, *TRANSITION_KEYS) if name not in metadata["arrays"]]
    if missing:
        raise DatasetError(f"{file}: key 'arrays' lacks the layout of {missing}")
    for name, layout in metadata["arrays"].items():
        require_fields(layout, {"shape": list, "dtype": str}, file, DatasetError, where=f"arrays.{name}")
        if not _is_shape(layout["shape"]):
            raise DatasetError(f"{file}: key 'arrays.{name}.shape' must be a list of sizes, got {layout['shape']!r}")
    for name, stats in metadata["normalization"].items():
        if name not in names:
            raise DatasetError(f"{file}: key 'normalization.{name}' is not a modality of the dataset {names}")
        require_fields(stats, {"mean": list, "std": list}, file, DatasetError, where=f"normalization.{name}")
    return metadata


def check_metadata_digest(metadata: Mapping[str, Any], file: Path) -> None:
    """Raise DatasetError unless ``metadata`` has the SHA-256 it records in :data:`DIGEST_KEY` (version 1
    metadata, written before the digest existed, has none to check)."""
    if metadata.get("format_version") == 1 and DIGEST_KEY not in metadata:
        return
    if metadata_digest(metadata) != metadata.get(DIGEST_KEY):
        raise DatasetError(
            f"{file} does not match the SHA-256 it records ({DIGEST_KEY}): the metadata was edited after collection; "
            "collect the dataset again"
        )


def load_dataset(path: str | os.PathLike) -> MultimodalDataset:
    """Load a dataset directory, checking every array against the metadata.

    A Minari dataset (``"minari:<dataset id>"``) is loaded by :func:`gmc_rl.dataset_sources.load_dataset`, which
    takes either kind.

    Raises:
        DatasetError: a missing or corrupted file, a missing array, or a shape/dtype/length that disagrees with
            ``metadata.json``; a ``"minari:"`` source (named with the function that loads it).
    """
    if isinstance(path, str) and path.startswith(MINARI_PREFIX):
        raise DatasetError(f"{path!r} names a Minari dataset, not a dataset directory: load it with "
                           "gmc_rl.dataset_sources.load_dataset (a directory or minari:ID)")
    directory = require_path(path, "a dataset must be given as a path to its directory", DatasetError)
    metadata = read_metadata(directory)
    try:
        specs = {d["name"]: ModalitySpec.from_json(d) for d in metadata["spaces"]["observation"]}
    except (KeyError, TypeError, ValueError) as exc:  # ModalityError is a ValueError
        raise DatasetError(f"{directory / METADATA_FILE}: key 'spaces.observation' describes no valid modality: "
                           f"{exc!r}") from exc
    sizes = {"train": metadata["n_train"], "val": metadata["n_val"]}
    layouts = {split: {name: ((sizes[split], *expected["shape"]), expected["dtype"])
                       for name, expected in metadata["arrays"].items()} for split in SPLITS}
    # Every check comes before the first array is unpacked: the archives' contents (their .npy headers) against the
    # metadata, their SHA-256, then the metadata's own; only then is memory allocated, as much as the metadata says.
    for split in SPLITS:
        record = metadata["files"][f"{split}.npz"]
        check_npz(directory / f"{split}.npz", layouts[split], record["sha256"], record["bytes"])
    check_metadata_digest(metadata, directory / METADATA_FILE)  # after the archives, so a damaged one is named
    splits = {split: read_npz(directory / f"{split}.npz", list(layouts[split])) for split in SPLITS}
    return MultimodalDataset(directory, metadata, specs, splits["train"], splits["val"])
