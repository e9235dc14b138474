"""``gmc_rl/PendulumSound-v0``: Gymnasium's Pendulum seen through a camera and heard through three microphones.

The multimodal pendulum of the GMC paper (Poklukar et al., ICML 2022, Section 5.3). Dynamics, reward, action space
and initial-state distribution are Gymnasium's ``PendulumEnv`` (this class subclasses it and calls its ``step`` and
``reset``); only the observation changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import PendulumEnv, angle_normalize

from gmc_rl.envs import drawing
from gmc_rl.envs.checks import (
    MAX_IMAGE_SIZE,
    MAX_N_STACK,
    check_int,
    check_non_negative,
    check_positive,
    check_render_mode,
)
from gmc_rl.envs.drawing import Camera
from gmc_rl.envs.multimodal import MultimodalSensors
from gmc_rl.envs.sound import DopplerReceivers, annulus_distance_bounds, receiver_positions

DEFAULT_RECEIVERS: tuple[str, ...] = ("LEFT_BOTTOM", "RIGHT_BOTTOM", "MIDDLE_TOP")
"""The paper's three receivers."""
RECEIVER_HALF_SIDE = 2.2
"""Receivers sit on the square of this half side around the pivot (world units; the rod is 1 long)."""
VIEW_HALF_WIDTH = 2.2 * 60 / 100
"""Half width of the camera's field of view: the paper renders the 4.4 x 4.4 world at 100 x 100 pixels and keeps
the central 60 x 60, i.e. +-1.32 world units around the pivot. ``image_size`` changes the resolution, not the view."""
ROD_WIDTH = 0.15
"""Width of the rod in the camera image, world units (3 pixels at the default 60 x 60)."""
MIN_IMAGE_SIZE = 16


