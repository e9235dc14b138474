"""Sound sensors: static receivers that hear a moving tone through the Doppler effect and the inverse-square law.

A point source emits a pure tone of ``frequency`` Hz and moves with velocity ``v`` in a 2-D world (x right, y up).
A static receiver at distance ``d`` hears

- the frequency ``f' = f * c / (c - v_r)``, where ``c`` is the speed of sound and ``v_r`` the component of the
  source velocity *towards* the receiver (classic Doppler effect of a moving source and a static observer): a source
  at rest is heard at exactly ``f``, an approaching one higher, a receding one lower;
- the amplitude ``1 / d**2`` (inverse-square law, unit source power).

Both readings are scaled to ``[0, 1]`` with *analytic* bounds, never with data statistics: the frequency with the
band ``[f c / (c + v_max), f c / (c - v_max)]`` reachable by a source whose speed is at most ``v_max``, the amplitude
of each receiver with ``[1 / d_max**2, 1 / d_min**2]`` where ``[d_min, d_max]`` bounds its distance to the region
the source can occupy (see :func:`annulus_distance_bounds` and :func:`box_distance_bounds`). So 0 means "receding
at the largest possible speed" / "as far as the source can be", 1 means "approaching at the largest possible speed"
/ "as close as it can be". A source at rest (heard at exactly ``f``) reads ``(c - v_max) / (2 c)``, below 0.5
because the Doppler band is asymmetric around ``f`` (0.3 for the pendulum's ``c = 20``, ``v_max = 8``).

If an environment cannot bound its source speed analytically it passes a sensor range ``max_source_speed`` and the
radial speed saturates there (like a real sensor's measurement range); the readings then still stay in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Unit-square layout of the named receiver positions (multiplied by the half side of the square around the centre).
_UNIT_LAYOUT: dict[str, tuple[float, float]] = {
    "LEFT_BOTTOM": (-1.0, -1.0),
    "LEFT_MIDDLE": (-1.0, 0.0),
    "LEFT_TOP": (-1.0, 1.0),
    "MIDDLE_TOP": (0.0, 1.0),
    "RIGHT_TOP": (1.0, 1.0),
    "RIGHT_MIDDLE": (1.0, 0.0),
    "RIGHT_BOTTOM": (1.0, -1.0),
    "MIDDLE_BOTTOM": (0.0, -1.0),
}
RECEIVER_NAMES: tuple[str, ...] = tuple(_UNIT_LAYOUT)
"""Names of the receiver positions: the corners and edge midpoints of a square around the scene's centre."""


def receiver_positions(
    names: Sequence[str],
    half_side: float | tuple[float, float],
    centre: tuple[float, float] = (0.0, 0.0),
    argument: str = "receivers",
) -> np.ndarray:
    """Return the ``(R, 2)`` world positions of named receivers on a square of ``half_side`` around ``centre``.

    ``half_side`` may be a pair ``(half_width, half_height)`` for a rectangle.

    Raises:
        ValueError: naming ``argument`` for a plain string, an empty list, a duplicate or an unknown name.
    """
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ValueError(
            f"{argument} must be a sequence of receiver names such as {list(RECEIVER_NAMES[:3])}, got {names!r}"
        )
    if len(names) == 0:
        raise ValueError(f"{argument} must name at least one receiver; choose from {list(RECEIVER_NAMES)}")
    for name in names:
        if name not in _UNIT_LAYOUT:
            raise ValueError(f"{argument}: unknown receiver {name!r}; valid names are {list(RECEIVER_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{argument} lists a receiver twice: {list(names)}")
    unit = np.array([_UNIT_LAYOUT[n] for n in names], dtype=np.float64)
    return unit * np.asarray(half_side, dtype=np.float64) + np.asarray(centre, dtype=np.float64)


