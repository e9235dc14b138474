"""``gmc_rl/CartPoleSensors-v0``: Gymnasium's CartPole seen by a camera, heard by microphones, felt by joint encoders.

A discrete-action environment with three modalities. Dynamics, reward, termination and initial states are
Gymnasium's ``CartPoleEnv`` (subclassed: its ``step`` and ``reset`` run unchanged); only the observation changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.error import ResetNeeded

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
from gmc_rl.envs.sound import DopplerReceivers, box_distance_bounds, receiver_positions

DEFAULT_RECEIVERS: tuple[str, ...] = ("LEFT_BOTTOM", "RIGHT_BOTTOM", "MIDDLE_TOP")
RECEIVER_HALF_SIZE = (6.5, 2.0)
"""Receivers sit on the rectangle of this half width and half height around the track's centre (world units)."""
CART_FREQUENCY, TIP_FREQUENCY = 220.0, 440.0
"""Tones (Hz) emitted by the cart's motor and by a buzzer at the pole's tip."""
SENSOR_RANGE = np.array([4.8, 3.0, 0.418879, 4.0])
"""Measurement range of the sensors for ``(x, x_dot, theta, theta_dot)``: position and angle ranges are CartPole's
own observation bounds (twice the termination thresholds); the speed ranges exceed what episodes reach (random
and constant-action play stay below 2.2 m/s and 3.4 rad/s) and readings saturate beyond them."""
VIEW_HALF_WIDTH = 3.0
"""The camera sees ``x`` in ``[-3, 3]`` (the track ends at +-2.4) and ``y`` in ``[-0.5, 1.5]`` (the pole is 1 long)."""
MIN_IMAGE_HEIGHT = 20


