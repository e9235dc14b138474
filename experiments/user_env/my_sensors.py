"""``user_env/ReacherSensors-v0``: a two-link planar arm reaching a fixed point, seen by a camera and range-finders.

Written from docs/custom_envs.md only, as a user of gmc-rl would: the physics is a small Gymnasium env of our own
(:class:`ReacherEnv`, a state-vector env), and :class:`ReacherSensorsEnv` turns it into a multimodal one with the
helpers the docs name (``MultimodalSensors``, ``Camera``, the distance bounds of ``gmc_rl.envs.sound``).

Importing this module registers the id with a string entry point (guarded, so re-imports do not warn). Name the
env in Gymnasium's ``"module:id"`` form wherever gmc-rl makes it, e.g. with ``experiments/`` on ``PYTHONPATH``::

    gmc-rl pipeline --env user_env.my_sensors:user_env/ReacherSensors-v0 --import user_env.my_sensors
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gmc_rl.envs import drawing
from gmc_rl.envs.drawing import Camera
from gmc_rl.envs.multimodal import MultimodalSensors
from gmc_rl.envs.sound import annulus_distance_bounds

ENV_ID = "user_env/ReacherSensors-v0"
MAX_EPISODE_STEPS = 100

LINK_1, LINK_2 = 0.5, 0.5
"""Link lengths (the arm reaches the disk of radius 1 around the shoulder at the origin)."""
MASS_1, MASS_2 = 1.0, 1.0
"""Point masses at the elbow and at the tip (massless links)."""
DAMPING = 0.05
"""Viscous friction of each joint (torque per rad/s): small, so the controller has to brake at the target."""
MAX_TORQUE = 2.0
MAX_SPEED = 3 * math.pi
"""Joint speeds are clipped to this (rad/s): the state stays bounded and a joint turns at most 0.47 rad per step."""
DT, SUBSTEPS = 0.05, 2
TARGET = (0.55, 0.45)
"""The fixed point the fingertip must reach (distance 0.71 from the shoulder)."""
ACTION_COST = 0.01

STATIONS = np.array([[-1.3, -1.3], [1.3, -1.3], [0.0, 1.5]])
"""Range-finder stations, outside the arm's reach: each measures its distance to the elbow and to the tip marker."""
RANGE_NOISE = 0.001
"""Standard deviation of the range readings' Gaussian noise, in the [0, 1] scaled units."""
VIEW_HALF_WIDTH = 1.1
IMAGE_SIZE = 48


