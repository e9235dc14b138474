"""Load a trained agent directory and rebuild the observation stack it was trained on, under any sensor condition.

Example:
    >>> from gmc_rl.agents import load_agent
    >>> agent = load_agent("runs/pendulum/sac")  # doctest: +SKIP
    >>> venv = agent.make_vec_env("sound", n_envs=2, seed=3)  # doctest: +SKIP
    >>> obs = venv.reset()  # doctest: +SKIP
    >>> actions = agent.predict(obs)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from gmc_rl.agents import agent_dir as layout
from gmc_rl.agents.checkpoints import latest_checkpoint
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.agents.registry import OFF_POLICY, build_algorithm
from gmc_rl.checkpoint import read_checkpoint_config, resolve_device
from gmc_rl.config import ExperimentConfig, stored_config
from gmc_rl.data import file_sha256
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError, SensorValueError
from gmc_rl.io import require_path
from gmc_rl.methods import Encoder, RepresentationMethod, get_method
from gmc_rl.modalities import check_array_storage, is_float_dtype
from gmc_rl.model import GMCModel

FROZEN_PREFIXES = ("joint_encoder.", "head.")
"""State-dict prefixes of the GMC parts an action fit never changes: the complete latent depends on them alone."""


@dataclass
class Agent:
    """A trained agent: its SB3 model, what it observes, and a factory of its envs under sensor conditions."""

    path: Path
    method: str
    algo: str
    model: BaseAlgorithm
    env_id: str
    env_kwargs: dict[str, Any]
    modalities: list[str]
    seed: int
    info: dict[str, Any] = field(repr=False)
    """The full ``agent.json``."""
    encoder: Encoder | None = field(default=None, repr=False)
    """The frozen encoder the policy reads (:mod:`gmc_rl.methods`; None for methods without one, e.g. raw)."""

    @property
    def config(self) -> ExperimentConfig:
        """The experiment config the agent was trained with."""
        return stored_config(self.info["config"])

    def make_vec_env(self, condition: str = "complete", n_envs: int = 1, seed: int = 0) -> VecEnv:
        """``n_envs`` envs under the sensor ``condition``, observed as this agent's policy observes them.

        ``condition`` is "complete", a modality ("image"), a "+"-joined subset, "dropout:P", "noise:MOD:SEVERITY",
        "saltpepper:MOD:SEVERITY" or "stuck:MOD" (see :mod:`gmc_rl.wrappers.conditions`). Env ``i`` is seeded
        with ``seed + i``.

        Raises:
            ConfigError: ``n_envs`` is not an integer in [1, MAX_ENVS] (256), ``seed`` not a non-negative integer
                (a bool is neither), or ``condition`` not one the env's modalities allow.
        """
        return make_method_vec_env(self.method, self.env_id, self.env_kwargs, condition, n_envs, seed, self.encoder)

    def predict(self, observation: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations from :meth:`make_vec_env` (deterministic by default).

        Raises:
            ModalityError: the observation does not fit the policy's observation space (type, keys, shape).
            SensorValueError: it holds NaN or inf.
        """
        if not isinstance(deterministic, (bool, np.bool_)):
            raise ConfigError(f"deterministic must be True or False, got {type(deterministic).__name__} "
                              f"{deterministic!r}")
        checked = check_policy_observation(observation, self.model.observation_space)
        actions, _ = self.model.predict(checked, deterministic=bool(deterministic))
        return actions


