"""A frozen MVAE as an observation wrapper: ``Dict`` of sensors in, PoE posterior mean ``Box(k)`` out.

Missing modalities are handled natively by the product of experts (:mod:`gmc_rl.wrappers.masked_latent`, shared
with the other product-of-experts baseline): only how the checkpoint is loaded and checked differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gmc_rl.mvae.checkpoint import check_space_matches, load_mvae
from gmc_rl.mvae.model import MVAEModel
from gmc_rl.wrappers.masked_latent import MaskedLatent, VecMaskedLatent, encode_masked_observations


def encode_mvae_observations(model: MVAEModel, obs: Mapping[str, Any]) -> np.ndarray:
    """Latents ``(B, k)`` float32 (PoE posterior means) of a batch of raw ``Dict`` observations, masked by their
    availability."""
    return encode_masked_observations(model, obs)


class MVAELatent(MaskedLatent):
    """Replace a multimodal ``Dict`` observation by the PoE posterior mean of a frozen MVAE.

    Example:
        >>> import gymnasium as gym, gmc_rl  # doctest: +SKIP
        >>> from gmc_rl.wrappers import ModalityDropout
        >>> env = MVAELatent(ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"]),
        ...                  "runs/pendulum/mvae")  # doctest: +SKIP
    """

    load_model = staticmethod(load_mvae)
    check_space = staticmethod(check_space_matches)


class VecMVAELatent(VecMaskedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen MVAE, in one forward pass."""

    load_model = staticmethod(load_mvae)
    check_space = staticmethod(check_space_matches)
