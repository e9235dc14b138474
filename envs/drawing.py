"""Drawing with OpenCV: a camera that maps world coordinates to pixels, and helpers for human-readable frames.

Everything here is headless (OpenCV draws into NumPy arrays; no display, no pygame). Coordinates are passed to
OpenCV in fixed point with :data:`SHIFT` fractional bits, so shapes move smoothly by fractions of a pixel and the
images encode small motions (anti-aliased lines spread the sub-pixel position over neighbouring pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4
"""Fractional bits of the fixed-point pixel coordinates given to OpenCV (1/16 of a pixel)."""
_ONE = 1 << SHIFT

Point = Sequence[float] | np.ndarray
"""A world point ``(x, y)``: a pair of floats or an array of two."""


class Camera:
    """Orthographic camera: world point ``(x, y)`` (y up) -> pixel ``(column, row)`` of an ``height x width`` image.

    The world point ``centre`` lands on the centre of the image and one world unit spans ``pixels_per_unit``
    pixels. Pixel ``(i, j)`` covers the square around its centre at integer coordinates, so the image centre is at
    ``((width - 1) / 2, (height - 1) / 2)``.

    Example:
        >>> cam = Camera(60, 60, pixels_per_unit=100 / 4.4)   # the PendulumSound-v0 camera
        >>> img = np.zeros((60, 60), np.uint8)
        >>> cam.line(img, (0.0, 0.0), (0.0, 1.0), 255, 3)    # a vertical rod of length 1 from the centre up
        >>> int(img[:30, 29:31].sum() > 0), int(img[40:, :].sum())
        (1, 0)
    """

    def __init__(
        self, height: int, width: int, pixels_per_unit: float, centre: Sequence[float] = (0.0, 0.0)
    ) -> None:
        self.height, self.width = int(height), int(width)
        self.pixels_per_unit = float(pixels_per_unit)
        # fixed-point affine map: column = c0 + x * s, row = r0 - y * s (all scaled by 2**SHIFT)
        self._s = self.pixels_per_unit * _ONE
        self._c0 = ((self.width - 1) / 2 - float(centre[0]) * self.pixels_per_unit) * _ONE
        self._r0 = ((self.height - 1) / 2 + float(centre[1]) * self.pixels_per_unit) * _ONE

    def pixel(self, x: float, y: float) -> tuple[float, float]:
        """Pixel coordinates ``(column, row)`` (floats) of the world point ``(x, y)``."""
        return (self._c0 + x * self._s) / _ONE, (self._r0 - y * self._s) / _ONE

    def _fixed(self, x: float, y: float) -> tuple[int, int]:
        return round(self._c0 + x * self._s), round(self._r0 - y * self._s)

    def line(
        self,
        img: np.ndarray,
        start: Point,
        end: Point,
        color: int | tuple[int, int, int],
        thickness: int,
        antialias: bool = True,
    ) -> None:
        """Draw a segment between two world points, ``thickness`` pixels wide (round caps)."""
        cv2.line(
            img,
            self._fixed(start[0], start[1]),
            self._fixed(end[0], end[1]),
            color,
            thickness,
            cv2.LINE_AA if antialias else cv2.LINE_8,
            SHIFT,
        )

    def circle(
        self,
        img: np.ndarray,
        centre: Point,
        radius: float,
        color: int | tuple[int, int, int],
        thickness: int = -1,
    ) -> None:
        """Draw a circle of ``radius`` world units (filled when ``thickness`` is -1)."""
        cv2.circle(
            img, self._fixed(centre[0], centre[1]), round(radius * self._s), color, thickness, cv2.LINE_AA, SHIFT
        )

    def rectangle(
        self,
        img: np.ndarray,
        low: Point,
        high: Point,
        color: int | tuple[int, int, int],
        thickness: int = -1,
    ) -> None:
        """Draw the axis-aligned rectangle with world corners ``low`` and ``high`` (filled when ``thickness`` is -1)."""
        (x0, y0), (x1, y1) = low, high
        corners = np.array(
            [self._fixed(x0, y0), self._fixed(x1, y0), self._fixed(x1, y1), self._fixed(x0, y1)], dtype=np.int32
        )
        if thickness < 0:
            cv2.fillConvexPoly(img, corners, color, cv2.LINE_AA, SHIFT)
        else:
            cv2.polylines(img, [corners], True, color, thickness, cv2.LINE_AA, SHIFT)


# ---- human-readable frames (render_mode="rgb_array") -------------------------------------------------------------

BACKGROUND = (245, 245, 245)
INK = (40, 40, 40)
ROD = (204, 77, 77)
ACCENT = (60, 110, 200)
RECEIVER_COLORS = [
    (46, 139, 87),
    (30, 144, 255),
    (255, 140, 0),
    (148, 0, 211),
    (220, 20, 60),
    (0, 139, 139),
    (139, 69, 19),
    (112, 128, 144),
]
"""One colour per receiver (RGB), reused by every environment's render so receivers look alike."""


def blank_frame(height: int, width: int) -> np.ndarray:
    """A light-grey ``(height, width, 3)`` uint8 RGB canvas."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = BACKGROUND
    return frame


def abbreviations(names: Sequence[str]) -> list[str]:
    """Initials of receiver names for small labels: ``"LEFT_BOTTOM"`` -> ``"LB"``."""
    return ["".join(part[0] for part in name.split("_")) for name in names]


def draw_receivers(frame: np.ndarray, camera: Camera, positions: np.ndarray, labels: Sequence[str]) -> None:
    """Mark each receiver with a coloured square and a short label."""
    for i, ((x, y), label) in enumerate(zip(positions, labels)):
        color = RECEIVER_COLORS[i % len(RECEIVER_COLORS)]
        half = 7 / camera.pixels_per_unit
        camera.rectangle(frame, (x - half, y - half), (x + half, y + half), color)
        col, row = camera.pixel(x, y)
        text_row = int(row) - 12 if row > frame.shape[0] / 2 else int(row) + 22
        origin = (max(2, int(col) - 30), text_row)
        cv2.putText(frame, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1, cv2.LINE_AA)


def draw_sound_bars(frame: np.ndarray, sound: np.ndarray, labels: Sequence[str], origin: tuple[int, int]) -> None:
    """Draw a bar chart of scaled sound readings ``(R, 2)`` in ``[0, 1]``: frequency and amplitude per receiver.

    ``origin`` is the top-left pixel ``(column, row)`` of the chart; bars are 50 pixels tall at 1.0.
    """
    col0, row0 = origin
    cv2.putText(frame, "freq / amp", (col0, row0 + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.33, INK, 1, cv2.LINE_AA)
    base = row0 + 64
    for i, (reading, label) in enumerate(zip(sound, labels)):
        color = RECEIVER_COLORS[i % len(RECEIVER_COLORS)]
        left = col0 + i * 30
        for j, value in enumerate(reading):
            top = base - int(round(50 * float(value)))
            x0 = left + j * 11
            cv2.rectangle(frame, (x0, top), (x0 + 8, base), color, -1 if j == 0 else 1)
        cv2.putText(frame, label, (left, base + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.3, color, 1, cv2.LINE_AA)


def put_lines(frame: np.ndarray, lines: Sequence[str], origin: tuple[int, int]) -> None:
    """Write lines of text from ``origin`` (top-left pixel) downwards."""
    col, row = origin
    for k, text in enumerate(lines):
        cv2.putText(frame, text, (col, row + 14 * k + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38, INK, 1, cv2.LINE_AA)