def check_policy_observation(observation: Any, space: spaces.Space, key: str = "observation") -> Any:
    """Refuse what a policy cannot act on with a message naming it, before SB3 and torch see it; return the
    observation as numpy arrays (a tensor detached, ``bfloat16`` widened to ``float32``).

    A Box observation must be an array (not a dict of sensors), of a dtype its space holds (any number for a float
    space, but not ``bool``; integers for an integer space such as a ``uint8`` image, which SB3 scales by 1/255), of
    the space's shape (one observation or a batch), finite, and within the space's bounds: a latent of 1e30 for a
    ``Box(-1, 1)`` latent or a bool for a float state would otherwise give an action without complaint. A Dict
    observation must be a mapping with the space's keys, each checked so.
    """
    if isinstance(space, spaces.Dict):
        if not isinstance(observation, Mapping):
            raise ModalityError(f"{key} must be a dict with keys {sorted(space.spaces)}, "
                                f"got {type(observation).__name__}")
        missing = sorted(set(space.spaces) - set(observation))
        if missing:
            raise ModalityError(f"{key} has no {missing}; the policy observes {sorted(space.spaces)}")
        return {name: check_policy_observation(observation[name], subspace, f"{key}[{name!r}]")
                for name, subspace in space.spaces.items()}
    if not isinstance(space, spaces.Box):
        return observation
    if isinstance(observation, Mapping):
        raise ModalityError(
            f"{key} must be an array of shape {space.shape} (or a batch of them): this policy observes a vector, "
            f"not the sensors {sorted(observation)}; encode them first (agent.encoder.encode(obs)) or step the envs "
            "of agent.make_vec_env(), which do"
        )
    check_array_storage(key, observation)  # the same rules as an encoder's batch: native byte order, not meta
    if isinstance(observation, torch.Tensor):
        tensor = observation.detach().cpu()
        value = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    else:
        value = np.asarray(observation)
    if value.dtype.kind not in "biu" and not is_float_dtype(value.dtype):
        raise ModalityError(f"{key} must hold numbers of a dtype torch takes (int, float16/32/64), got dtype "
                            f"{value.dtype}")
    wanted = np.dtype(space.dtype)
    if value.dtype.kind == "b" and wanted.kind != "b":
        raise ModalityError(f"{key} holds booleans but the policy observes {wanted} values; convert them first")
    if wanted.kind in "iu" and value.dtype.kind not in "iu":
        raise ModalityError(f"{key} must hold integers like its space ({wanted}), got dtype {value.dtype}: SB3 "
                            "scales an integer image by 1/255, so floats would reach the policy as other values")
    if value.shape != space.shape and value.shape[1:] != space.shape:
        raise ModalityError(f"{key} must have shape {space.shape} or (B, {', '.join(map(str, space.shape))}), "
                            f"got {value.shape}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise SensorValueError(f"{key} contains NaN or inf; a policy cannot act on it")
    _check_bounds(value, space, key)
    return value


def _check_bounds(value: np.ndarray, space: spaces.Box, key: str) -> None:
    """Raise SensorValueError if ``value`` (one observation or a batch) lies outside ``space``'s finite bounds by
    more than float32 rounding."""
    values = value.astype(np.float64)
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    slack = 1e-5 * np.maximum(1.0, np.maximum(np.abs(np.nan_to_num(low)), np.abs(np.nan_to_num(high))))
    outside = (values < low - slack) | (values > high + slack)
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        bound_index = index[-len(space.shape):] if space.shape else ()
        raise SensorValueError(
            f"{key} holds {values[index]:g} at index {index}, outside the policy's observation space "
            f"[{low[bound_index]:g}, {high[bound_index]:g}] there; the policy never saw such a value"
        )


def _steps_done(path: Path, info: dict[str, Any]) -> str:
    """How far an unfinished agent got: its last checkpoint's steps (agent.json's count is written only when
    training stops cleanly, so a killed run's says 0), in words."""
    try:
        checkpoint = latest_checkpoint(path / layout.CHECKPOINTS_DIR)
    except (OSError, CheckpointError):
        checkpoint = None
    if checkpoint is not None and checkpoint["num_timesteps"] > int(info.get("num_timesteps", 0)):
        return f"last checkpoint at {checkpoint['num_timesteps']}"
    return str(info.get("num_timesteps", 0))


def load_agent(path: str | Path, device: str = "cpu", action_fit: bool = True) -> Agent:
    """Load the agent directory ``path`` written by :func:`gmc_rl.agents.train_agent`.

    The SB3 algorithm is rebuilt from ``agent.json`` and only the weights of ``agent.zip`` are loaded (with
    ``torch.load(weights_only=True)``); nothing is unpickled. The encoder is loaded from ``path/encoder`` by the
    method's ``load`` (:mod:`gmc_rl.methods`), or, when the agent has an action fit (``path/action_fit``,
    :mod:`gmc_rl.agents.action_fit`) and ``action_fit`` is true, from there: the same complete latent, modality
    encoders fitted to this agent's actions.

    Raises:
        FileNotFoundError: ``path`` is not an agent directory.
        CheckpointError: the agent is unfinished, damaged, contradicts itself, or its weights do not fit the
            rebuilt algorithm.
        ConfigError: its method is not registered, its env id names a module that is not imported
            (:func:`gmc_rl.agents.agent_dir.read_agent_json`), or ``device`` is not available here.
    """
    path = require_path(path, "an agent must be given as a path to its directory", CheckpointError)
    device = str(resolve_device(device))  # an explicit device this machine lacks is refused, never replaced
    layout.check_agent_files(path)  # an agent.zip that is a directory is named, not called unfinished
    info = layout.read_agent_json(path)
    if info["status"] == layout.STATUS_COMPLETE and not (path / layout.MODEL_ZIP).is_file():
        # check_agent_files named anything else standing there: agent.zip is absent, not unfinished
        way = (f"rebuild it from its last checkpoint with `gmc-rl train --out {path} --resume`"
               if (path / layout.CHECKPOINTS_DIR / "latest.json").is_file() else
               f"it has no checkpoint to rebuild it from: train it again (`gmc-rl train --out {path} --resume` "
               "starts from step 0)")
        raise CheckpointError(f"the agent in {path} finished training ({_steps_done(path, info)} of "
                              f"{info.get('total_timesteps', '?')} steps), but its {layout.MODEL_ZIP} (the trained "
                              f"policy) is missing; {way}")
    if info["status"] != layout.STATUS_COMPLETE:
        raise CheckpointError(
            f"the agent in {path} has not finished training ({_steps_done(path, info)} of "
            f"{info.get('total_timesteps', '?')} steps); continue it with `gmc-rl train --out {path} --resume`"
        )
    spec = get_method(str(info["method"]))
    method = spec.name
    try:
        config = stored_config(info["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path / layout.AGENT_JSON}: stored config is invalid: {exc}") from exc
    encoder = None
    if spec.needs_encoder:
        encoder_dir = path / layout.ENCODER_DIR
        if not encoder_dir.is_dir():
            raise CheckpointError(f"the {method} agent in {path} has no {layout.ENCODER_DIR}/ directory")
        layout.check_encoder_digests(path, info)  # another checkpoint of the same architecture would load too
        encoder = spec.load_encoder(encoder_dir, device=device)
        if action_fit and (path / layout.ACTION_FIT_DIR).exists():
            encoder = load_fitted_encoder(path, spec, encoder, device)
    hyperparams = config.agent.hyperparams_for(method)
    if info["algo"] in OFF_POLICY:
        hyperparams["buffer_size"] = 1  # inference only: no replay memory is needed
        hyperparams.pop("optimize_memory_usage", None)
    venv = make_method_vec_env(method, info["env_id"], info["env_kwargs"], "complete", 1, 0, encoder)
    try:
        model = build_algorithm(info["algo"], venv, hyperparams, int(info["seed"]), tensorboard_log=None,
                                device=device)
    finally:
        venv.close()
    model.env = None  # the agent acts on envs from make_vec_env; keep no reference to the probe env
    layout.load_model_weights(model, path / layout.MODEL_ZIP)
    model.policy.set_training_mode(False)
    return Agent(
        path=path,
        method=method,
        algo=str(info["algo"]),
        model=model,
        env_id=str(info["env_id"]),
        env_kwargs=dict(info["env_kwargs"]),
        modalities=list(info["modalities"]),
        seed=int(info["seed"]),
        info=info,
        encoder=encoder,
    )


def fit_record(directory: Path) -> dict[str, Any] | None:
    """The settings and policy digest of the action fit in ``directory`` (an agent's ``action_fit/``), or None
    when there is none or it cannot be read."""
    try:
        record = read_checkpoint_config(directory)["provenance"]["action_fit"]
        return {"settings": record["settings"], "policy_sha256": record["policy_sha256"]}
    except (OSError, CheckpointError, KeyError, TypeError):
        return None


def load_fitted_encoder(agent_dir: Path, spec: RepresentationMethod, encoder: Any, device: str) -> Any:
    """The encoder of ``agent_dir/action_fit`` (:mod:`gmc_rl.agents.action_fit`) after checking that it belongs to
    this agent: fitted to its policy (``agent.zip``'s digest) from its encoder (the joint encoder and the head,
    hence the complete latent, identical to ``encoder``'s).

    Raises:
        CheckpointError: the fit is damaged, was made for another policy, or changes the complete latent.
    """
    target = agent_dir / layout.ACTION_FIT_DIR
    again = "remove it (the agent then reads encoder/), or fit again: rerun the `gmc-rl train` command that made " \
            "the agent (with --resume for an agent trained by RL; a finished agent is not trained again, only fitted)"
    record = fit_record(target)
    if record is None:
        raise CheckpointError(f"{target} is not an action fit that gmc-rl wrote; {again}")
    if record["policy_sha256"] != file_sha256(agent_dir / layout.MODEL_ZIP):
        raise CheckpointError(f"{target} was fitted to another policy than {agent_dir / layout.MODEL_ZIP}; {again}")
    if not isinstance(encoder, GMCModel):
        raise CheckpointError(f"{target}: only GMC agents have an action fit, this agent's encoder is "
                              f"{type(encoder).__name__}; remove it")
    fitted = spec.load_encoder(target, device=device)
    if not isinstance(fitted, GMCModel):  # pragma: no cover - the gmc method loads GMC models only
        raise CheckpointError(f"{target} does not hold a GMC encoder; {again}")
    original, new = encoder.state_dict(), fitted.state_dict()
    changed = [key for key in original if key.startswith(FROZEN_PREFIXES)
               and (key not in new or not torch.equal(original[key].cpu(), new[key].cpu()))]
    if changed or original.keys() != new.keys():
        raise CheckpointError(f"{target} does not keep the complete latent of {agent_dir / layout.ENCODER_DIR} "
                              f"(changed: {changed[:3] or 'the layout'}); {again}")
    return fitted
