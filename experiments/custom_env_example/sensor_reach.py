"""``example/SensorReach-v0``: a point mass steered to the origin, observed by a camera, beacons and a GPS.

This file is the whole of what a user writes to bring their own multimodal environment to gmc-rl. The rules:

1. The observation space is a ``gymnasium.spaces.Dict`` keyed by modality name, with at least two ``Box`` entries.
   Images are ``uint8`` and channel-first ``(C, H, W)`` (stacked frames are channels); every other ``Box`` is a
   vector modality (any shape, flattened by the encoders).
2. The env is registered with Gymnasium under an id (``register`` below). Configs name it in Gymnasium's
   ``"module:id"`` form, ``gmc_rl.experiments.custom_env_example.sensor_reach:example/SensorReach-v0`` (the
   installed name of this file), so that every process that makes the env from the config (``gmc-rl pipeline`` and
   its workers) imports this module first. A command that reads the id from a file instead (``gmc-rl evaluate``,
   ``align --agent`` or ``train --resume`` on an agent) never imports a module named there: name it with
   ``--import gmc_rl.experiments.custom_env_example.sensor_reach`` (or ``--config`` the experiment config).
3. Optional: a ``state_space`` attribute and ``info["state"]`` in ``reset`` and ``step`` enable the "state"
   (true-state, upper-bound) agent; ``render_mode="rgb_array"`` enables ``--video``.

The task: a point mass at position ``p`` with velocity ``v`` in the square ``[-1, 1]^2`` is pushed by a force
``a in [-1, 1]^2``; the reward ``-(|p|^2 + 0.1 |v|^2 + 0.01 |a|^2)`` asks to bring it to the origin and stop.
Each of the three sensors reveals the whole state ``(p, v)`` on its own, so a good representation keeps the
agent working when any two of them fail:

- ``"camera"``: ``uint8 (2, 32, 32)``, the mass drawn as a bright disc, current and previous frame;
- ``"beacons"``: ``float32 (2, 3)``, distances to three beacons at the corners of a triangle, now and before;
- ``"gps"``: ``float32 (4,)``, a noisy reading of position and velocity.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "example/SensorReach-v0"
BEACONS = np.array([[-1.5, -1.5], [1.5, -1.5], [0.0, 1.5]], dtype=np.float32)
IMAGE_SIZE = 32
DT = 0.1
MAX_SPEED = 2.0


class SensorReachEnv(gym.Env):
    """Bring a point mass to the origin, seeing it through a camera, three range beacons and a noisy GPS."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, gps_noise: float = 0.02) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if gps_noise < 0:
            raise ValueError(f"gps_noise must be >= 0, got {gps_noise}")
        self.render_mode = render_mode
        self.gps_noise = float(gps_noise)
        self.observation_space = spaces.Dict({
            "camera": spaces.Box(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE), np.uint8),
            "beacons": spaces.Box(0.0, 4.0, (2, len(BEACONS)), np.float32),
            "gps": spaces.Box(-3.0, 3.0, (4,), np.float32),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.state_space = spaces.Box(np.array([-1, -1, -MAX_SPEED, -MAX_SPEED], np.float32),
                                      np.array([1, 1, MAX_SPEED, MAX_SPEED], np.float32))
        self.position = np.zeros(2, np.float32)
        self.velocity = np.zeros(2, np.float32)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    # -- sensors ---------------------------------------------------------------------------------------------

    def _camera_frame(self) -> np.ndarray:
        frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        pixel = ((self.position + 1.0) / 2.0 * (IMAGE_SIZE - 1)).round().astype(int)
        cv2.circle(frame, (int(pixel[0]), int(IMAGE_SIZE - 1 - pixel[1])), 2, 255, -1)
        return frame

    def _ranges(self) -> np.ndarray:
        return np.linalg.norm(BEACONS - self.position, axis=1).astype(np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        frame, ranges = self._camera_frame(), self._ranges()
        previous_frame, previous_ranges = self._previous or (frame, ranges)
        self._previous = (frame, ranges)
        noise = self.np_random.normal(0.0, self.gps_noise, 4).astype(np.float32)
        gps = np.concatenate([self.position, self.velocity]) + noise
        return {
            "camera": np.stack([previous_frame, frame]),
            "beacons": np.stack([previous_ranges, ranges]),
            "gps": np.clip(gps, -3.0, 3.0).astype(np.float32),
        }

    def _info(self) -> dict[str, Any]:
        return {"state": np.concatenate([self.position, self.velocity]).astype(np.float32)}

    # -- Gymnasium API ---------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.9, 0.9, 2).astype(np.float32)
        self.velocity = np.zeros(2, np.float32)
        self._previous = None
        return self._observation(), self._info()

    def step(self, action):
        force = np.clip(np.asarray(action, dtype=np.float32).reshape(2), -1.0, 1.0)
        reward = -float(self.position @ self.position + 0.1 * self.velocity @ self.velocity + 0.01 * force @ force)
        self.velocity = np.clip(self.velocity + DT * 2.0 * force, -MAX_SPEED, MAX_SPEED).astype(np.float32)
        self.position = self.position + DT * self.velocity
        hit = np.abs(self.position) > 1.0  # walls stop the mass
        self.position = np.clip(self.position, -1.0, 1.0).astype(np.float32)
        self.velocity[hit] = 0.0
        return self._observation(), reward, False, False, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        size = 200
        canvas = np.full((size, size, 3), 30, np.uint8)

        def to_pixel(point: np.ndarray) -> tuple[int, int]:
            scale = size / 4.0  # the view spans [-2, 2]^2
            return int(size / 2 + point[0] * scale), int(size / 2 - point[1] * scale)

        cv2.rectangle(canvas, to_pixel(np.array([-1, 1])), to_pixel(np.array([1, -1])), (90, 90, 90), 1)
        cv2.drawMarker(canvas, to_pixel(np.zeros(2)), (0, 200, 0), cv2.MARKER_CROSS, 12, 1)
        for beacon in BEACONS:
            cv2.circle(canvas, to_pixel(beacon), 5, (0, 160, 255), -1)
        cv2.circle(canvas, to_pixel(self.position), 6, (255, 255, 255), -1)
        return canvas


def register() -> None:
    """Register :data:`ENV_ID` with Gymnasium (idempotent); runs when this module is imported."""
    if ENV_ID not in gym.registry:
        # Gymnasium's EnvCreator protocol takes only **kwargs, which no env class with named parameters matches.
        gym.register(id=ENV_ID, entry_point=SensorReachEnv, max_episode_steps=100)  # type: ignore[arg-type]


register()
