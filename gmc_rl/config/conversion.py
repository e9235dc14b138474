"""Conversion between plain dicts (YAML, JSON, flags) and the config dataclasses, with strict checking.

:func:`from_dict` refuses unknown keys (with a did-you-mean) and mistyped values, naming the key; :func:`to_dict` is
its inverse; :func:`_check_fields` gives a dataclass built directly in Python the same type checks (every section's
``__post_init__`` calls it). This module knows no particular section: :mod:`gmc_rl.config.schema` defines them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import typing
from typing import Any

from gmc_rl.config.checks import _require
from gmc_rl.config.limits import MAX_CONFIG_DEPTH
from gmc_rl.errors import ConfigError, suggest


def _describe(key: str) -> str:
    """A section's key as messages name it (the whole config has the empty key)."""
    return key or "<top level>"


def _depth(value: Any) -> int:
    """Nesting depth of mappings and lists in ``value`` (1 for a flat mapping), counted without recursion and
    stopping once past :data:`MAX_CONFIG_DEPTH`."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_CONFIG_DEPTH:
        item, level = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against the field type ``annotation`` and converted (an ``int`` for any integer, a
    ``float`` for any finite real, lists item by item, a deep copy of a mapping, a section from its mapping);
    :class:`ConfigError` naming ``key`` for a value that does not fit."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, key)
    if annotation is bool:
        _require(isinstance(value, bool), key, f"must be true or false, got {value!r}")
        return value
    if annotation is int:
        _require(isinstance(value, numbers.Integral) and not isinstance(value, bool), key,
                 f"must be an integer, got {value!r}")
        return int(value)
    if annotation is float:
        _require(isinstance(value, numbers.Real) and not isinstance(value, bool), key,
                 f"must be a number, got {value!r}")
        _require(math.isfinite(float(value)), key, f"must be a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        _require(isinstance(value, str), key, f"must be a string, got {value!r}")
        return value
    if origin is list:
        _require(isinstance(value, (list, tuple)), key, f"must be a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        _require(isinstance(value, dict), key, f"must be a mapping, got {value!r}")
        _require(all(isinstance(k, str) for k in value), key, f"must be a mapping with string keys, got {value!r}")
        _require(_depth(value) <= MAX_CONFIG_DEPTH, key,
                 f"is nested deeper than {MAX_CONFIG_DEPTH} levels (MAX_CONFIG_DEPTH)")
        return copy.deepcopy(dict(value))
    raise TypeError(f"unsupported config annotation {annotation!r} for {key}")  # pragma: no cover


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys and mistyped values."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {_describe(prefix)!r} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(
                f"unknown config key {full!r}; valid keys in {_describe(prefix)!r} are {names}."
                f"{suggest(str(key), names)}"
            )
    kwargs = {}
    for name in names:
        if name in data:
            full = f"{prefix}.{name}" if prefix else name
            kwargs[name] = _convert(data[name], hints[name], full)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (JSON/YAML-serialisable) form of a config dataclass."""
    return dataclasses.asdict(config)


def _check_fields(config: Any, section: str) -> None:
    """Type-check (and normalise) every field of a config dataclass built directly in Python.

    YAML and flags go through :func:`from_dict`, which checks types already; this gives code that builds
    ``PretrainConfig(epochs="3")`` or passes ``numpy.int64`` the same clear :class:`ConfigError` (or conversion).
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        key = f"{section}.{f.name}" if section else f.name
        annotation = hints[f.name]
        value = getattr(config, f.name)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            if isinstance(value, dict):
                value = from_dict(annotation, value, key)
            _require(isinstance(value, annotation), key,
                     f"must be a {annotation.__name__} (or a mapping of its keys), got {type(value).__name__}")
        else:
            value = _convert(value, annotation, key)
        object.__setattr__(config, f.name, value)
