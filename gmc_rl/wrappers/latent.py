"""A frozen GMC encoder as a Gymnasium observation wrapper: ``Dict`` of sensors in, latent ``Box(-1, 1, (k,))`` out.

Any multimodal env becomes a latent-state env that SB3 trains on unchanged. The encoder reads the availability
mask that :class:`~gmc_rl.wrappers.ModalityDropout` adds, and encodes only the modalities that are present: all of
them -> the joint path g(f_{1:M}(x)); a subset -> the mean of the present modalities' latents (as the GMC
reference implementation). :func:`encode_observations` is the shared batched core, also used by
:class:`~gmc_rl.wrappers.VecGMCLatent`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from gmc_rl.checkpoint import check_space_matches, load_gmc
from gmc_rl.errors import ModalityError
from gmc_rl.modalities import AVAILABILITY_KEY, check_modalities, modality_specs
from gmc_rl.model import GMCModel


def latent_space(model: GMCModel) -> spaces.Box:
    """The observation space of a latent env: ``Box(-1, 1, (k,), float32)`` (latents have norm <= 1)."""
    return spaces.Box(-1.0, 1.0, (model.latent_dim,), np.float32)


def batch_masks(obs: Mapping[str, Any], env_modalities: Sequence[str], batch: int) -> np.ndarray:
    """``(batch, M)`` boolean availability masks of a batch of observations (all present if there is no mask)."""
    if AVAILABILITY_KEY in obs:
        return np.asarray(obs[AVAILABILITY_KEY]).astype(bool).reshape(batch, len(env_modalities))
    return np.ones((batch, len(env_modalities)), dtype=bool)


def encode_observations(
    model: GMCModel,
    obs: Mapping[str, Any],
    env_modalities: Sequence[str],
    allowed: Sequence[str] | None = None,
) -> np.ndarray:
    """Encode a batch of raw ``Dict`` observations ``(B, *shape)`` into latents ``(B, k)`` (float32, in [-1, 1]).

    Rows are grouped by which modalities are present (availability mask restricted to ``allowed``); each group
    is one forward pass: the joint path when every modality of the model is present, else the mean of the present
    modalities' latents. A batch with complete observations only is therefore a single pass.

    Raises:
        ModalityError: a row in which no (allowed) modality is present.
    """
    allowed = list(model.modalities if allowed is None else allowed)
    batch = int(np.shape(obs[allowed[0]])[0])
    masks = batch_masks(obs, env_modalities, batch)
    columns = [list(env_modalities).index(name) for name in allowed]
    masks = masks[:, columns]
    # One integer code per availability pattern (bit i = modality i present), to group rows cheaply.
    codes = masks.astype(np.int64) @ (1 << np.arange(len(allowed), dtype=np.int64))
    patterns = np.unique(codes)
    out = np.empty((batch, model.latent_dim), dtype=np.float32)
    with torch.inference_mode():
        for code in patterns.tolist():
            present = [name for i, name in enumerate(allowed) if code >> i & 1]
            rows = np.flatnonzero(codes == code)
            if not present:
                restriction = "" if len(allowed) == len(model.modalities) else f" (this encoder only uses {allowed})"
                raise ModalityError(
                    f"every modality is missing in observation(s) {rows.tolist()} of the batch (availability mask "
                    f"all zero{restriction}), so there is nothing to encode; use ModalityDropout(keep_one=True) or "
                    f"a drop set that leaves at least one modality"
                )
            if len(patterns) == 1:
                inputs = {name: obs[name] for name in present}
            else:
                inputs = {name: np.asarray(obs[name])[rows] for name in present}
            complete = len(present) == len(model.modalities)
            latents = model.encode(inputs, None if complete else present)
            out[rows] = latents.detach().cpu().numpy()
    return np.clip(out, -1.0, 1.0, out=out)


def resolve_modalities(model: GMCModel, modalities: Sequence[str] | None) -> list[str]:
    """The modalities an encoder wrapper may use: all of the model's (None) or a checked subset."""
    try:
        return check_modalities(modalities, model.modalities)
    except ModalityError as exc:
        raise ModalityError(f"GMC encoder modalities: {exc}") from exc


class GMCLatent(gym.ObservationWrapper, RecordConstructorArgs):
    """Replace a multimodal ``Dict`` observation by the latent of a frozen, pretrained GMC model.

    Args:
        env: an env whose ``Dict`` observation matches the checkpoint's modalities (names, shapes, dtypes), with or
            without the availability mask of :class:`~gmc_rl.wrappers.ModalityDropout`.
        checkpoint_or_model: a checkpoint directory or a :class:`~gmc_rl.model.GMCModel` (frozen in place).
        modalities: restrict the encoder to these modalities (default: all); the others are ignored even when
            present, e.g. ``modalities=["sound"]`` gives a sound-only agent.
        device: where the model runs ("cpu", "cuda", "auto") when loading from a path.

    The observation is ``Box(-1, 1, (k,), float32)``. Weights are frozen (eval mode, no gradients) and encoding runs
    under ``torch.inference_mode``.

    Example:
        >>> import gymnasium as gym, envs  # doctest: +SKIP
        >>> from gmc_rl.wrappers import GMCLatent, ModalityDropout
        >>> env = ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"])  # doctest: +SKIP
        >>> env = GMCLatent(env, "runs/pendulum/gmc")  # doctest: +SKIP
        >>> env.observation_space  # doctest: +SKIP
        Box(-1.0, 1.0, (10,), float32)
    """

    def __init__(
        self,
        env: gym.Env,
        checkpoint_or_model: str | os.PathLike | GMCModel,
        modalities: Sequence[str] | None = None,
        device: str = "cpu",
    ) -> None:
        RecordConstructorArgs.__init__(
            self,
            checkpoint_or_model=(checkpoint_or_model if isinstance(checkpoint_or_model, GMCModel)
                                 else str(checkpoint_or_model)),
            modalities=modalities,
            device=device,
        )
        gym.ObservationWrapper.__init__(self, env)
        self.model = load_gmc(checkpoint_or_model, device=device)
        check_space_matches(self.model, env.observation_space)
        self.env_modalities = list(modality_specs(env.observation_space))
        self.modalities = resolve_modalities(self.model, modalities)
        self.observation_space = latent_space(self.model)

    def observation(self, observation: Mapping[str, Any]) -> np.ndarray:
        """Encode one observation (present modalities only) into its latent."""
        batch = {
            key: np.asarray(value)[None]
            for key, value in observation.items()
            if key == AVAILABILITY_KEY or key in self.modalities
        }
        return encode_observations(self.model, batch, self.env_modalities, self.modalities)[0]
