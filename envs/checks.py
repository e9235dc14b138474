"""Validation of constructor arguments shared by the environments.

Every check raises :class:`ValueError` whose message starts with the argument's name, so that a user who passes
``n_stack=0`` reads ``n_stack must be an integer >= 1, got 0`` instead of a shape error deep inside NumPy.

Sizes that allocate memory have an upper bound too, so that ``image_size=100000`` is refused in the constructor
instead of exhausting the machine's memory. (The core's limits, for models, datasets and agents, are in
:mod:`gmc_rl.config`; the envs are the lowest layer and cannot import it.)
"""

from __future__ import annotations

import numbers

MAX_IMAGE_SIZE = 512
"""Largest side of a camera image in pixels (``image_size``; CartPole's ``image_height``, whose width is 3x).

The built-in envs draw thin line figures whose state is fully readable at their defaults (60 px; CartPole
40 x 120): the rod is 3 px wide at 60. 512 px is more than 8x that and above the 360 px frames of their own
``render``, so larger images add no information; they only multiply memory: a 512 x 512 frame is 256 KiB, each
observation holds ``n_stack`` of them, and datasets and replay buffers hold one observation per transition."""

MAX_N_STACK = 32
"""Most stacked frames per modality (``n_stack``). Two frames reveal the velocities (the paper's choice); Atari
agents use 4. 32 leaves ample room while bounding an observation at 32 frames."""


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum`` (and ``<= maximum`` if given; bools are
    refused). The message names ``name``, the value and the allowed range."""
    too_large = maximum is not None and isinstance(value, numbers.Integral) and int(value) > maximum
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum or too_large:
        allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
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
