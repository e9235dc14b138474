"""The primitives every config check is built from.

:func:`_require` raises the one form of :class:`~gmc_rl.errors.ConfigError` that names a config key
(``config key 'KEY': message``); :func:`_is_integer` and :func:`_is_finite` test numbers the way a config means
them (a YAML ``true`` is not the integer 1, and NaN or infinity is no value of any setting).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from gmc_rl.errors import ConfigError


def _require(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` ``config key 'KEY': message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"config key {key!r}: {message}")


def _is_integer(value: Any) -> bool:
    """An integer of any kind (``numpy.int64`` too), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """A real number of any kind that is neither a bool, NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
