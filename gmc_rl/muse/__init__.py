"""The MUSE baseline: a hierarchical multimodal VAE (Vasco et al., AAMAS 2022) with GMC's encoders and latent size.

Part of the representation core next to GMC and the MVAE: the method ``muse`` of :mod:`gmc_rl.methods` pretrains,
loads and wraps it with the functions below, and :meth:`MUSEModel.encode` (the top posterior mean of any modality
subset) makes it an :class:`~gmc_rl.methods.Encoder`, so the transfer diagnostics apply to it as to GMC.

- :class:`MUSEModel` - a VAE per modality (bottom latents), a product-of-experts top latent of size k above them.
- :class:`MUSEConfig` - bottom latent sizes (image 16, sound 8 by default) and the weights of the top-level terms:
  the config section ``pretrain.muse`` (defined in :mod:`gmc_rl.config`, re-exported here).
- :func:`muse_loss` - the objective: bottom ELBOs, top-level ELBO over the bottom latents, single-modality alignment.
- :func:`pretrain_muse` - train it on the GMC pretraining dataset with the pretrain section's settings.
- :func:`save_muse`, :func:`load_muse` - safetensors + JSON checkpoints (no unpickling).
- :class:`MUSELatent`, :class:`VecMUSELatent` - the top posterior mean of the present modalities as an env's
  observation.
"""

from gmc_rl.muse.checkpoint import check_space_matches, load_muse, read_muse_config, save_muse
from gmc_rl.muse.model import MUSEConfig, MUSEModel, muse_loss, product_of_experts, symmetric_kl
from gmc_rl.muse.training import pretrain_muse
from gmc_rl.muse.wrappers import MUSELatent, VecMUSELatent, encode_muse_observations

__all__ = [
    "MUSEConfig",
    "MUSELatent",
    "MUSEModel",
    "VecMUSELatent",
    "check_space_matches",
    "encode_muse_observations",
    "load_muse",
    "muse_loss",
    "pretrain_muse",
    "product_of_experts",
    "read_muse_config",
    "save_muse",
    "symmetric_kl",
]
