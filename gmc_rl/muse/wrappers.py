"""A frozen MUSE model as an observation wrapper: ``Dict`` of sensors in, top posterior mean ``Box(k)`` out.

Missing modalities are handled natively by the product of experts (:mod:`gmc_rl.wrappers.masked_latent`, shared
with the other product-of-experts baseline): only how the checkpoint is loaded and checked differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gmc_rl.muse.checkpoint import check_space_matches, load_muse
from gmc_rl.muse.model import MUSEModel
from gmc_rl.wrappers.masked_latent import MaskedLatent, VecMaskedLatent, encode_masked_observations


def encode_muse_observations(model: MUSEModel, obs: Mapping[str, Any]) -> np.ndarray:
    """Latents ``(B, k)`` float32 (top posterior means) of a batch of raw ``Dict`` observations, masked by their
    availability."""
    return encode_masked_observations(model, obs)


class MUSELatent(MaskedLatent):
    """Replace a multimodal ``Dict`` observation by the top posterior mean of a frozen MUSE model.

    Example:
        >>> import gymnasium as gym, gmc_rl  # doctest: +SKIP
        >>> from gmc_rl.wrappers import ModalityDropout
        >>> env = MUSELatent(ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"]),
        ...                  "runs/pendulum/muse")  # doctest: +SKIP
    """

    load_model = staticmethod(load_muse)
    check_space = staticmethod(check_space_matches)


class VecMUSELatent(VecMaskedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen MUSE model, in one forward pass."""

    load_model = staticmethod(load_muse)
    check_space = staticmethod(check_space_matches)