def annulus_distance_bounds(
    positions: np.ndarray, centre: Sequence[float], inner_radius: float, outer_radius: float
) -> np.ndarray:
    """Bounds ``(R, 2)`` = ``[d_min, d_max]`` of each receiver's distance to a source in an annulus (or circle/disk).

    The source lies at a distance in ``[inner_radius, outer_radius]`` of ``centre``: a circle when both radii are
    equal (a pendulum's tip), a disk when ``inner_radius`` is 0 (the tip of a two-link arm). Exact: both bounds are
    reached by some source position.

    Raises:
        ValueError: if a receiver lies inside the annulus (the amplitude ``1/d**2`` would be unbounded).
    """
    r = np.linalg.norm(np.asarray(positions, dtype=np.float64) - np.asarray(centre, dtype=np.float64), axis=1)
    d_min = np.maximum(np.maximum(r - outer_radius, inner_radius - r), 0.0)
    if np.any(d_min <= 0):
        raise ValueError(
            f"receivers at distances {r.round(3).tolist()} from the centre lie where the source can be "
            f"(radii {inner_radius}..{outer_radius}); move them outside"
        )
    return np.stack([d_min, r + outer_radius], axis=1)


def box_distance_bounds(positions: np.ndarray, low: Sequence[float], high: Sequence[float]) -> np.ndarray:
    """Bounds ``(R, 2)`` = ``[d_min, d_max]`` of each receiver's distance to a source in the box ``[low, high]``.

    Conservative when the source's true region is smaller than the box (the bounds still hold).

    Raises:
        ValueError: if a receiver lies inside or on the box.
    """
    p = np.asarray(positions, dtype=np.float64)
    low_, high_ = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    nearest = np.clip(p, low_, high_)
    d_min = np.linalg.norm(p - nearest, axis=1)
    if np.any(d_min <= 0):
        raise ValueError(
            f"receivers {p.tolist()} lie in the box {low_.tolist()}..{high_.tolist()} that the source can reach"
        )
    corners = np.array([[x, y] for x in (low_[0], high_[0]) for y in (low_[1], high_[1])])
    d_max = np.linalg.norm(p[:, None, :] - corners[None, :, :], axis=2).max(axis=1)
    return np.stack([d_min, d_max], axis=1)


