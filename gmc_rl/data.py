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
  array dtypes/shapes and the SHA-256 of both archives.

The archives are written with fixed zip timestamps, so the same seed and config give byte-identical files.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmc_rl.errors import DatasetError
from gmc_rl.io import atomic_path, write_json_atomic
from gmc_rl.modalities import ModalitySpec

FORMAT = "gmc-rl/dataset"
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
SPLITS = ("train", "val")
TRANSITION_KEYS = ("actions", "rewards", "terminated", "truncated")
"""Arrays stored next to the modalities (so no modality may use these names)."""
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


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


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compress: bool = True) -> Path:
    """Write ``arrays`` as an ``.npz`` archive, atomically and deterministically (fixed timestamps, given order).

    The result is a standard archive that ``np.load(path, allow_pickle=False)`` reads; unlike ``np.savez`` it does
    not embed the current time, so equal arrays give equal bytes. Deflate keeps mostly-black images small.
    """
    path = Path(path)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=compression, compresslevel=1 if compress else None) as archive:
            for name, array in arrays.items():
                array = np.asarray(array)
                if array.dtype == object:
                    raise DatasetError(f"array {name!r} has dtype object; datasets hold numeric arrays only")
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.compress_type = compression
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return path


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` archive into memory (no pickles), with a DatasetError on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; the file is truncated or corrupted") from exc


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
                            "low": space.low.astype(float).ravel().tolist(), "high": space.high.astype(float).ravel().tolist()})
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    return {"type": type(space).__name__, "repr": str(space)}


def array_layout(specs: Mapping[str, ModalitySpec], action_shape: tuple[int, ...], action_dtype: str) -> dict[str, dict]:
    """Expected per-row shape and dtype of every array of a split."""
    layout = {name: {"shape": list(spec.shape), "dtype": spec.dtype} for name, spec in specs.items()}
    layout["actions"] = {"shape": list(action_shape), "dtype": action_dtype}
    layout["rewards"] = {"shape": [], "dtype": "float32"}
    layout["terminated"] = {"shape": [], "dtype": "bool"}
    layout["truncated"] = {"shape": [], "dtype": "bool"}
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
    metadata = dict(metadata, files=files)
    write_json_atomic(directory / METADATA_FILE, finite_json(metadata))
    return directory


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


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and format-check a dataset's ``metadata.json``."""
    import json

    directory = Path(path)
    file = directory / METADATA_FILE
    if not directory.is_dir():
        raise DatasetError(f"dataset directory not found: {directory}")
    if not file.is_file():
        raise DatasetError(
            f"{directory} is not a gmc-rl dataset: {METADATA_FILE} is missing (collection may not have finished; "
            "run `gmc-rl collect` to create one)"
        )
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{file} is not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DatasetError(f"{file} is not gmc-rl dataset metadata (format {FORMAT!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{file} has format version {metadata.get('format_version')}; this gmc-rl reads {FORMAT_VERSION}")
    return metadata


def load_dataset(path: str | os.PathLike) -> MultimodalDataset:
    """Load a dataset directory, checking every array against the metadata.

    Raises:
        DatasetError: a missing or corrupted file, a missing array, or a shape/dtype/length that disagrees with
            ``metadata.json``.
    """
    directory = Path(path)
    metadata = read_metadata(directory)
    try:
        specs = {d["name"]: ModalitySpec.from_json(d) for d in metadata["spaces"]["observation"]}
        layout = metadata["arrays"]
        sizes = {"train": int(metadata["n_train"]), "val": int(metadata["n_val"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{directory / METADATA_FILE} lacks or mangles a required field: {exc!r}") from exc
    splits = {}
    for split in SPLITS:
        file = directory / f"{split}.npz"
        arrays = load_npz(file)
        missing = [name for name in layout if name not in arrays]
        if missing:
            raise DatasetError(f"{file} lacks arrays {missing} (it has {sorted(arrays)})")
        for name, expected in layout.items():
            array = arrays[name]
            shape = (sizes[split], *expected["shape"])
            if array.shape != shape or array.dtype.name != expected["dtype"]:
                raise DatasetError(
                    f"{file}: array {name!r} is {array.dtype.name}{list(array.shape)}, metadata says "
                    f"{expected['dtype']}{list(shape)}"
                )
        expected_sha = ((metadata.get("files") or {}).get(file.name) or {}).get("sha256")
        if expected_sha is not None and file_sha256(file) != expected_sha:
            raise DatasetError(
                f"{file} does not match the SHA-256 recorded in {METADATA_FILE}: the file was modified or replaced "
                "after collection; collect the dataset again"
            )
        splits[split] = {name: arrays[name] for name in layout}
    return MultimodalDataset(directory, metadata, specs, splits["train"], splits["val"])
