"""A frozen GMC encoder for SB3 vector envs: all environments of a ``VecEnv`` encoded in one forward pass.

Same semantics as :class:`~gmc_rl.wrappers.GMCLatent` (availability masks, joint path for complete observations),
applied to the stacked observations of the vector env: one forward pass per step for the whole batch (one per
distinct availability pattern when some envs miss modalities). The ``terminal_observation`` that SB3 puts in the
info of an env whose episode ended (used to bootstrap truncated episodes) is encoded in the same pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from gmc_rl.checkpoint import check_space_matches, load_gmc
from gmc_rl.modalities import AVAILABILITY_KEY, modality_specs
from gmc_rl.model import GMCModel
from gmc_rl.wrappers.latent import encode_observations, latent_space, resolve_modalities


class VecEncodedLatent(VecEnvWrapper):
    """Base of the vector latent wrappers: every env's ``Dict`` observation replaced by a frozen encoder's latent,
    the whole batch (and SB3's ``terminal_observation`` of envs whose episode ended) in one forward pass.

    A subclass sets ``self.keys`` (the observation keys its encoder reads, the availability mask included) and
    implements :meth:`encode`; GMC (:class:`VecGMCLatent`) and MVAE (:class:`gmc_rl.mvae.VecMVAELatent`) do. Both
    check that the wrapped env's observation space is the ``Dict`` space of their encoder, so its observations are
    dicts of arrays.
    """

    keys: list[str]

    def encode(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Latents ``(B, k)`` float32 of a batch of ``Dict`` observations."""
        raise NotImplementedError

    def reset(self) -> VecEnvObs:
        """Reset every env and return the ``(n_envs, k)`` latents."""
        obs = cast(dict[str, np.ndarray], self.venv.reset())
        self.reset_infos = getattr(self.venv, "reset_infos", self.reset_infos)
        return self.encode(obs)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env; encode the observations and any terminal observations in one batch."""
        step_obs, rewards, dones, infos = self.venv.step_wait()
        obs = cast(dict[str, np.ndarray], step_obs)
        terminal = [i for i, info in enumerate(infos) if info.get("terminal_observation") is not None]
        if not terminal:
            return self.encode(obs), rewards, dones, infos
        batch: dict[str, Any] = {}
        for key in self.keys:
            if key in obs:
                extra = np.stack([np.asarray(infos[i]["terminal_observation"][key]) for i in terminal])
                extra = extra.reshape(len(terminal), *np.shape(obs[key])[1:])
                batch[key] = np.concatenate([np.asarray(obs[key]), extra])
        latents = self.encode(batch)
        for row, i in enumerate(terminal, start=self.num_envs):
            infos[i]["terminal_observation"] = latents[row]
        return latents[: self.num_envs], rewards, dones, infos


class VecGMCLatent(VecEncodedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` into GMC latents, batched.

    Args:
        venv: an SB3 ``VecEnv`` (``DummyVecEnv``, ``SubprocVecEnv``...) of multimodal envs, possibly wrapped in
            :class:`~gmc_rl.wrappers.ModalityDropout` (the availability mask is read per env).
        checkpoint_or_model: a checkpoint directory or a :class:`~gmc_rl.model.GMCModel` (frozen in place).
        modalities: restrict the encoder to these modalities (default: all).
        device: where the model runs when loading from a path.

    Example:
        >>> from stable_baselines3.common.env_util import make_vec_env  # doctest: +SKIP
        >>> venv = make_vec_env("gmc_rl/PendulumSound-v0", n_envs=8)  # doctest: +SKIP
        >>> venv = VecGMCLatent(venv, "runs/pendulum/gmc")  # doctest: +SKIP
    """

    def __init__(
        self,
        venv: VecEnv,
        checkpoint_or_model: str | os.PathLike | GMCModel,
        modalities: Sequence[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.model = load_gmc(checkpoint_or_model, device=device)
        check_space_matches(self.model, venv.observation_space)
        self.env_modalities = list(modality_specs(venv.observation_space))
        self.modalities = resolve_modalities(self.model, modalities)
        self.keys = [*self.modalities, AVAILABILITY_KEY]
        super().__init__(venv, observation_space=latent_space(self.model))

    def encode(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """GMC latents ``(B, k)`` of a batch, with the same semantics as :class:`~gmc_rl.wrappers.GMCLatent`."""
        return encode_observations(self.model, obs, self.env_modalities, self.modalities)
