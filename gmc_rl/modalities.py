"""Modalities: what gmc-rl knows about an environment, read from its ``Dict`` observation space.

gmc-rl is env-agnostic: every component (collection, model, wrappers, evaluation) learns which sensors exist,
their shapes and dtypes only through :func:`modality_specs`. A modality is one ``Box`` entry of the ``Dict``.
``uint8`` boxes of rank 3 ``(C, H, W)`` are images (channel-first, stacked frames are channels); every other box is
a vector modality and is flattened by the encoders.

The key :data:`AVAILABILITY_KEY` is reserved: :class:`gmc_rl.wrappers.ModalityDropout` adds it to carry the mask of
the modalities that are present in the current observation. It is never a modality.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from gmc_rl.errors import ModalityError, SensorValueError, suggest

AVAILABILITY_KEY = "available"
"""Observation key holding a ``MultiBinary(M)`` mask of present modalities (in :func:`modality_specs` order)."""


@dataclass(frozen=True)
class ModalitySpec:
    """Name, shape, dtype and kind ("image" or "vector") of one sensor, plus its declared bounds."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    low: float
    high: float

    @property
    def flat_dim(self) -> int:
        """Number of scalars in one observation of this modality."""
        return int(np.prod(self.shape))

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form, stored in datasets' metadata and checkpoints' configs."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModalitySpec:
        """Inverse of :meth:`to_json`."""
        return cls(
            name=str(data["name"]),
            shape=tuple(int(s) for s in data["shape"]),
            dtype=str(data["dtype"]),
            kind=str(data["kind"]),
            low=float(data["low"]),
            high=float(data["high"]),
        )


RESERVED_CHARACTERS = "+:"
"""Characters a modality name may not contain: evaluation conditions use them ("image+sound", "noise:image:0.1")."""


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ModalityError(f"modality names must be non-empty strings, got {name!r}")
    bad = [c for c in RESERVED_CHARACTERS if c in name]
    if bad:
        raise ModalityError(
            f"modality name {name!r} contains {bad}, which evaluation conditions use as separators "
            f"('image+sound', 'noise:image:0.1'); rename that key of the Dict observation space"
        )


