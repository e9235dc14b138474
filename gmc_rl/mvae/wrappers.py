"""A frozen MVAE as an observation wrapper: ``Dict`` of sensors in, PoE posterior mean ``Box(k)`` out.

Missing modalities are handled natively by the product of experts: the wrappers are those of every encoder that
takes the availability mask (:mod:`gmc_rl.wrappers.masked_latent`), given the MVAE's kind of checkpoint.
"""

from __future__ import annotations

from gmc_rl.mvae.checkpoint import MVAE_CHECKPOINT
from gmc_rl.wrappers.masked_latent import MaskedLatent, VecMaskedLatent, encode_masked_observations

encode_mvae_observations = encode_masked_observations
"""``encode_mvae_observations(model, obs) -> (B, k) float32``: PoE posterior means of a batch of raw ``Dict``
observations, masked by their availability."""


class MVAELatent(MaskedLatent):
    """Replace a multimodal ``Dict`` observation by the PoE posterior mean of a frozen MVAE.

    Example:
        >>> import gymnasium as gym, gmc_rl  # doctest: +SKIP
        >>> from gmc_rl.wrappers import ModalityDropout
        >>> env = MVAELatent(ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"]),
        ...                  "runs/pendulum/mvae")  # doctest: +SKIP
    """

    checkpoint_kind = MVAE_CHECKPOINT


class VecMVAELatent(VecMaskedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen MVAE, in one forward pass."""

    checkpoint_kind = MVAE_CHECKPOINT