class ReacherEnv(gym.Env):
    """The physics only: a two-link arm in a horizontal plane (no gravity), torques on both joints.

    - State ``(q1, q2, w1, w2)``: shoulder angle from the x axis, elbow angle relative to the first link, and their
      angular velocities. Observation: float32 ``[cos q1, sin q1, cos q2, sin q2, w1, w2]``.
    - Dynamics: point masses at the elbow and the tip, the standard two-link equations
      ``M(q) q'' + C(q, q') + DAMPING q' = MAX_TORQUE a``, semi-implicit Euler, ``SUBSTEPS`` per ``DT`` = 0.05 s.
    - Action ``Box(-1, 1, (2,))``: shoulder and elbow torques (scaled by ``MAX_TORQUE``).
    - Reward ``-|tip - TARGET| - 0.01 |a|^2`` per step (in ``[-2.02, 0]``); no termination (the registered
      ``TimeLimit`` ends an episode after 100 steps).
    - Start: both angles uniform in ``[-pi, pi)``, both speeds uniform in ``[-1, 1]`` rad/s.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        high = np.array([1, 1, 1, 1, MAX_SPEED, MAX_SPEED], np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.state: np.ndarray | None = None

    def _obs(self) -> np.ndarray:
        assert self.state is not None, "reset() first"
        q1, q2, w1, w2 = self.state
        return np.array([math.cos(q1), math.sin(q1), math.cos(q2), math.sin(q2), w1, w2], np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        angles = self.np_random.uniform(-math.pi, math.pi, 2)
        speeds = self.np_random.uniform(-1.0, 1.0, 2)
        self.state = np.concatenate([angles, speeds])
        return self._obs(), {}

    def kinematics(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]:
        """World positions and velocities ``(elbow, elbow_velocity, tip, tip_velocity)`` for the current state."""
        assert self.state is not None, "reset() first"
        q1, q2, w1, w2 = (float(v) for v in self.state)
        c1, s1, c12, s12 = math.cos(q1), math.sin(q1), math.cos(q1 + q2), math.sin(q1 + q2)
        elbow, elbow_velocity = (LINK_1 * c1, LINK_1 * s1), (-LINK_1 * s1 * w1, LINK_1 * c1 * w1)
        tip = (elbow[0] + LINK_2 * c12, elbow[1] + LINK_2 * s12)
        tip_velocity = (elbow_velocity[0] - LINK_2 * s12 * (w1 + w2), elbow_velocity[1] + LINK_2 * c12 * (w1 + w2))
        return elbow, elbow_velocity, tip, tip_velocity

    def step(self, action):
        torque = MAX_TORQUE * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        q1, q2, w1, w2 = (float(v) for v in self.state)
        h = DT / SUBSTEPS
        for _ in range(SUBSTEPS):
            c2, s2 = math.cos(q2), math.sin(q2)
            m11 = (MASS_1 + MASS_2) * LINK_1**2 + MASS_2 * LINK_2**2 + 2 * MASS_2 * LINK_1 * LINK_2 * c2
            m12 = MASS_2 * LINK_2**2 + MASS_2 * LINK_1 * LINK_2 * c2
            m22 = MASS_2 * LINK_2**2
            k = MASS_2 * LINK_1 * LINK_2 * s2
            rhs1 = torque[0] + k * (2 * w1 * w2 + w2 * w2) - DAMPING * w1
            rhs2 = torque[1] - k * w1 * w1 - DAMPING * w2
            det = m11 * m22 - m12 * m12
            a1 = (m22 * rhs1 - m12 * rhs2) / det
            a2 = (m11 * rhs2 - m12 * rhs1) / det
            w1 = min(max(w1 + h * a1, -MAX_SPEED), MAX_SPEED)
            w2 = min(max(w2 + h * a2, -MAX_SPEED), MAX_SPEED)
            q1 = (q1 + h * w1 + math.pi) % (2 * math.pi) - math.pi
            q2 = (q2 + h * w2 + math.pi) % (2 * math.pi) - math.pi
        self.state = np.array([q1, q2, w1, w2])
        _, _, tip, _ = self.kinematics()
        distance = math.hypot(tip[0] - TARGET[0], tip[1] - TARGET[1])
        reward = -distance - ACTION_COST * float(np.sum(np.square(action)))
        return self._obs(), reward, False, False, {}


class ReacherSensorsEnv(MultimodalSensors, ReacherEnv):
    """:class:`ReacherEnv` (dynamics, reward, actions unchanged) observed through two sensors.

    - ``"camera"``: ``uint8 (n_stack, 48, 48)``, the view ``[-1.1, 1.1]^2`` around the shoulder (image centre):
      the first link grey (128), the second white (255) with a white disc at the tip. *Reveals:* ``q1`` (direction
      of the grey link from the centre) and ``q2`` (bend between grey and white) in every frame, so the whole
      configuration; the angular velocities from the change between the two stacked frames (at most 0.47 rad per
      step, no aliasing).
    - ``"ranges"``: ``float32 (n_stack, 2, 3)`` in ``[0, 1]``: the distances from three range-finder stations
      (``STATIONS``, outside the reach) to the elbow marker (row 0) and the tip marker (row 1), scaled with analytic
      bounds (elbow on the circle of radius 0.5, tip in the disk of radius 1) plus Gaussian noise of 0.001.
      *Reveals:* three distances locate the elbow, hence ``q1``, and the tip, hence ``q1 + q2``; the change between
      the stacked frames gives both velocities. The full state, from the ranges alone.

    ``info["state"]`` is :class:`ReacherEnv`'s observation ``[cos q1, sin q1, cos q2, sin q2, w1, w2]`` (set by
    ``MultimodalSensors``); :attr:`state_names` names its entries.
    """

    state_names = ("cos_q1", "sin_q1", "cos_q2", "sin_q2", "w1", "w2")

    def __init__(self, render_mode: str | None = None, n_stack: int = 2, range_noise: float = RANGE_NOISE) -> None:
        if range_noise < 0:
            raise ValueError(f"range_noise must be >= 0, got {range_noise}")
        super().__init__(render_mode=render_mode)
        self.range_noise = float(range_noise)
        bounds = np.stack([
            annulus_distance_bounds(STATIONS, (0.0, 0.0), LINK_1, LINK_1),  # the elbow: a circle
            annulus_distance_bounds(STATIONS, (0.0, 0.0), abs(LINK_1 - LINK_2), LINK_1 + LINK_2),  # the tip: a disk
        ])  # (2 markers, 3 stations, [d_min, d_max])
        self._range_low, self._range_span = bounds[..., 0], bounds[..., 1] - bounds[..., 0]
        self.camera = Camera(IMAGE_SIZE, IMAGE_SIZE, pixels_per_unit=IMAGE_SIZE / (2 * VIEW_HALF_WIDTH))
        self._init_sensors(
            {
                "camera": spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE), np.uint8),
                "ranges": spaces.Box(0.0, 1.0, (2, len(STATIONS)), np.float32),
            },
            n_stack,
        )

    def _write_frames(self, frames: dict[str, np.ndarray]) -> None:
        elbow, _, tip, _ = self.kinematics()
        image = frames["camera"]
        image.fill(0)
        self.camera.line(image, (0.0, 0.0), elbow, 128, 2)
        self.camera.line(image, elbow, tip, 255, 2)
        self.camera.circle(image, tip, 0.06, 255)
        markers = np.array([elbow, tip])  # (2, 2)
        distances = np.linalg.norm(markers[:, None, :] - STATIONS[None, :, :], axis=2)  # (2 markers, 3 stations)
        scaled = (distances - self._range_low) / self._range_span
        if self.range_noise > 0:
            scaled = scaled + self.np_random.normal(0.0, self.range_noise, scaled.shape)
        frames["ranges"][:] = np.clip(scaled, 0.0, 1.0)

    def render(self) -> np.ndarray | None:
        """A colour ``(240, 240, 3)`` frame: the arm, the target (cross) and the range-finder stations."""
        if self._render_disabled():
            return None
        size = 240
        frame = drawing.blank_frame(size, size)
        camera = Camera(size, size, pixels_per_unit=size / 3.4, centre=(0.0, 0.1))
        elbow, _, tip, _ = self.kinematics()
        camera.line(frame, (0.0, 0.0), elbow, drawing.ROD, 5)
        camera.line(frame, elbow, tip, drawing.ACCENT, 5)
        (tx, ty), r = TARGET, 0.06
        camera.line(frame, (tx - r, ty), (tx + r, ty), drawing.INK, 2)
        camera.line(frame, (tx, ty - r), (tx, ty + r), drawing.INK, 2)
        for i, station in enumerate(STATIONS):
            camera.circle(frame, station, 0.05, drawing.RECEIVER_COLORS[i])
        return frame


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=f"{__name__}:ReacherSensorsEnv", max_episode_steps=MAX_EPISODE_STEPS)
