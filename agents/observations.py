"""What each method's policy observes: the environment stack from ``env_id`` to the policy's input.

Every method is trained and evaluated through the same stack, so that a sensor condition means the same thing for
all of them::

    gym.make(env_id) -> Monitor -> apply_condition(condition)  -> method.wrap_env -> DummyVecEnv
                                                                -> method.wrap_vec_env(venv, encoder)

The methods come from the registry :mod:`gmc_rl.methods` (a :class:`~gmc_rl.methods.RepresentationMethod` per
name):

- ``gmc``: the condition exposes the availability mask; :class:`~gmc_rl.wrappers.VecGMCLatent` encodes the
  present modalities with the frozen GMC model (one batched forward pass per step).
- ``mvae``: the same, with :class:`gmc_rl.mvae.VecMVAELatent` (product-of-experts posterior mean).
- ``raw``: the Dict observation itself; dropped modalities are zero-filled (no mask: the policy sees only zeros).
- ``state``: :class:`~gmc_rl.wrappers.StateObservation` replaces the observation by ``info["state"]`` (the true
  state), so sensor conditions do not affect it; it is the upper bound.

:class:`~stable_baselines3.common.monitor.Monitor` sits right above the raw env, so episode returns and lengths in
``info["episode"]`` are the environment's own, whatever the condition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from gmc_rl.config import MAX_ENVS
from gmc_rl.config.checks import _is_integer
from gmc_rl.env_ids import check_env_id
from gmc_rl.errors import ConfigError, suggest
from gmc_rl.methods import Encoder, get_method
from gmc_rl.modalities import modality_specs


def make_base_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` wrapped in a ``Monitor``, with a clear error for unknown ids.

    ``env_id`` is an experiment config's (training, the pipeline), so the module of a ``"module:Name"`` id is
    imported. Ids read from an agent directory reach this only after :func:`gmc_rl.agents.agent_dir.read_agent_json`
    refused any whose module is not already imported, so loading an agent never imports a module.
    """
    # ConfigError naming an unknown id or kwarg
    check_env_id(env_id, allow_import=True, env_kwargs=dict(env_kwargs or {}))
    try:
        env = gym.make(env_id, **dict(env_kwargs or {}))
    except (ValueError, TypeError) as exc:  # the env refused or lacks a keyword (an image size above its limit)
        raise ConfigError(f"config key 'env_kwargs': cannot make {env_id!r} with env_kwargs "
                          f"{dict(env_kwargs or {})}: {exc}") from exc
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
    encoder: Encoder | None = None,
    vec_env: str = "dummy",
) -> VecEnv:
    """Build ``n_envs`` copies of the env under ``condition``, observed as ``method``'s policy observes them.

    Args:
        method: a registered method name (:func:`gmc_rl.methods.method_names`).
        env_id, env_kwargs: the environment.
        condition: a sensor condition string (see :func:`gmc_rl.wrappers.conditions.parse_condition`).
        n_envs: number of envs stepped together (one batched encoder pass per step).
        seed: env ``i`` and its condition wrappers are seeded with ``seed + i``.
        encoder: the method's frozen encoder (``RepresentationMethod.load``), for methods that read one.
        vec_env: "dummy" (SB3's DummyVecEnv: the envs step one after the other in this process) or "subproc"
            (SubprocVecEnv: each env in a worker process; the encoder still runs here, batched). Same observations,
            rewards and episodes either way; with one env always "dummy".

    Raises:
        ConfigError: unknown method, ``n_envs`` not an integer in [1, MAX_ENVS], ``seed`` not a non-negative
            integer, or no encoder for a method that needs one.
    """
    from gmc_rl.wrappers.conditions import apply_condition, parse_condition

    spec = get_method(method)
    if not _is_integer(n_envs) or not 0 < n_envs <= MAX_ENVS:
        raise ConfigError(f"n_envs must be an integer in [1, {MAX_ENVS}] (MAX_ENVS), got {type(n_envs).__name__} "
                          f"{n_envs!r:.80}")
    n_envs = int(n_envs)
    if not _is_integer(seed) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (env i is seeded with seed + i), got "
                          f"{type(seed).__name__} {seed!r:.80}")
    seed = int(seed)
    if spec.needs_encoder and encoder is None:
        raise ConfigError(f"method {method!r} needs an encoder (a pretrained checkpoint)")
    probe = make_base_env(env_id, env_kwargs)
    try:
        parsed = parse_condition(condition, list(modality_specs(probe.observation_space)))
    finally:
        probe.close()

    def factory(index: int) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            env = apply_condition(make_base_env(env_id, env_kwargs), parsed, seed + index, spec.expose_mask)
            return spec.wrap_env(env) if spec.wrap_env is not None else env

        return make

    if vec_env not in ("dummy", "subproc"):
        raise ConfigError(f"vec_env must be 'dummy' or 'subproc', got {vec_env!r}")
    fns = [factory(i) for i in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(fns) if vec_env == "subproc" and n_envs > 1 else DummyVecEnv(fns)
    venv.seed(seed)
    return spec.wrap_vec_env(venv, encoder) if spec.wrap_vec_env is not None else venv