class PendulumSoundEnv(MultimodalSensors, PendulumEnv):
    """Swing a pendulum up and keep it upright, observing it through an image and a sound.

    **Dynamics, reward, actions, episodes.** Exactly Gymnasium's ``Pendulum-v1`` (torque in ``[-2, 2]``, reward
    ``-(theta^2 + 0.1 theta_dot^2 + 0.001 u^2)`` in ``[-16.27, 0]``); registered with 300-step episodes as in the
    paper. The angle ``theta`` is 0 upright and grows counter-clockwise, so the tip is at ``(-sin theta, cos theta)``
    in a y-up world frame centred on the pivot (the picture Gymnasium's own renderer draws).

    **Observation** ``Dict``:

    - ``"image"``: ``uint8 (n_stack, image_size, image_size)``, the rod drawn white on black by OpenCV, the paper's
      camera geometry (a 4.4 x 4.4 world at 100 x 100 pixels cropped to the central 60 x 60, i.e. +-1.32 units
      around the pivot). Oldest frame first. *Reveals:* the angle, unambiguously over the full circle because the
      rod starts at the fixed pivot in the image centre; the angular velocity from the change between the stacked
      frames (at most ``8 * 0.05 = 0.4`` rad per step, far below the aliasing limit of pi). So the full state
      ``(theta, theta_dot)`` is readable from the image alone.
    - ``"sound"``: ``float32 (n_stack, R, 2)`` in ``[0, 1]``: for each receiver (default ``LEFT_BOTTOM (-2.2, -2.2)``,
      ``RIGHT_BOTTOM (2.2, -2.2)``, ``MIDDLE_TOP (0, 2.2)``) the frequency and amplitude it hears from a 440 Hz tone
      at the tip (speed of sound 20): Doppler ``f' = f c / (c - v_r)`` with ``v_r`` the tip velocity towards the
      receiver, amplitude ``1 / d^2``. Scaled with analytic bounds (:mod:`gmc_rl.envs.sound`): frequency band
      ``[f c / (c + 8), f c / (c - 8)]`` (the tip speed is at most ``max_speed * length = 8``), amplitude band
      ``[1 / d_max^2, 1 / d_min^2]`` with ``d`` between ``|r| - 1`` and ``|r| + 1`` for a receiver at distance
      ``|r|`` from the pivot. *Reveals:* the three distances locate the tip (three non-collinear receivers determine
      a point of the circle, hence ``theta``), and the Doppler shifts give the tip velocity's components towards the
      receivers, hence ``theta_dot`` (the tangential direction is never orthogonal to all three directions). So the
      full state is readable from the sound alone, even from a single frame.

    **Info** of ``reset`` and ``step``: ``"state"`` (float32 ``[cos theta, sin theta, theta_dot]``, Pendulum-v1's
    observation, in :attr:`state_space`), ``"angle"`` (``theta`` wrapped to ``[-pi, pi)``) and
    ``"angular_velocity"``.

    Args:
        render_mode: ``None`` or ``"rgb_array"`` (a 360 x 560 colour frame: scene, receivers, sound bars, numbers).
        receivers: names of the receiver positions (see :data:`gmc_rl.envs.sound.RECEIVER_NAMES`).
        frequency: emitted frequency in Hz.
        sound_speed: speed of sound in world units per second; must exceed the largest tip speed (8).
        image_size: side of the square camera image in pixels (16 to 512, :data:`~gmc_rl.envs.checks.MAX_IMAGE_SIZE`).
        n_stack: number of stacked frames per modality (1 to 32, :data:`~gmc_rl.envs.checks.MAX_N_STACK`).
        g: gravity, passed to Gymnasium's ``PendulumEnv``.

    Raises:
        ValueError: naming the argument that is invalid.

    Example:
        >>> import gymnasium as gym, envs
        >>> env = gym.make("gmc_rl/PendulumSound-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs["image"].shape, obs["sound"].shape, info["state"].shape
        ((2, 60, 60), (2, 3, 2), (3,))
    """

    state_names = ("cos_theta", "sin_theta", "theta_dot")

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        render_mode: str | None = None,
        receivers: Sequence[str] = DEFAULT_RECEIVERS,
        frequency: float = 440.0,
        sound_speed: float = 20.0,
        image_size: int = 60,
        n_stack: int = 2,
        g: float = 10.0,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        n_stack = check_int("n_stack", n_stack, 1, MAX_N_STACK)
        image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        frequency = check_positive("frequency", frequency)
        sound_speed = check_positive("sound_speed", sound_speed)
        super().__init__(render_mode=render_mode, g=check_non_negative("g", g))

        max_tip_speed = self.max_speed * self.l
        if sound_speed <= max_tip_speed:
            raise ValueError(
                f"sound_speed must exceed the largest tip speed max_speed * length = {max_tip_speed:g}, "
                f"got {sound_speed:g}"
            )
        positions = receiver_positions(receivers, RECEIVER_HALF_SIDE, argument="receivers")
        self.receiver_names: tuple[str, ...] = tuple(receivers)
        self.receivers = DopplerReceivers(
            positions,
            frequency,
            sound_speed,
            max_source_speed=max_tip_speed,
            distance_bounds=annulus_distance_bounds(positions, (0.0, 0.0), self.l, self.l),
        )
        self.image_size = image_size
        self.camera = Camera(image_size, image_size, pixels_per_unit=image_size / (2 * VIEW_HALF_WIDTH))
        self._rod_px = max(1, round(ROD_WIDTH * self.camera.pixels_per_unit))
        self._init_sensors(
            {
                "image": spaces.Box(0, 255, (image_size, image_size), np.uint8),
                "sound": spaces.Box(0.0, 1.0, (len(positions), 2), np.float32),
            },
            n_stack,
        )

    def tip(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """World position and velocity of the rod's tip (the sound source) for the current state."""
        theta, theta_dot = float(self.state[0]), float(self.state[1])
        s, c = math.sin(theta), math.cos(theta)
        return (-s * self.l, c * self.l), (-c * theta_dot * self.l, -s * theta_dot * self.l)

    def _write_frames(self, frames: dict[str, np.ndarray]) -> None:
        position, velocity = self.tip()
        image = frames["image"]
        image.fill(0)
        self.camera.line(image, (0.0, 0.0), position, 255, self._rod_px)
        self.receivers.hear(position, velocity, frames["sound"])

    def _extra_info(self) -> dict[str, Any]:
        theta = float(self.state[0])
        return {"angle": (theta + math.pi) % (2 * math.pi) - math.pi, "angular_velocity": float(self.state[1])}

    def render(self) -> np.ndarray | None:
        """A colour ``(360, 560, 3)`` frame for people: the scene with receivers, the sound bars and the numbers."""
        if self._render_disabled():
            return None
        size, panel = 360, 200
        frame = drawing.blank_frame(size, size + panel)
        camera = Camera(size, size, pixels_per_unit=size / (2 * (RECEIVER_HALF_SIDE + 0.35)))
        half = VIEW_HALF_WIDTH
        camera.rectangle(frame, (-half, -half), (half, half), (200, 200, 200), 1)  # the observation camera's view
        position, _ = self.tip()
        for receiver in self.receivers.positions:
            camera.line(frame, position, receiver, (225, 225, 225), 1)
        camera.line(frame, (0.0, 0.0), position, drawing.ROD, max(2, round(0.2 * camera.pixels_per_unit)))
        camera.circle(frame, (0.0, 0.0), 0.05, drawing.INK)
        labels = drawing.abbreviations(self.receiver_names)
        drawing.draw_receivers(frame, camera, self.receivers.positions, self.receiver_names)
        drawing.draw_sound_bars(frame, self.latest_frames()["sound"], labels, (size + 10, 10))
        torque = "-" if self.last_u is None else f"{float(self.last_u):+.2f}"
        drawing.put_lines(
            frame,
            [
                f"angle    {float(angle_normalize(self.state[0])):+.2f} rad",
                f"velocity {float(self.state[1]):+.2f} rad/s",
                f"torque   {torque}",
                "box: camera view",
            ],
            (size + 10, 100),
        )
        return frame