class CartPoleSensorsEnv(MultimodalSensors, CartPoleEnv):
    """Balance a pole on a cart (push left or right) from a camera image, two sounds and noisy joint encoders.

    **Dynamics, reward, actions, episodes.** Exactly Gymnasium's ``CartPole-v1``: ``Discrete(2)`` (push left/right),
    reward 1 per step, termination when ``|x| > 2.4`` or ``|theta| > 12`` degrees, 500-step episodes. ``theta`` is
    0 upright and positive when the pole leans right; the pole (length 1) has its tip at
    ``(x + sin theta, cos theta)`` in a y-up world frame whose origin is the track centre at the pivot's height.

    **Observation** ``Dict`` (``n_stack`` frames each, oldest first):

    - ``"image"``: ``uint8 (n_stack, H, 3H)`` with ``H = image_height`` (default 40): a fixed camera over
      ``x in [-3, 3]``, ``y in [-0.5, 1.5]`` drawing the rail (dim), the cart (grey) and the pole (white) with
      anti-aliased, sub-pixel-positioned OpenCV lines. *Reveals:* ``x`` (the cart's column) and ``theta`` (the
      pole's direction) in every frame, ``x_dot`` and ``theta_dot`` from the change between stacked frames. The
      angle resolution is coarse (``H / 2`` pixels per unit: a 1 degree lean moves the tip by ``H / 115`` pixels,
      visible as anti-aliasing intensity), so control from pixels alone is possible in principle, with stacked
      frames, as in pixel-based CartPole, but it is the hardest of the three modalities.
    - ``"sound"``: ``float32 (n_stack, 2, R, 2)`` in ``[0, 1]``: for each of two sources, the cart's motor
      (220 Hz, at ``(x, 0)``) and a buzzer on the pole's tip (440 Hz), and each receiver (default ``LEFT_BOTTOM
      (-6.5, -2)``, ``RIGHT_BOTTOM (6.5, -2)``, ``MIDDLE_TOP (0, 2)``), the Doppler-shifted frequency and the
      ``1/d^2`` amplitude it hears, scaled as in :mod:`gmc_rl.envs.sound` (Doppler band from the source's largest speed
      within :data:`SENSOR_RANGE`; amplitude band from the box each source can occupy). *Reveals:* the cart's
      three distances give ``x`` and its Doppler shifts ``x_dot``; the tip's distances give the tip's position,
      hence ``sin theta = tip_x - x`` and ``theta``; its Doppler shifts give the tip velocity, hence ``theta_dot``.
      The full state, from the sound alone.
    - ``"joints"``: ``float32 (n_stack, 4)``: encoder readings of ``(x, x_dot, theta, theta_dot)`` with Gaussian
      noise of standard deviation ``joint_noise`` times each component's range (:data:`SENSOR_RANGE`), drawn from
      the env's seeded ``np_random``, clipped to the range. *Reveals:* the state directly, up to noise (the
      default 1% noise is 0.24 degree on ``theta``, well below the 12 degree margin).

    Sensor readings saturate at :data:`SENSOR_RANGE` (a real sensor's measurement range), which is what makes the
    bounds of every modality analytic although CartPole's velocities are unbounded in principle.

    **Info:** ``"state"``: CartPole-v1's float32 observation ``[x, x_dot, theta, theta_dot]`` (in
    :attr:`state_space`, CartPole-v1's observation space).

    Args:
        render_mode: ``None`` or ``"rgb_array"`` (a 300 x 1000 colour frame).
        receivers: names of the receiver positions (:data:`gmc_rl.envs.sound.RECEIVER_NAMES`) on the rectangle
            :data:`RECEIVER_HALF_SIZE`.
        sound_speed: speed of sound; must exceed the largest tip speed ``3 + 4 * 1 = 7``.
        image_height: camera image height ``H`` in pixels (20 to 512, :data:`~gmc_rl.envs.checks.MAX_IMAGE_SIZE`);
            the width is ``3 H``.
        joint_noise: standard deviation of the encoder noise as a fraction of each component's range (>= 0).
        n_stack: number of stacked frames per modality (1 to 32, :data:`~gmc_rl.envs.checks.MAX_N_STACK`).

    Raises:
        ValueError: naming the argument that is invalid.
    """

    state_names = ("x", "x_dot", "theta", "theta_dot")

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        render_mode: str | None = None,
        receivers: Sequence[str] = DEFAULT_RECEIVERS,
        sound_speed: float = 30.0,
        image_height: int = 40,
        joint_noise: float = 0.01,
        n_stack: int = 2,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        n_stack = check_int("n_stack", n_stack, 1, MAX_N_STACK)
        image_height = check_int("image_height", image_height, MIN_IMAGE_HEIGHT, MAX_IMAGE_SIZE)
        sound_speed = check_positive("sound_speed", sound_speed)
        self.joint_noise = check_non_negative("joint_noise", joint_noise)
        super().__init__(render_mode=render_mode)

        self.pole_length = 2 * self.length  # CartPoleEnv.length is half the pole's length
        self._range = SENSOR_RANGE.copy()
        x_max, speed_max, _, omega_max = (float(v) for v in self._range)
        tip_speed_max = speed_max + self.pole_length * omega_max
        if sound_speed <= tip_speed_max:
            raise ValueError(f"sound_speed must exceed the largest tip speed {tip_speed_max:g}, got {sound_speed:g}")
        positions = receiver_positions(receivers, RECEIVER_HALF_SIZE, argument="receivers")
        self.receiver_names: tuple[str, ...] = tuple(receivers)
        length = self.pole_length
        self.sources: dict[str, DopplerReceivers] = {
            "cart": DopplerReceivers(
                positions,
                CART_FREQUENCY,
                sound_speed,
                speed_max,
                box_distance_bounds(positions, (-x_max, 0.0), (x_max, 0.0)),
            ),
            "tip": DopplerReceivers(
                positions,
                TIP_FREQUENCY,
                sound_speed,
                tip_speed_max,
                box_distance_bounds(positions, (-x_max - length, -length), (x_max + length, length)),
            ),
        }
        height, width = image_height, 3 * image_height
        self.camera = Camera(height, width, pixels_per_unit=width / (2 * VIEW_HALF_WIDTH), centre=(0.0, 0.5))
        self._pole_px = max(1, round(0.1 * self.camera.pixels_per_unit))
        self._init_sensors(
            {
                "image": spaces.Box(0, 255, (height, width), np.uint8),
                "sound": spaces.Box(0.0, 1.0, (2, len(positions), 2), np.float32),
                "joints": spaces.Box(-self._range.astype(np.float32), self._range.astype(np.float32), dtype=np.float32),
            },
            n_stack,
        )
        # static part of the image: the rail under the cart
        self._background = np.zeros((height, width), np.uint8)
        self.camera.line(self._background, (-VIEW_HALF_WIDTH, -0.15), (VIEW_HALF_WIDTH, -0.15), 70, 1)

    def _state(self) -> np.ndarray:
        """CartPole's state ``(x, x_dot, theta, theta_dot)``, which ``reset`` sets."""
        if self.state is None:
            raise ResetNeeded("call reset() before the CartPole state is read")
        return self.state

    def _sensed_state(self) -> tuple[float, float, float, float]:
        """``(x, x_dot, theta, theta_dot)`` with position and speeds saturated at the sensors' range."""
        x, x_dot, theta, theta_dot = (float(v) for v in self._state())
        x_max, v_max, _, w_max = self._range
        return min(max(x, -x_max), x_max), min(max(x_dot, -v_max), v_max), theta, min(max(theta_dot, -w_max), w_max)

    def _write_frames(self, frames: dict[str, np.ndarray]) -> None:
        x, x_dot, theta, theta_dot = self._sensed_state()
        s, c = math.sin(theta), math.cos(theta)
        length = self.pole_length
        tip = (x + length * s, length * c)

        image = frames["image"]
        image[:] = self._background
        self.camera.rectangle(image, (x - 0.25, -0.15), (x + 0.25, 0.05), 150)
        self.camera.line(image, (x, 0.0), tip, 255, self._pole_px)

        sound = frames["sound"]
        self.sources["cart"].hear((x, 0.0), (x_dot, 0.0), sound[0])
        self.sources["tip"].hear(tip, (x_dot + length * c * theta_dot, -length * s * theta_dot), sound[1])

        reading = np.array((x, x_dot, theta, theta_dot)) + self.np_random.normal(0.0, self.joint_noise, 4) * self._range
        np.clip(reading, -self._range, self._range, out=frames["joints"], casting="same_kind")

    def render(self) -> np.ndarray | None:
        """A colour ``(300, 1000, 3)`` frame: the scene with both sources and the receivers, sound bars, numbers."""
        if self._render_disabled():
            return None
        height, scene_width, panel = 300, 760, 240
        frame = drawing.blank_frame(height, scene_width + panel)
        half_w = RECEIVER_HALF_SIZE[0] + 0.6
        camera = Camera(height, scene_width, pixels_per_unit=scene_width / (2 * half_w))
        camera.rectangle(frame, (-VIEW_HALF_WIDTH, -0.5), (VIEW_HALF_WIDTH, 1.5), (200, 200, 200), 1)
        camera.line(frame, (-self.x_threshold, -0.15), (self.x_threshold, -0.15), drawing.INK, 1)
        state = self._state()
        x, theta = float(state[0]), float(state[2])
        camera.rectangle(frame, (x - 0.25, -0.15), (x + 0.25, 0.05), drawing.ACCENT)
        tip = (x + self.pole_length * math.sin(theta), self.pole_length * math.cos(theta))
        camera.line(frame, (x, 0.0), tip, drawing.ROD, max(2, round(0.1 * camera.pixels_per_unit)))
        drawing.draw_receivers(frame, camera, self.sources["tip"].positions, self.receiver_names)
        sound = self.latest_frames()["sound"]
        labels = drawing.abbreviations(self.receiver_names)
        drawing.put_lines(frame, ["cart 220 Hz"], (scene_width + 10, 4))
        drawing.draw_sound_bars(frame, sound[0], labels, (scene_width + 10, 20))
        drawing.put_lines(frame, ["pole tip 440 Hz"], (scene_width + 10, 104))
        drawing.draw_sound_bars(frame, sound[1], labels, (scene_width + 10, 120))
        x_dot, theta_dot = float(state[1]), float(state[3])
        drawing.put_lines(
            frame,
            [
                f"x {x:+.2f}  x_dot {x_dot:+.2f}",
                f"theta {math.degrees(theta):+.1f} deg",
                f"theta_dot {theta_dot:+.2f}",
                "box: camera view",
            ],
            (scene_width + 10, 210),
        )
        return frame
