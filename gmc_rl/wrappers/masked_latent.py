"""Latent-observation wrappers for encoders that handle missing modalities themselves (a product of experts).

The availability mask of :class:`~gmc_rl.wrappers.ModalityDropout` goes to the encoder, which leaves the experts of
the missing modalities out of the product row by row, so a batch with mixed availability is still one forward pass.
Without a mask every modality counts as present. The MVAE (:mod:`gmc_rl.mvae`) and MUSE (:mod:`gmc_rl.muse`)
baselines subclass these, naming only their kind of checkpoint (:class:`gmc_rl.checkpoint.CheckpointKind`), which
loads the model and checks it against the env.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from gmc_rl.checkpoint import CheckpointKind
from gmc_rl.modalities import AVAILABILITY_KEY, modality_specs
from gmc_rl.wrappers.vec_latent import VecEncodedLatent


class MaskedEncoder(Protocol):
    """An encoder that takes the availability mask: ``encode(batch, mask=(B, M) or None) -> (B, k)``."""

    modalities: list[str]
    latent_dim: int

    def encode(self, obs: Mapping[str, Any], modalities: Any = ..., mask: Any = ...) -> torch.Tensor: ...


def masked_latent_space(model: MaskedEncoder) -> spaces.Box:
    """Observation space of the latent env: unbounded ``Box((k,), float32)`` (posterior means)."""
    return spaces.Box(-np.inf, np.inf, (model.latent_dim,), np.float32)


def encode_masked_observations(model: MaskedEncoder, obs: Mapping[str, Any]) -> np.ndarray:
    """Latents ``(B, k)`` float32 of a batch of raw ``Dict`` observations, masked by their availability."""
    batch = int(np.shape(obs[model.modalities[0]])[0])
    mask = None
    if AVAILABILITY_KEY in obs:
        mask = np.asarray(obs[AVAILABILITY_KEY], dtype=np.float32).reshape(batch, len(model.modalities))
    with torch.inference_mode():
        latents = model.encode({name: obs[name] for name in model.modalities}, mask=mask)
    return latents.cpu().numpy().astype(np.float32, copy=False)


class MaskedLatent(gym.ObservationWrapper):
    """Replace a multimodal ``Dict`` observation by a frozen masked encoder's latent.

    A subclass sets ``checkpoint_kind``: the kind of checkpoint that loads its encoder and checks it against the env.
    """

    checkpoint_kind: ClassVar[CheckpointKind[Any]]

    def __init__(self, env: gym.Env, checkpoint_or_model: str | os.PathLike | Any, device: str = "cpu") -> None:
        super().__init__(env)
        self.model = self.checkpoint_kind.load(checkpoint_or_model, device=device)
        self.checkpoint_kind.check_space(self.model, env.observation_space)
        self.observation_space = masked_latent_space(self.model)

    def observation(self, observation: Mapping[str, Any]) -> np.ndarray:
        return encode_masked_observations(self.model, {k: np.asarray(v)[None] for k, v in observation.items()})[0]


class VecMaskedLatent(VecEncodedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen masked encoder, in one forward
    pass (SB3's ``terminal_observation`` included). A subclass sets ``checkpoint_kind`` (see :class:`MaskedLatent`)."""

    checkpoint_kind: ClassVar[CheckpointKind[Any]]

    def __init__(self, venv: VecEnv, checkpoint_or_model: str | os.PathLike | Any, device: str = "cpu") -> None:
        self.model = self.checkpoint_kind.load(checkpoint_or_model, device=device)
        self.checkpoint_kind.check_space(self.model, venv.observation_space)
        self.keys = [*modality_specs(venv.observation_space), AVAILABILITY_KEY]
        super().__init__(venv, observation_space=masked_latent_space(self.model))

    def encode(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return encode_masked_observations(self.model, obs)
