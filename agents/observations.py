"""What each method's policy observes: the environment stack from ``env_id`` to the policy's input.

Every method is trained and evaluated through the same stack, so that a sensor condition means the same thing for
all of them::

    gym.make(env_id) -> Monitor -> apply_condition(condition)  -> per-env observation wrapper -> DummyVecEnv
                                                                    -> vectorised encoder wrapper

- ``gmc``: the condition exposes the availability mask; :class:`~gmc_rl.wrappers.VecGMCLatent` encodes the
  present modalities with the frozen GMC model (one batched forward pass per step).
- ``mvae``: the same, with :class:`agents.mvae.VecMVAELatent` (product-of-experts posterior mean).
- ``raw``: the Dict observation itself; dropped modalities are zero-filled (no mask: the policy sees only zeros).
- ``state``: :class:`StateObservation` replaces the observation by ``info["state"]`` (the true state), so sensor
  conditions do not affect it; it is the upper bound.

:class:`~stable_baselines3.common.monitor.Monitor` sits right above the raw env, so episode returns and lengths in
``info["episode"]`` are the environment's own, whatever the condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from gmc_rl.config import check_env_id
from gmc_rl.errors import ConfigError, ModalityError, suggest
from gmc_rl.modalities import modality_specs

METHODS = ("gmc", "raw", "mvae", "state")
"""Methods an agent can be trained with (``ExperimentConfig.methods``)."""

ENCODER_METHODS = ("gmc", "mvae")
"""Methods whose policy reads the latent of a pretrained encoder (and so need the availability mask)."""


def check_method(method: str) -> str:
    """Return ``method`` if it is known, else raise :class:`ConfigError` listing the valid ones."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid: {list(METHODS)}.{suggest(str(method), METHODS)}")
    return method


class StateObservation(gym.Wrapper):
    """Replace the observation by the true state that the env reports in ``info["state"]``.

    The env must have a ``state_space`` attribute (a float32 ``Box``) and put ``info["state"]`` into the info of
    ``reset()`` and ``step()`` (every gmc_rl env does). Sensor wrappers below this one do not change the state, so
    an agent on it is the upper bound of what any sensor-based agent can reach.

    Example:
        >>> import gymnasium as gym, envs  # doctest: +SKIP
        >>> env = StateObservation(gym.make("gmc_rl/PendulumSound-v0"))  # doctest: +SKIP
        >>> env.reset(seed=0)[0].shape  # doctest: +SKIP
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
        _, info = self.env.reset(seed=seed, options=options)
        return self._state(info), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._state(info), reward, terminated, truncated, info


def make_base_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` wrapped in a ``Monitor``, with a clear error for unknown ids."""
    import envs  # noqa: F401  (registers the gmc_rl ids)

    check_env_id(env_id, env_kwargs=dict(env_kwargs or {}))  # ConfigError naming an unknown id or kwarg
    try:
        env = gym.make(env_id, **dict(env_kwargs or {}))
    except gym.error.Error as exc:
        ids = [name for name in gym.registry if name.startswith("gmc_rl/")] or list(gym.registry)
        raise ConfigError(f"cannot make env {env_id!r}: {exc}.{suggest(env_id, ids)}") from exc
    return Monitor(env)


def env_modalities(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """Modality names of an env's ``Dict`` observation space, in canonical order."""
    env = make_base_env(env_id, env_kwargs)
    try:
        return list(modality_specs(env.observation_space))
    finally:
        env.close()


def make_method_vec_env(
    method: str,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    condition: str = "complete",
    n_envs: int = 1,
    seed: int = 0,
    encoder: Any = None,
) -> VecEnv:
    """Build ``n_envs`` copies of the env under ``condition``, observed as ``method``'s policy observes them.

    Args:
        method: "gmc", "raw", "mvae" or "state".
        env_id, env_kwargs: the environment.
        condition: a sensor condition string (see :func:`gmc_rl.wrappers.conditions.parse_condition`).
        n_envs: number of envs stepped together (one batched encoder pass per step).
        seed: env ``i`` and its condition wrappers are seeded with ``seed + i``.
        encoder: the frozen GMC model (``gmc``) or MVAE (``mvae``), or a path to its checkpoint.
    """
    from gmc_rl.wrappers.conditions import apply_condition, parse_condition

    check_method(method)
    if n_envs < 1:
        raise ConfigError(f"n_envs must be positive, got {n_envs}")
    if method in ENCODER_METHODS and encoder is None:
        raise ConfigError(f"method {method!r} needs an encoder (a pretrained checkpoint)")
    expose_mask = method in ENCODER_METHODS
    probe = make_base_env(env_id, env_kwargs)
    try:
        parsed = parse_condition(condition, list(modality_specs(probe.observation_space)))
    finally:
        probe.close()

    def factory(index: int):
        def make() -> gym.Env:
            env = apply_condition(make_base_env(env_id, env_kwargs), parsed, seed + index, expose_mask)
            if method == "state":
                env = StateObservation(env)
            return env

        return make

    venv: VecEnv = DummyVecEnv([factory(i) for i in range(n_envs)])
    venv.seed(seed)
    if method == "gmc":
        from gmc_rl.wrappers import VecGMCLatent

        venv = VecGMCLatent(venv, encoder)
    elif method == "mvae":
        from agents.mvae import VecMVAELatent

        venv = VecMVAELatent(venv, encoder)
    return venv


def load_encoder(method: str, path: str | Path, device: str = "cpu") -> Any:
    """Load the frozen encoder of ``method`` from its checkpoint directory (None for raw and state)."""
    if method == "gmc":
        from gmc_rl.checkpoint import load_gmc

        return load_gmc(path, device=device)
    if method == "mvae":
        from agents.mvae import load_mvae

        return load_mvae(path, device=device)
    return None
