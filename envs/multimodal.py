"""A mixin that turns a Gymnasium state-vector environment into a multimodal one, without touching its dynamics.

Every gmc_rl environment is ``class XSensorsEnv(MultimodalSensors, GymnasiumXEnv)``: Gymnasium's class keeps the
physics, reward, termination and seeding; this mixin replaces the observation by a ``Dict`` of stacked sensor
frames and puts the true state into ``info``. A subclass only declares its per-frame sensor spaces
(:meth:`_init_sensors`) and draws one frame of every sensor for the current state (:meth:`_write_frames`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gmc_rl.envs.stacking import FrameStack

if TYPE_CHECKING:
    # For the type checker, the mixin is the Gymnasium env it is mixed with (its reset, step, spaces, render_mode).
    _GymnasiumEnv = gym.Env[Any, Any]
else:
    _GymnasiumEnv = object


class MultimodalSensors(_GymnasiumEnv):
    """Mixin: ``Dict`` observation of stacked sensor frames; ``info["state"]`` and ``state_space`` for the truth.

    After ``reset``/``step`` of the wrapped Gymnasium class it pushes one new frame per sensor (the stack is filled
    with copies of the first frame at reset), returns copies of the stacks as the observation, and returns
    ``info = {"state": <the Gymnasium observation>, **self._extra_info()}``.
    """

    state_space: spaces.Box
    """The Gymnasium class's own (float32 ``Box``) observation space: the space of ``info["state"]``."""
    state_names: tuple[str, ...] = ()
    """A name per entry of ``info["state"]`` (the state probe's report and warnings name them); empty: ``state[i]``."""

    def _init_sensors(self, frame_spaces: dict[str, spaces.Box], n_stack: int) -> None:
        """Declare the sensors: one ``Box`` per modality for a *single* frame; stacks of ``n_stack`` are observed.

        Call at the end of ``__init__``, after the Gymnasium class has set its ``observation_space``.
        """
        self.n_stack = n_stack
        self.state_space = cast(spaces.Box, self.observation_space)  # the Gymnasium class's state Box
        stacked: dict[str, spaces.Space] = {
            name: spaces.Box(
                low=np.broadcast_to(box.low, (n_stack, *box.shape)),
                high=np.broadcast_to(box.high, (n_stack, *box.shape)),
                dtype=box.dtype,
            )
            for name, box in frame_spaces.items()
        }
        observation_space = spaces.Dict(stacked)
        self.observation_space = observation_space
        self._stacks = {
            name: FrameStack(n_stack, frame_spaces[name].shape, frame_spaces[name].dtype)
            for name in observation_space.spaces  # the Dict's (sorted) key order
        }

    def _write_frames(self, frames: dict[str, np.ndarray]) -> None:
        """Overwrite each ``frames[name]`` (the newest slot of that sensor's stack) with the current reading."""
        raise NotImplementedError

    def _extra_info(self) -> dict[str, Any]:
        """Additional diagnostics for ``info`` (e.g. angles in radians)."""
        return {}

    def _sense(self) -> None:
        self._write_frames({name: stack.push() for name, stack in self._stacks.items()})

    def _observation(self) -> dict[str, np.ndarray]:
        return {name: stack.observation() for name, stack in self._stacks.items()}

    def latest_frames(self) -> dict[str, np.ndarray]:
        """Views of the newest frame of every sensor (read-only use: rendering, debugging)."""
        return {name: stack.newest for name, stack in self._stacks.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The Gymnasium class's reset (same ``seed`` and ``options``); every stack starts filled with copies."""
        state, _ = super().reset(seed=seed, options=options)
        self._sense()
        for stack in self._stacks.values():
            stack.fill()
        return self._observation(), {"state": state, **self._extra_info()}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """The Gymnasium class's step, then one new frame per sensor."""
        state, reward, terminated, truncated, _ = super().step(action)
        self._sense()
        info = {"state": state, **self._extra_info()}
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def _render_disabled(self) -> bool:
        """Gymnasium's convention for ``render()`` without a render mode: warn and return ``None``."""
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render_mode; create the env with render_mode='rgb_array'")
            return True
        return False
