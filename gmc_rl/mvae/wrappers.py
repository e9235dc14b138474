"""A frozen MVAE as an observation wrapper: ``Dict`` of sensors in, PoE posterior mean ``Box(k)`` out.

Missing modalities are handled natively by the product of experts: the availability mask of
:class:`~gmc_rl.wrappers.ModalityDropout` leaves their experts out of the product, row by row, so a batch with
mixed availability is still one forward pass. Without a mask every modality counts as present.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from gmc_rl.modalities import AVAILABILITY_KEY, modality_specs
from gmc_rl.mvae.checkpoint import check_space_matches, load_mvae
from gmc_rl.mvae.model import MVAEModel
from gmc_rl.wrappers.vec_latent import VecEncodedLatent


def mvae_latent_space(model: MVAEModel) -> spaces.Box:
    """Observation space of an MVAE latent env: unbounded ``Box((k,), float32)`` (posterior means)."""
    return spaces.Box(-np.inf, np.inf, (model.latent_dim,), np.float32)


def encode_mvae_observations(model: MVAEModel, obs: Mapping[str, Any]) -> np.ndarray:
    """Posterior means ``(B, k)`` float32 of a batch of raw ``Dict`` observations, masked by their availability."""
    batch = int(np.shape(obs[model.modalities[0]])[0])
    mask = None
    if AVAILABILITY_KEY in obs:
        mask = np.asarray(obs[AVAILABILITY_KEY], dtype=np.float32).reshape(batch, len(model.modalities))
    with torch.inference_mode():
        latents = model.encode({name: obs[name] for name in model.modalities}, mask=mask)
    return latents.cpu().numpy().astype(np.float32, copy=False)


class MVAELatent(gym.ObservationWrapper):
    """Replace a multimodal ``Dict`` observation by the PoE posterior mean of a frozen MVAE.

    Example:
        >>> import gymnasium as gym, envs  # doctest: +SKIP
        >>> from gmc_rl.wrappers import ModalityDropout
        >>> env = MVAELatent(ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"]),
        ...                  "runs/pendulum/mvae")  # doctest: +SKIP
    """

    def __init__(self, env: gym.Env, checkpoint_or_model: str | os.PathLike | MVAEModel, device: str = "cpu") -> None:
        super().__init__(env)
        self.model = load_mvae(checkpoint_or_model, device=device)
        check_space_matches(self.model, env.observation_space)
        self.observation_space = mvae_latent_space(self.model)

    def observation(self, observation: Mapping[str, Any]) -> np.ndarray:
        return encode_mvae_observations(self.model, {k: np.asarray(v)[None] for k, v in observation.items()})[0]


class VecMVAELatent(VecEncodedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen MVAE, in one forward pass.

    SB3's ``terminal_observation`` (info of an env whose episode ended) is encoded in the same pass.
    """

    def __init__(self, venv: VecEnv, checkpoint_or_model: str | os.PathLike | MVAEModel, device: str = "cpu") -> None:
        self.model = load_mvae(checkpoint_or_model, device=device)
        check_space_matches(self.model, venv.observation_space)
        self.keys = [*modality_specs(venv.observation_space), AVAILABILITY_KEY]
        super().__init__(venv, observation_space=mvae_latent_space(self.model))

    def encode(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Posterior means ``(B, k)`` of a batch (see :func:`encode_mvae_observations`)."""
        return encode_mvae_observations(self.model, obs)