def _spec_from_box(name: str, box: spaces.Space) -> ModalitySpec:
    _check_name(name)
    if not isinstance(box, spaces.Box):
        raise ModalityError(
            f"modality {name!r} has space {box}; gmc-rl supports only Box modalities (images or vectors)"
        )
    if int(np.prod(box.shape)) == 0:
        raise ModalityError(f"modality {name!r} has the empty shape {box.shape}; a sensor must give at least one value")
    dtype = np.dtype(box.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ModalityError(f"modality {name!r} has dtype {dtype}; gmc-rl supports numeric Box modalities")
    kind = "image" if dtype == np.uint8 and len(box.shape) == 3 else "vector"
    low = float(np.min(box.low)) if box.low.size else 0.0
    high = float(np.max(box.high)) if box.high.size else 0.0
    return ModalitySpec(name=name, shape=tuple(int(s) for s in box.shape), dtype=dtype.name, kind=kind, low=low,
                        high=high)


def modality_specs(space: spaces.Space) -> dict[str, ModalitySpec]:
    """Return the modalities of a ``Dict`` observation space, in the space's key order.

    Raises:
        ModalityError: if the space is not a ``Dict``, has fewer than two modalities, a modality is not a Box (or
            has no values, or a non-numeric dtype), or a name is not a string or contains ``+`` or ``:``.
    """
    if not isinstance(space, spaces.Dict):
        raise ModalityError(
            f"gmc-rl needs a Dict observation space keyed by modality name, got {type(space).__name__}: {space}"
        )
    specs = {
        name: _spec_from_box(name, sub) for name, sub in space.spaces.items() if name != AVAILABILITY_KEY
    }
    if len(specs) < 2:
        raise ModalityError(
            f"gmc-rl needs at least 2 modalities in the Dict observation space, got {len(specs)}: {list(specs)}"
        )
    return specs


def check_modalities(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Validate a list of modality names against ``available``; ``None`` means all of them.

    Returns the requested names in the canonical order of ``available`` (duplicates removed).

    Raises:
        ModalityError: for an empty list, a plain string instead of a list, or an unknown name.
    """
    available = list(available)
    if requested is None:
        return available
    if isinstance(requested, str):
        raise ModalityError(f"modalities must be a list of names, got the string {requested!r}; use [{requested!r}]")
    if isinstance(requested, (bytes, bytearray, memoryview)):
        raise ModalityError(f"modalities must be a list of names (str), got {_shown(requested)}; use "
                            f"[{_decoded(requested)!r}]")
    if isinstance(requested, (set, frozenset, Mapping)) or not isinstance(requested, Iterable):
        hint = f"; use a list such as {sorted(map(str, requested))}" if isinstance(requested, (set, frozenset)) else ""
        raise ModalityError(f"modalities must be a list of names (str) such as {available[:1]} (or None for all), "
                            f"got {_shown(requested)}{hint}")
    requested = list(requested)
    if not requested:
        raise ModalityError(f"the list of modalities is empty; choose at least one of {available}")
    for name in requested:
        if isinstance(name, (bytes, bytearray)):
            raise ModalityError(f"modality names must be strings, got {_shown(name)} in the list of modalities; use "
                                f"{_decoded(name)!r}")
        if not isinstance(name, str):
            raise ModalityError(f"modality names must be strings, got {_shown(name)} in the list of modalities; "
                                f"available modalities are {available}")
        if name not in available:
            raise ModalityError(
                f"unknown modality {name!r}; available modalities are {available}.{suggest(name, available)}"
            )
    return [name for name in available if name in requested]


def _shown(value: Any) -> str:
    """``value``'s type and (at most 60 characters of) its repr, for a message about a wrong argument."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _decoded(value: bytes | bytearray | memoryview) -> str:
    """The text of a bytes name, for the hint of what to pass instead."""
    return bytes(value).decode("utf-8", "replace")


def compare_specs(expected: Mapping[str, ModalitySpec], actual: Mapping[str, ModalitySpec]) -> list[str]:
    """List human-readable differences between two sets of modality specs (empty if they match).

    Bounds are not compared: they document ranges, while names, shapes and dtypes decide compatibility.
    """
    problems: list[str] = []
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    if missing:
        problems.append(f"modalities {missing} are expected but missing")
    if extra:
        problems.append(f"modalities {extra} are present but not expected")
    for name in expected:
        if name not in actual:
            continue
        e, a = expected[name], actual[name]
        if e.shape != a.shape:
            problems.append(f"modality {name!r}: expected shape {e.shape}, got {a.shape}")
        if e.dtype != a.dtype:
            problems.append(f"modality {name!r}: expected dtype {e.dtype}, got {a.dtype}")
    return problems


def _dtype_name(dtype: Any) -> str:
    """The name of a numpy or torch dtype without its module (``uint8``, ``float32``, ``bool``, ``bfloat16``)."""
    return str(dtype).removeprefix("torch.")


_NUMPY_FLOATS = ("float16", "float32", "float64")
"""The numpy float dtypes torch can take; ``longdouble`` (float96/float128) it cannot."""


def is_float_dtype(dtype: Any) -> bool:
    """True for a real floating-point dtype torch can take: float16/32/64 and, in torch, bfloat16. Complex is not;
    numpy's ``longdouble`` is not (torch has no such type)."""
    kind = getattr(dtype, "is_floating_point", None)  # torch dtypes
    if isinstance(kind, bool):
        return kind
    try:
        return np.dtype(dtype).name in _NUMPY_FLOATS
    except TypeError:
        return False


def check_array_storage(label: str, value: Any) -> None:
    """Raise ModalityError (its message starting with ``label``, e.g. ``"modality 'sound'"``) for arrays whose values
    cannot be read as they are: numpy arrays in the other byte order (``>f4`` on this machine), tensors on the
    ``meta`` device (shapes without values), masked arrays (``numpy.ma``: the masked entries would be read as the
    values stored under the mask). Used for encoder batches and for a policy's observations."""
    if isinstance(value, np.ma.MaskedArray) or type(value).__name__ == "MaskedTensor":
        raise ModalityError(f"{label}: a masked array (numpy.ma or torch.masked) is not accepted, since its masked "
                            "entries would be read as whatever they hold; fill them first (array.filled(value)) or "
                            "leave the sensor out of the modalities")
    if getattr(value, "is_nested", False):
        raise ModalityError(f"{label}: a nested tensor is not accepted; give one array of the batch's shape")
    if getattr(value, "is_quantized", False) or "float8" in str(getattr(value, "dtype", "")):
        raise ModalityError(f"{label}: dtype {_dtype_name(value.dtype)} is not accepted; convert it first "
                            "(tensor.dequantize() or tensor.float())")
    if callable(getattr(value, "is_conj", None)) and value.is_conj():
        raise ModalityError(f"{label}: a complex tensor is not accepted; give real values")
    layout = getattr(value, "layout", None)
    if layout is not None and str(layout) != "torch.strided":
        raise ModalityError(f"{label}: a tensor of layout {layout} is not accepted; convert it first "
                            "(tensor.to_dense())")
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, np.dtype) and not dtype.isnative:
        raise ModalityError(f"{label}: dtype {dtype.str} is in the other byte order than this machine's; "
                            f"convert it first (array.astype(array.dtype.newbyteorder('=')))")
    if getattr(value, "is_meta", False):
        raise ModalityError(f"{label}: a tensor on the meta device holds no values")


def _check_dtype(name: str, spec: ModalitySpec, dtype: Any) -> bool:
    """Raise ModalityError unless a batch of dtype ``dtype`` is what modality ``spec`` holds; return whether it is
    a float dtype (whose values must then be finite).

    An image is raw ``uint8`` and nothing else: ``int64`` holding 1000, ``int8`` holding -100 or ``bool`` would be
    scaled by 1/255 into values the encoder never saw. A vector takes any float dtype (it is cast to the model's), or
    exactly its own declared dtype when the env declares a non-float Box (``int32`` counts, a ``uint8`` vector);
    integers, booleans, complex or object arrays are refused for a float vector.
    """
    got = _dtype_name(dtype)
    if spec.kind == "image":
        if got != "uint8":
            raise ModalityError(f"modality {name!r}: expected dtype uint8 (raw image), got {got}")
        return False
    if is_float_dtype(dtype):
        return True
    if got != spec.dtype:
        declared = "" if is_float_dtype(spec.dtype) else f" or {spec.dtype} (the declared dtype)"
        raise ModalityError(f"modality {name!r}: expected a float dtype{declared} (vector modality), got {got}")
    return False


def check_observation_batch(
    obs: Mapping[str, Any],
    specs: Mapping[str, ModalitySpec],
    modalities: Sequence[str],
    *,
    check_finite: bool = True,
) -> int:
    """Check that ``obs`` holds a batch ``(B, *shape)`` of every name in ``modalities``; return ``B``.

    Raises:
        ModalityError: missing key, wrong shape, inconsistent batch sizes, or a dtype the modality does not hold
            (an image that is not ``uint8``; a vector neither a float dtype nor its own declared dtype).
        SensorValueError: a NaN or inf value (when ``check_finite``).
    """
    if not isinstance(obs, Mapping):
        raise ModalityError(f"observations must be a dict keyed by modality name, got {type(obs).__name__}")
    batch: int | None = None
    for name in modalities:
        if name not in obs:
            raise ModalityError(f"observation has no modality {name!r}; it has {sorted(obs)}")
        spec = specs[name]
        check_array_storage(f"modality {name!r}", obs[name])  # before its shape is read: a nested tensor has none
        value = obs[name] if hasattr(obs[name], "shape") and hasattr(obs[name], "dtype") else np.asarray(obs[name])
        shape = tuple(value.shape)
        if shape[1:] != spec.shape:
            raise ModalityError(
                f"modality {name!r}: expected a batch of shape (B, {', '.join(map(str, spec.shape))}), got {shape}"
            )
        if batch is None:
            batch = shape[0]
        elif shape[0] != batch:
            raise ModalityError(f"modality {name!r} has batch size {shape[0]}, other modalities have {batch}")
        is_float = _check_dtype(name, spec, value.dtype)
        if check_finite and is_float:
            finite = value.isfinite().all() if hasattr(value, "isfinite") else np.isfinite(value).all()
            if not bool(finite):
                raise SensorValueError(f"modality {name!r} contains NaN or inf values")
    return int(batch or 0)
