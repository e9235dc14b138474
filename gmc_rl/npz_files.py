"""The ``.npz`` archives of a dataset: written deterministically, and checked before anything in them is unpacked.

:func:`check_npz` compares an archive with what the dataset's ``metadata.json`` records of it (its arrays, their
shapes and dtypes from the ``.npy`` headers alone, its size and SHA-256) before :func:`read_npz` unpacks it, so a
replaced or crafted archive is refused by name, never after numpy allocated what its headers claim. Kept apart from
:mod:`gmc_rl.data`, which re-exports every name.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gmc_rl.errors import DatasetError
from gmc_rl.io import atomic_path, require_existing

METADATA_FILE = "metadata.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


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


_NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, NotImplementedError)
"""What a damaged archive raises while it is read: its directory, a compressed stream, an array header or a
compression method that is damaged."""

NPZ_SLACK = 64 * 2**20
"""How much larger than ``metadata.json`` records (64 MiB) an archive may be for :func:`check_npz` to read its zip
directory and ``.npy`` headers, to say what differs (an array of another shape, one more array) rather than only that
its SHA-256 does not match. An archive re-saved with another compression is a little larger or smaller."""

ArrayLayout = Mapping[str, tuple[tuple[int, ...], str]]
"""Array name -> (shape, dtype name) that an archive must hold exactly (:func:`check_npz`)."""


def _size_text(count: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Name -> (shape, dtype) of every array of an ``.npz`` archive, from the ``.npy`` headers alone: a few hundred
    bytes of each member are unpacked, whatever the arrays hold or claim to hold.

    Raises:
        DatasetError: the archive is damaged, holds a member that is not an array (``.npy``), a name twice, or an
            array of Python objects (which would need unpickling).
    """
    path = Path(path)
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if name == info.filename or name in headers:
                    why = "is not an array (.npy)" if name == info.filename else "is there twice"
                    raise DatasetError(f"{path}: member {info.filename!r} {why}; it is not an archive gmc-rl wrote")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise ValueError(f"array {name!r} has .npy format version {version}")
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise DatasetError(f"{path}: array {name!r} holds Python objects ({dtype}); gmc-rl reads numeric "
                                       "arrays only and never unpickles")
                headers[name] = (tuple(shape), dtype)
    except DatasetError:
        raise
    except MemoryError:
        raise DatasetError(f"cannot read {path}: its zip directory does not fit in memory; the file is corrupted"
                           ) from None
    except _NPZ_ERRORS as exc:
        raise DatasetError(f"cannot read {path}: {exc}; the file is truncated or corrupted") from exc
    return headers


def check_npz(path: str | os.PathLike, layout: ArrayLayout, sha256: str, size: int) -> None:
    """Check an archive against what ``metadata.json`` records of it before anything in it is unpacked: the arrays
    it holds and their shapes and dtypes (``layout``, read from the ``.npy`` headers), its size in bytes and its
    SHA-256 (``sha256``, hashed while streaming the file). The zip directory and headers of a file more than
    :data:`NPZ_SLACK` larger than the recorded size are not read (zipfile reads the directory whole, and a crafted
    file can claim one as large as itself): such a file is only hashed, and refused for its hash.

    Raises:
        DatasetError: naming the file and what differs: a damaged archive, an array it lacks or holds beyond
            ``layout``, a shape or dtype, or a SHA-256 that is not the recorded one.
    """
    path = require_existing(path, "dataset file", "file", DatasetError)
    actual = path.stat().st_size
    if actual <= size + NPZ_SLACK:  # an edited archive is named for what differs; a much larger one is only hashed
        headers = npz_headers(path)
        missing = [name for name in layout if name not in headers]
        if missing:
            raise DatasetError(f"{path} lacks arrays {missing} (it has {sorted(headers)})")
        extra = [name for name in headers if name not in layout]
        if extra:
            raise DatasetError(
                f"{path} holds arrays {extra} that {METADATA_FILE} does not list (it lists {list(layout)}): the file "
                "was modified or replaced after collection; collect the dataset again"
            )
        for name, (shape, dtype) in layout.items():
            found_shape, found_dtype = headers[name]
            if found_shape != tuple(shape) or found_dtype.name != dtype:
                raise DatasetError(
                    f"{path}: array {name!r} is {found_dtype.name}{list(found_shape)}, metadata says "
                    f"{dtype}{list(shape)}"
                )
    if actual != size or file_sha256(path) != sha256:
        grew = f" (it is {actual:,} bytes, {METADATA_FILE} records {size:,})" if actual != size else ""
        raise DatasetError(
            f"{path} does not match the SHA-256 recorded in {METADATA_FILE}{grew}: the file was modified or replaced "
            "after collection (nothing in it was unpacked); collect the dataset again"
        )


def read_npz(path: str | os.PathLike, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Unpack the arrays ``names`` (all, by default) of an ``.npz`` archive (no pickles). Each array's size is read
    from its header first; one that does not fit in memory is a DatasetError naming it, never a raw MemoryError.
    Call :func:`check_npz` first where the archive's hash is known: this reads whatever the headers claim."""
    path = require_existing(path, "dataset file", "file", DatasetError)
    headers = npz_headers(path)
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in headers if names is None else names:
                shape, dtype = headers[name]
                try:
                    with archive.open(f"{name}.npy") as member:
                        arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
                except MemoryError:
                    needed = math.prod(shape) * dtype.itemsize
                    raise DatasetError(
                        f"cannot unpack {path}: array {name!r} ({dtype.name}{list(shape)}) needs {_size_text(needed)}, "
                        "more than the memory available; free memory, or use a machine with more"
                    ) from None
    except DatasetError:
        raise
    except _NPZ_ERRORS as exc:
        raise DatasetError(f"cannot read {path}: {exc}; the file is truncated or corrupted") from exc
    return arrays


def load_npz(path: str | os.PathLike, layout: ArrayLayout | None = None, sha256: str | None = None,
             size: int | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz`` archive into memory (no pickles), with a DatasetError on a bad file.

    With ``layout``, ``sha256`` and ``size`` (what a dataset's ``metadata.json`` records of it), the archive is
    checked first (:func:`check_npz`) and only the arrays of ``layout`` are unpacked; without them, every array.
    """
    if layout is not None and sha256 is not None and size is not None:
        check_npz(path, layout, sha256, size)
    return read_npz(path, None if layout is None else list(layout))
