"""``gmc_rl/AcrobotSensors-v0``: Gymnasium's Acrobot seen by a camera and heard through two sound sources.

A discrete-action, two-link underactuated arm with two modalities, whose sound carries two sources (one per
link end). Dynamics, reward, termination and initial states are Gymnasium's ``AcrobotEnv`` (subclassed: its
``step`` and ``reset`` run unchanged); only the observation changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.error import ResetNeeded

from gmc_rl.envs import drawing
from gmc_rl.envs.checks import MAX_IMAGE_SIZE, MAX_N_STACK, check_int, check_positive, check_render_mode
from gmc_rl.envs.drawing import Camera
from gmc_rl.envs.multimodal import MultimodalSensors
from gmc_rl.envs.sound import DopplerReceivers, annulus_distance_bounds, receiver_positions

DEFAULT_RECEIVERS: tuple[str, ...] = ("LEFT_BOTTOM", "RIGHT_BOTTOM", "MIDDLE_TOP")
RECEIVER_HALF_SIDE = 2.6
"""Receivers sit on the square of this half side around the pivot, outside the arm's reach (2)."""
ELBOW_FREQUENCY, TIP_FREQUENCY = 440.0, 880.0
"""Tones (Hz) at the joint between the links and at the tip; their Doppler bands never overlap at the default
speed of sound, so a receiver could tell them apart by pitch."""
VIEW_HALF_WIDTH = 2.2
"""The camera sees ``[-2.2, 2.2]^2`` around the pivot, like Gymnasium's own renderer."""
MIN_IMAGE_SIZE = 24


