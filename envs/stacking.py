"""Frame stacking without per-step allocation of the stack itself.

Stacked frames are how a single observation reveals velocities (the change between consecutive frames). The stack
is one preallocated array ``(n_stack, *frame_shape)``; oldest frame first, newest last, the layout of
channel-first images.
"""

from __future__ import annotations

import numpy as np


class FrameStack:
    """A fixed-size stack of the latest ``n_stack`` frames of one sensor.

    Usage at every step: ``frame = stack.push()`` then draw/write the new frame *completely* into ``frame`` (a view
    of the newest slot); at reset, write the first frame the same way and call :meth:`fill` so that all slots hold
    copies of it. :meth:`observation` returns a copy that the caller may keep.

    Example:
        >>> stack = FrameStack(2, (3,), np.float32)
        >>> stack.push()[:] = 1.0; stack.fill()
        >>> stack.push()[:] = 2.0
        >>> stack.observation()
        array([[1., 1., 1.],
               [2., 2., 2.]], dtype=float32)
    """

    def __init__(self, n_stack: int, frame_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.frames = np.zeros((n_stack, *frame_shape), dtype=dtype)
        self.newest = self.frames[-1]
        """View of the newest slot (write the current frame here)."""

    def push(self) -> np.ndarray:
        """Shift every frame one slot towards the oldest and return the (stale) newest slot to overwrite."""
        if len(self.frames) > 1:
            self.frames[:-1] = self.frames[1:]
        return self.newest

    def fill(self) -> None:
        """Copy the newest frame into every slot (start of an episode: no history yet)."""
        self.frames[:-1] = self.newest

    def observation(self) -> np.ndarray:
        """A copy of the stack, oldest frame first."""
        return self.frames.copy()
