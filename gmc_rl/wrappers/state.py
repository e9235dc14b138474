"""The true state as an observation: what the ``state`` method's policy reads (the upper bound of every method).

Every gmc_rl env reports its true low-dimensional state in ``info["state"]`` and declares its space as
``state_space``. :class:`StateObservation` makes that the observation, so sensor conditions applied below it
(dropout, noise) do not change what the policy sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gmc_rl.errors import ModalityError


class StateObservation(gym.Wrapper):
    """Replace the observation by the true state that the env reports in ``info["state"]``.

    The env must have a ``state_space`` attribute (a float32 ``Box``) and put ``info["state"]`` into the info of
    ``reset()`` and ``step()`` (every gmc_rl env does). Sensor wrappers below this one do not change the state, so
    an agent on it is the upper bound of what any sensor-based agent can reach.

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = StateObservation(gym.make("gmc_rl/PendulumSound-v0"))
        >>> env.reset(seed=0)[0].shape
        (3,)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        try:
            state_space = env.get_wrapper_attr("state_space")
        except AttributeError:
            state_space = None
        if not isinstance(state_space, spaces.Box):
            raise ModalityError(
                f"the 'state' method needs an env with a Box attribute state_space and info['state']; "
                f"{env.spec.id if env.spec else env} has state_space={state_space!r}"
            )
        self.observation_space = state_space

    def _state(self, info: Mapping[str, Any]) -> np.ndarray:
        if "state" not in info:
            raise ModalityError("the 'state' method needs info['state'] from reset() and step(); the env gave none")
        state = np.asarray(info["state"], dtype=self.observation_space.dtype)
        if state.shape != self.observation_space.shape:
            raise ModalityError(
                f"info['state'] has shape {state.shape}, but state_space has shape {self.observation_space.shape}"
            )
        return state

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Reset the env and return its true state (and the info)."""
        _, info = self.env.reset(seed=seed, options=options)
        return self._state(info), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        """Step the env and return its true state in place of the sensor observation."""
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._state(info), reward, terminated, truncated, info