class AcrobotSensorsEnv(MultimodalSensors, AcrobotEnv):
    """Swing the tip of a two-link arm above a line (torque -1, 0, +1 on the elbow) from an image and a sound.

    **Dynamics, reward, actions, episodes.** Exactly Gymnasium's ``Acrobot-v1``: ``Discrete(3)`` torques, reward
    -1 per step until the tip rises more than one link length above the pivot, 500-step episodes. Angles: the first
    link hangs down at ``theta1 = 0``; in a y-up frame centred on the pivot the elbow is at
    ``(sin theta1, -cos theta1)`` and the tip one link further along ``theta1 + theta2``.

    **Observation** ``Dict`` (``n_stack`` frames each, oldest first):

    - ``"image"``: ``uint8 (n_stack, S, S)`` with ``S = image_size`` (default 60): both links white on black, the
      view ``[-2.2, 2.2]^2``. *Reveals:* ``theta1`` (direction of the link that starts at the pivot in the image
      centre) and ``theta2`` (the bend at the elbow) in every frame, angular velocities from the change between
      stacked frames. Acrobot's step is long (0.2 s), so this difference is an average velocity, and it aliases
      when a link turns by more than half a turn per step (above 15.7 rad/s; the first link is capped at 12.6 by
      Gymnasium, the second link reaches that only at extreme speeds). So solvable from the image in principle,
      with the usual frame-stacking approximation.
    - ``"sound"``: ``float32 (n_stack, 2, R, 2)`` in ``[0, 1]``: for each source, the elbow (440 Hz) and the tip
      (880 Hz), and each receiver (default ``LEFT_BOTTOM (-2.6, -2.6)``, ``RIGHT_BOTTOM (2.6, -2.6)``,
      ``MIDDLE_TOP (0, 2.6)``), the Doppler-shifted frequency and the ``1/d^2`` amplitude, scaled with analytic
      bounds (:mod:`gmc_rl.envs.sound`): speeds at most ``4 pi`` (elbow) and ``4 pi + 13 pi`` (tip) from Gymnasium's
      velocity limits, distances from the circle of radius 1 (elbow) and the disk of radius 2 (tip). *Reveals:*
      the elbow's three distances give its position on the unit circle, hence ``theta1``, its Doppler shifts
      ``theta1_dot``; the tip's distances give the tip position, hence ``theta1 + theta2``, and its shifts the tip
      velocity, hence ``theta2_dot``. The full state, from the sound alone.

    **Info:** ``"state"``: Acrobot-v1's float32 observation ``[cos t1, sin t1, cos t2, sin t2, t1_dot, t2_dot]``
    (in :attr:`state_space`, Acrobot-v1's observation space), plus ``"angles"`` ``(theta1, theta2)``.

    Args:
        render_mode: ``None`` or ``"rgb_array"`` (a 360 x 560 colour frame).
        receivers: names of the receiver positions (:data:`gmc_rl.envs.sound.RECEIVER_NAMES`).
        sound_speed: speed of sound; must exceed the tip's largest speed ``17 pi ~ 53.4``.
        image_size: side of the square camera image in pixels (24 to 512, :data:`~gmc_rl.envs.checks.MAX_IMAGE_SIZE`).
        n_stack: number of stacked frames per modality (1 to 32, :data:`~gmc_rl.envs.checks.MAX_N_STACK`).

    Raises:
        ValueError: naming the argument that is invalid.
    """

    state_names = ("cos_theta1", "sin_theta1", "cos_theta2", "sin_theta2", "theta1_dot", "theta2_dot")

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        render_mode: str | None = None,
        receivers: Sequence[str] = DEFAULT_RECEIVERS,
        sound_speed: float = 100.0,
        image_size: int = 60,
        n_stack: int = 2,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        n_stack = check_int("n_stack", n_stack, 1, MAX_N_STACK)
        image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        sound_speed = check_positive("sound_speed", sound_speed)
        super().__init__(render_mode=render_mode)

        l1, l2 = self.LINK_LENGTH_1, self.LINK_LENGTH_2
        elbow_speed = self.MAX_VEL_1 * l1
        tip_speed = elbow_speed + (self.MAX_VEL_1 + self.MAX_VEL_2) * l2
        if sound_speed <= tip_speed:
            raise ValueError(f"sound_speed must exceed the tip's largest speed {tip_speed:.4g}, got {sound_speed:g}")
        positions = receiver_positions(receivers, RECEIVER_HALF_SIDE, argument="receivers")
        self.receiver_names: tuple[str, ...] = tuple(receivers)
        self.sources: dict[str, DopplerReceivers] = {
            "elbow": DopplerReceivers(
                positions, ELBOW_FREQUENCY, sound_speed, elbow_speed, annulus_distance_bounds(positions, (0, 0), l1, l1)
            ),
            "tip": DopplerReceivers(
                positions,
                TIP_FREQUENCY,
                sound_speed,
                tip_speed,
                annulus_distance_bounds(positions, (0, 0), max(0.0, abs(l1 - l2)), l1 + l2),
            ),
        }
        self.camera = Camera(image_size, image_size, pixels_per_unit=image_size / (2 * VIEW_HALF_WIDTH))
        self._link_px = max(1, round(0.12 * self.camera.pixels_per_unit))
        self._init_sensors(
            {
                "image": spaces.Box(0, 255, (image_size, image_size), np.uint8),
                "sound": spaces.Box(0.0, 1.0, (2, len(positions), 2), np.float32),
            },
            n_stack,
        )

    def _state(self) -> np.ndarray:
        """Acrobot's state ``(theta1, theta2, omega1, omega2)``, which ``reset`` sets."""
        if self.state is None:
            raise ResetNeeded("call reset() before the Acrobot state is read")
        return self.state

    def kinematics(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
        """World positions and velocities ``(elbow, elbow_velocity, tip, tip_velocity)`` for the current state."""
        t1, t2, w1, w2 = (float(v) for v in self._state())
        l1, l2 = self.LINK_LENGTH_1, self.LINK_LENGTH_2
        s1, c1, s12, c12 = math.sin(t1), math.cos(t1), math.sin(t1 + t2), math.cos(t1 + t2)
        elbow, elbow_velocity = (l1 * s1, -l1 * c1), (l1 * c1 * w1, l1 * s1 * w1)
        tip = (elbow[0] + l2 * s12, elbow[1] - l2 * c12)
        tip_velocity = (elbow_velocity[0] + l2 * c12 * (w1 + w2), elbow_velocity[1] + l2 * s12 * (w1 + w2))
        return elbow, elbow_velocity, tip, tip_velocity

    def _write_frames(self, frames: dict[str, np.ndarray]) -> None:
        elbow, elbow_velocity, tip, tip_velocity = self.kinematics()
        image = frames["image"]
        image.fill(0)
        self.camera.line(image, (0.0, 0.0), elbow, 255, self._link_px)
        self.camera.line(image, elbow, tip, 255, self._link_px)
        sound = frames["sound"]
        self.sources["elbow"].hear(elbow, elbow_velocity, sound[0])
        self.sources["tip"].hear(tip, tip_velocity, sound[1])

    def _extra_info(self) -> dict[str, Any]:
        state = self._state()
        return {"angles": (float(state[0]), float(state[1]))}

    def render(self) -> np.ndarray | None:
        """A colour ``(360, 560, 3)`` frame: the arm, the goal line, the receivers, the sound bars and the numbers."""
        if self._render_disabled():
            return None
        size, panel = 360, 200
        frame = drawing.blank_frame(size, size + panel)
        camera = Camera(size, size, pixels_per_unit=size / (2 * (RECEIVER_HALF_SIDE + 0.4)))
        half = VIEW_HALF_WIDTH
        camera.rectangle(frame, (-half, -half), (half, half), (200, 200, 200), 1)
        camera.line(frame, (-half, 1.0), (half, 1.0), drawing.INK, 1)  # the goal height
        elbow, _, tip, _ = self.kinematics()
        width = max(2, round(0.12 * camera.pixels_per_unit))
        camera.line(frame, (0.0, 0.0), elbow, drawing.ROD, width)
        camera.line(frame, elbow, tip, drawing.ACCENT, width)
        camera.circle(frame, (0.0, 0.0), 0.05, drawing.INK)
        drawing.draw_receivers(frame, camera, self.sources["tip"].positions, self.receiver_names)
        sound = self.latest_frames()["sound"]
        labels = drawing.abbreviations(self.receiver_names)
        drawing.put_lines(frame, ["elbow 440 Hz"], (size + 10, 4))
        drawing.draw_sound_bars(frame, sound[0], labels, (size + 10, 20))
        drawing.put_lines(frame, ["tip 880 Hz"], (size + 10, 104))
        drawing.draw_sound_bars(frame, sound[1], labels, (size + 10, 120))
        t1, t2, w1, w2 = (float(v) for v in self._state())
        drawing.put_lines(
            frame,
            [f"theta1 {t1:+.2f} rad  {w1:+.2f}/s", f"theta2 {t2:+.2f} rad  {w2:+.2f}/s", "line: goal height"],
            (size + 10, 210),
        )
        return frame