class DopplerReceivers:
    """Static receivers hearing one moving tone; :meth:`hear` writes their scaled ``(frequency, amplitude)``.

    Args:
        positions: ``(R, 2)`` receiver positions in world units.
        frequency: emitted frequency ``f`` in Hz (> 0).
        sound_speed: speed of sound ``c`` in world units per second; must exceed ``max_source_speed``.
        max_source_speed: bound ``v_max`` on the source's speed (analytic, or the sensor's range: radial speeds
            beyond it saturate).
        distance_bounds: ``(R, 2)`` ``[d_min, d_max]`` per receiver (from :func:`annulus_distance_bounds` or
            :func:`box_distance_bounds`); distances outside saturate.

    Raises:
        ValueError: naming ``frequency``, ``sound_speed`` or ``distance_bounds`` when they are invalid.

    Example:
        >>> ears = DopplerReceivers([[3.0, 0.0]], 440.0, 20.0, 8.0, [[2.0, 4.0]])
        >>> ears.measure((0.0, 0.0), (1.0, 0.0))[0]  # moving towards the receiver at 1 unit/s: 440 * 20 / 19
        array([463.15789474])
    """

    def __init__(
        self,
        positions: np.ndarray | Sequence[Sequence[float]],
        frequency: float,
        sound_speed: float,
        max_source_speed: float,
        distance_bounds: np.ndarray | Sequence[Sequence[float]],
    ) -> None:
        self.positions = np.array(positions, dtype=np.float64).reshape(-1, 2)
        if not frequency > 0:
            raise ValueError(f"frequency must be > 0 Hz, got {frequency!r}")
        if not max_source_speed >= 0:
            raise ValueError(f"max_source_speed must be >= 0, got {max_source_speed!r}")
        if not sound_speed > max_source_speed:
            raise ValueError(
                f"sound_speed must exceed the largest source speed {max_source_speed:.4g} "
                f"(else the Doppler formula diverges), got {sound_speed!r}"
            )
        bounds = np.array(distance_bounds, dtype=np.float64).reshape(-1, 2)
        valid = (bounds.shape[0] == self.positions.shape[0] and np.all(bounds[:, 0] > 0)
                 and np.all(bounds >= bounds[:, :1]))
        if not valid:
            raise ValueError(f"distance_bounds must hold 0 < d_min <= d_max for each receiver, got {bounds.tolist()}")
        self.frequency = float(frequency)
        self.sound_speed = float(sound_speed)
        self.max_source_speed = float(max_source_speed)
        self.distance_bounds = bounds
        c, v = self.sound_speed, self.max_source_speed
        self.frequency_range = (self.frequency * c / (c + v), self.frequency * c / (c - v))
        """Band ``(f_low, f_high)`` of heard frequencies in Hz; scaled frequency 0 and 1."""
        self.amplitude_range = np.stack([1.0 / bounds[:, 1] ** 2, 1.0 / bounds[:, 0] ** 2], axis=1)
        """``(R, 2)`` per-receiver amplitude band; scaled amplitude 0 and 1."""
        # per-receiver constants as Python floats for _readings()
        amp_low, amp_high = self.amplitude_range[:, 0], self.amplitude_range[:, 1]
        self._receivers = [
            (float(x), float(y), float(lo) ** 2, float(hi) ** 2, float(a_lo), 1.0 / float(a_hi - a_lo))
            for (x, y), (lo, hi), a_lo, a_hi in zip(self.positions, bounds, amp_low, amp_high)
        ]
        self._freq_low = self.frequency_range[0]
        self._freq_scale = 1.0 / (self.frequency_range[1] - self.frequency_range[0])

    @property
    def n_receivers(self) -> int:
        """Number of receivers ``R``."""
        return int(self.positions.shape[0])

    def _readings(self, px: float, py: float, vx: float, vy: float, scaled: bool) -> list[tuple[float, float]]:
        """Per receiver ``(frequency, amplitude)``: in Hz and ``1/d**2``, or scaled to ``[0, 1]`` if ``scaled``.

        Radial speed and distance saturate at their bounds. Plain float arithmetic: for a handful of receivers it is
        several times faster than NumPy calls on tiny arrays, and this runs at every environment step.
        """
        f_c, c, v_max = self.frequency * self.sound_speed, self.sound_speed, self.max_source_speed
        f_low, f_scale = self._freq_low, self._freq_scale
        readings = []
        for rx, ry, d_sq_min, d_sq_max, a_low, a_scale in self._receivers:
            dx, dy = rx - px, ry - py
            d_sq = dx * dx + dy * dy
            radial = (dx * vx + dy * vy) / (math.sqrt(d_sq) or 1.0)  # source speed towards the receiver
            radial = v_max if radial > v_max else -v_max if radial < -v_max else radial
            d_sq = d_sq_min if d_sq < d_sq_min else d_sq_max if d_sq > d_sq_max else d_sq
            freq, amp = f_c / (c - radial), 1.0 / d_sq
            if scaled:
                freq, amp = (freq - f_low) * f_scale, (amp - a_low) * a_scale
                # rounding at the exact bounds must not leave [0, 1]
                freq = 0.0 if freq < 0.0 else 1.0 if freq > 1.0 else freq
                amp = 0.0 if amp < 0.0 else 1.0 if amp > 1.0 else amp
            readings.append((freq, amp))
        return readings

    def measure(self, position: Sequence[float], velocity: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Physical readings: heard frequencies in Hz and amplitudes ``1/d**2``, each of shape ``(R,)``.

        Radial speeds beyond ``max_source_speed`` and distances outside ``distance_bounds`` saturate.
        """
        (px, py), (vx, vy) = position, velocity
        readings = np.array(self._readings(float(px), float(py), float(vx), float(vy), scaled=False))
        return readings[:, 0], readings[:, 1]

    def scale_frequency(self, frequency_hz: np.ndarray | float) -> np.ndarray:
        """Map heard frequencies (Hz) to the ``[0, 1]`` observation scale."""
        return (np.asarray(frequency_hz) - self._freq_low) * self._freq_scale

    def scale_amplitude(self, amplitude: np.ndarray) -> np.ndarray:
        """Map per-receiver amplitudes ``(R,)`` to the ``[0, 1]`` observation scale."""
        low, high = self.amplitude_range[:, 0], self.amplitude_range[:, 1]
        return (np.asarray(amplitude) - low) / (high - low)

    def hear(self, position: Sequence[float], velocity: Sequence[float], out: np.ndarray) -> np.ndarray:
        """Write the scaled readings into ``out`` (``(R, 2)``: column 0 frequency, 1 amplitude) and return it.

        Same numbers as ``scale_*(measure(...))``, clipped to ``[0, 1]`` against rounding at the exact bounds.
        Pass Python floats (not NumPy scalars) for speed: this runs at every environment step.
        """
        (px, py), (vx, vy) = position, velocity
        out[:] = self._readings(px, py, vx, vy, scaled=True)
        return out
