"""A frozen MUSE model as an observation wrapper: ``Dict`` of sensors in, top posterior mean ``Box(k)`` out.

Missing modalities are handled natively by the product of experts: the wrappers are those of every encoder that
takes the availability mask (:mod:`gmc_rl.wrappers.masked_latent`), given MUSE's kind of checkpoint.
"""

from __future__ import annotations

from gmc_rl.muse.checkpoint import MUSE_CHECKPOINT
from gmc_rl.wrappers.masked_latent import MaskedLatent, VecMaskedLatent, encode_masked_observations

encode_muse_observations = encode_masked_observations
"""``encode_muse_observations(model, obs) -> (B, k) float32``: top posterior means of a batch of raw ``Dict``
observations, masked by their availability."""


class MUSELatent(MaskedLatent):
    """Replace a multimodal ``Dict`` observation by the top posterior mean of a frozen MUSE model.

    Example:
        >>> import gymnasium as gym, gmc_rl  # doctest: +SKIP
        >>> from gmc_rl.wrappers import ModalityDropout
        >>> env = MUSELatent(ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), drop=["image"]),
        ...                  "runs/pendulum/muse")  # doctest: +SKIP
    """

    checkpoint_kind = MUSE_CHECKPOINT


class VecMUSELatent(VecMaskedLatent):
    """Encode the ``Dict`` observations of every env of a ``VecEnv`` with a frozen MUSE model, in one forward pass."""

    checkpoint_kind = MUSE_CHECKPOINT
