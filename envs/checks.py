"""Validation of constructor arguments shared by the environments.

Every check raises :class:`ValueError` whose message starts with the argument's name, so that a user who passes
``n_stack=0`` reads ``n_stack must be an integer >= 1, got 0`` instead of a shape error deep inside NumPy.
"""

from __future__ import annotations

import numbers


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it is a finite number ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it is a finite number ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 <= float(value) < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_render_mode(render_mode: str | None, allowed: list[str]) -> str | None:
    """Return ``render_mode`` if it is ``None`` or one of ``allowed``."""
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode must be None or one of {allowed}, got {render_mode!r}")
    return render_mode
