"""Helpers shared by the wrappers that mark modalities as missing or corrupt them (dropout, guards, noise).

A wrapper that removes a modality fills it with zeros and, when asked to expose the mask, adds the key
:data:`~gmc_rl.modalities.AVAILABILITY_KEY` (``MultiBinary(M)``, 1 = present, modalities in the order of
:func:`~gmc_rl.modalities.modality_specs`) to the ``Dict`` observation. Masks compose: a wrapper reads the mask of
the env it wraps (all ones if there is none) and can only remove more modalities.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from gymnasium import spaces

from gmc_rl.errors import ConfigError
from gmc_rl.modalities import AVAILABILITY_KEY, check_modalities


def masked_space(space: spaces.Dict, names: Sequence[str], expose_mask: bool) -> spaces.Dict:
    """The ``Dict`` space of the modalities ``names``, plus the availability mask if ``expose_mask``."""
    entries: dict[str, spaces.Space] = {name: space[name] for name in names}
    if expose_mask:
        entries[AVAILABILITY_KEY] = spaces.MultiBinary(len(names))
    return spaces.Dict(entries)


def modality_box(space: spaces.Space, name: str) -> spaces.Box:
    """The Box of modality ``name`` of an observation space that :func:`~gmc_rl.modalities.modality_specs` accepted
    (a Dict whose modalities are Boxes)."""
    return cast(spaces.Box, cast(spaces.Dict, space)[name])


def fill_values(space: spaces.Dict, names: Sequence[str]) -> dict[str, np.ndarray]:
    """What a missing modality shows: zeros, moved inside the declared bounds if 0 lies outside them."""
    fills = {}
    for name in names:
        box = modality_box(space, name)
        fills[name] = np.clip(np.zeros(box.shape), box.low, box.high).astype(box.dtype)
    return fills


def read_mask(obs: Mapping[str, Any], n_modalities: int) -> np.ndarray:
    """Boolean mask of present modalities carried by ``obs`` (all present if it has no availability key)."""
    if AVAILABILITY_KEY in obs:
        return np.asarray(obs[AVAILABILITY_KEY]).astype(bool).reshape(n_modalities)
    return np.ones(n_modalities, dtype=bool)


def apply_mask(
    obs: Mapping[str, Any],
    fills: Mapping[str, np.ndarray],
    present: np.ndarray,
    expose_mask: bool,
) -> dict[str, Any]:
    """A new observation in which every modality with ``present[i] == False`` shows its fill value."""
    out: dict[str, Any] = {}
    for i, name in enumerate(fills):
        out[name] = obs[name] if present[i] else fills[name].copy()
    if expose_mask:
        out[AVAILABILITY_KEY] = present.astype(np.int8)
    return out


def present_names(names: Sequence[str], present: np.ndarray) -> list[str]:
    """Names whose mask entry is set, in canonical order."""
    return [name for name, keep in zip(names, present) if keep]


def as_name_list(value: str | Sequence[str] | None, available: Sequence[str], what: str) -> list[str]:
    """Validate one modality name or a list of them (canonical order); ``what`` names the argument in errors."""
    if value is None:
        return []
    requested = [value] if isinstance(value, str) else list(value)
    if not requested:
        return []
    try:
        return check_modalities(requested, available)
    except ValueError as exc:
        raise type(exc)(f"{what}: {exc}") from exc


def check_seed(seed: int | None, what: str = "seed") -> int | None:
    """A seed must be ``None`` or a non-negative integer."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{what} must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def wrapper_rng(seed: int | None, reset_seed: int | None, tag: str) -> np.random.Generator:
    """A generator for one wrapper, from its own ``seed``, the env's reset seed, or both.

    ``tag`` (the wrapper's name) gives each wrapper class its own stream, so that a dropout and a noise wrapper
    seeded alike do not draw the same numbers, and neither repeats the env's own ``np_random``. With neither seed,
    the generator draws fresh entropy from the OS.
    """
    if seed is None and reset_seed is None:
        return np.random.default_rng()
    entropy = [
        zlib.crc32(tag.encode()),
        0 if seed is None else int(seed) + 1,
        0 if reset_seed is None else int(reset_seed) + 1,
    ]
    return np.random.default_rng(entropy)
