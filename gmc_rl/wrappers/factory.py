"""One call from an env id and a checkpoint to a latent-state env: the whole wrapper stack.

``make_latent_env`` builds ``gym.make(env_id)`` -> :class:`NonFiniteGuard` -> :class:`ModalityDropout` (when
dropout arguments are given) -> :class:`GMCLatent`. It is registered with Gymnasium as
:data:`gmc_rl.wrappers.LATENT_ENV_ID`, so rl-zoo3 (or any code that only knows env ids) can build it::

    python -m rl_zoo3.train --algo sac --env gmc_rl/GMCLatent-v0 --gym-packages gmc_rl.wrappers \\
        --env-kwargs env_id:"'gmc_rl/PendulumSound-v0'" checkpoint:"'runs/pendulum/gmc'" p:0.3 per:"'step'"

Code that makes envs from ids passes ``render_mode`` on its own: SB3's ``make_vec_env`` passes
``render_mode="rgb_array"`` unless told otherwise (and retries without it only on a ``TypeError``), rl-zoo3's
``record_video`` passes ``"rgb_array"``, its ``enjoy`` passes ``"human"``, and Gymnasium's ``check_env`` remakes the
env once per declared render mode. Both factories therefore take ``render_mode`` and hand it to the underlying
``gym.make``, so ``render()`` of the wrapped env returns the underlying env's frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from gmc_rl.checkpoint import checkpoint_dir
from gmc_rl.errors import ConfigError, suggest
from gmc_rl.model import GMCModel
from gmc_rl.pretraining_run import require_finished
from gmc_rl.wrappers.dropout import ModalityDropout
from gmc_rl.wrappers.latent import GMCLatent
from gmc_rl.wrappers.nonfinite import NonFiniteGuard


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None, render_mode: str | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``, naming valid ids on a typo.

    The built-in ``gmc_rl/`` ids are in Gymnasium's registry once :mod:`gmc_rl` is imported (see its docstring).
    ``render_mode`` (when not None) is passed to ``gym.make`` with ``env_kwargs``; None leaves the env's default,
    so envs without a ``render_mode`` argument still work.

    Raises:
        ConfigError: the id is not registered (the message lists the registered ``gmc_rl/`` ids and close matches),
            or ``render_mode`` differs from ``env_kwargs["render_mode"]``.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(f"env_id must be a registered Gymnasium id (a string), got {env_id!r}")
    if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
        raise ConfigError(f"env_kwargs must be a mapping of keyword arguments, got {env_kwargs!r}")
    if ":" not in env_id and env_id not in gym.registry:
        ours = sorted(name for name in gym.registry if name.startswith("gmc_rl/"))
        raise ConfigError(
            f"environment id {env_id!r} is not registered; gmc-rl environments: {ours}."
            f"{suggest(env_id, list(gym.registry))}"
        )
    kwargs = dict(env_kwargs or {})
    if render_mode is not None:
        if kwargs.get("render_mode", render_mode) != render_mode:
            raise ConfigError(
                f"render_mode={render_mode!r} conflicts with env_kwargs['render_mode']={kwargs['render_mode']!r}; "
                f"give it once"
            )
        kwargs["render_mode"] = render_mode
    return gym.make(env_id, **kwargs)


DROPOUT_ARGUMENTS = ("drop", "p", "per", "keep_one", "seed", "allow_all")
"""Keyword arguments of :class:`ModalityDropout` that the factories pass through."""


def make_sensor_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    on_nonfinite: str = "raise",
    expose_mask: bool = True,
    render_mode: str | None = None,
    **dropout_kwargs: Any,
) -> gym.Env:
    """The multimodal env with its sensor wrappers: ``gym.make`` -> :class:`NonFiniteGuard` -> :class:`ModalityDropout`.

    The dropout wrapper is added only if dropout arguments (``drop``, ``p``, ``per``, ``keep_one``, ``seed``,
    ``allow_all``) are given. This is the per-env part of a latent vector env: wrap a ``VecEnv`` of these in
    :class:`~gmc_rl.wrappers.VecGMCLatent`. ``render_mode`` goes to ``gym.make`` (see :func:`make_env`), and the
    wrappers pass ``render()`` through to the env.

    Raises:
        ConfigError: an unknown keyword argument (the message lists the valid ones) or an unregistered env id.
    """
    unknown = [key for key in dropout_kwargs if key not in DROPOUT_ARGUMENTS]
    if unknown:
        raise ConfigError(
            f"unknown keyword argument(s) {unknown}; dropout arguments are {list(DROPOUT_ARGUMENTS)}, others are "
            f"env_id, checkpoint, modalities, env_kwargs, render_mode, on_nonfinite, device."
            f"{suggest(unknown[0], DROPOUT_ARGUMENTS)}"
        )
    env = make_env(env_id, env_kwargs, render_mode)
    env = NonFiniteGuard(env, on_nonfinite=on_nonfinite, expose_mask=expose_mask)
    if dropout_kwargs:
        env = ModalityDropout(env, expose_mask=expose_mask, **dropout_kwargs)
    return env


def make_latent_env(
    env_id: str,
    checkpoint: str | os.PathLike | GMCModel,
    modalities: Sequence[str] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    on_nonfinite: str = "raise",
    device: str = "cpu",
    render_mode: str | None = None,
    **dropout_kwargs: Any,
) -> gym.Env:
    """Build a latent-state env: the multimodal env, a NaN/inf guard, optional sensor dropout, the GMC encoder.

    Args:
        env_id: a registered multimodal env id, e.g. ``"gmc_rl/PendulumSound-v0"``.
        checkpoint: a GMC checkpoint directory (of a pretraining run that finished:
            :func:`~gmc_rl.pretraining_run.require_finished`) or a :class:`~gmc_rl.model.GMCModel`.
        modalities: restrict the encoder to these modalities (default: all).
        env_kwargs: keyword arguments of ``gym.make``.
        on_nonfinite: "raise" (a clear error on NaN/inf sensor values) or "drop" (that modality is missing for the
            step).
        device: where the GMC model runs.
        render_mode: the underlying env's render mode (``"rgb_array"`` for videos), passed to its ``gym.make``;
            ``render()`` of the latent env returns that env's frame. None: the env's default (no rendering).
        **dropout_kwargs: arguments of :class:`ModalityDropout` (``drop``, ``p``, ``per``, ``keep_one``, ``seed``,
            ``allow_all``); none given means no dropout. The mask is always exposed to the encoder.

    Example:
        >>> env = make_latent_env("gmc_rl/PendulumSound-v0", "runs/pendulum/gmc", p=0.3, per="step")  # doctest: +SKIP
        >>> env.observation_space  # doctest: +SKIP
        Box(-1.0, 1.0, (10,), float32)
    """
    if dropout_kwargs.pop("expose_mask", True) is not True:
        raise ConfigError(
            "make_latent_env always exposes the availability mask to the encoder; do not pass expose_mask"
        )
    if not isinstance(checkpoint, GMCModel):  # an agent (rl-zoo3's too) is never trained on a half-pretrained run
        require_finished(checkpoint_dir(checkpoint, "GMC checkpoint"), "GMC checkpoint")
    env = make_sensor_env(env_id, env_kwargs, on_nonfinite=on_nonfinite, render_mode=render_mode, **dropout_kwargs)
    return GMCLatent(env, checkpoint, modalities=modalities, device=device)
