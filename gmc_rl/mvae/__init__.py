"""The MVAE baseline: a product-of-experts multimodal VAE (Wu & Goodman 2018) with GMC's encoders and latent size.

Part of the representation core next to GMC: the method ``mvae`` of :mod:`gmc_rl.methods` pretrains, loads and
wraps it with the functions below, and :meth:`MVAEModel.encode` (the posterior mean of any modality subset) makes
it an :class:`~gmc_rl.methods.Encoder`, so the transfer diagnostics apply to it as to GMC.

- :class:`MVAEModel` - Gaussian experts per modality, prior expert, product of experts, per-modality decoders.
- :func:`pretrain_mvae` - train it on the GMC pretraining dataset with the pretrain section's settings.
- :func:`save_mvae`, :func:`load_mvae` - safetensors + JSON checkpoints (no unpickling).
- :class:`MVAELatent`, :class:`VecMVAELatent` - the posterior mean of the present modalities as an env's observation.
"""

from gmc_rl.mvae.checkpoint import check_space_matches, load_mvae, read_mvae_config, save_mvae
from gmc_rl.mvae.model import MVAEModel, mvae_loss, product_of_experts
from gmc_rl.mvae.training import pretrain_mvae
from gmc_rl.mvae.wrappers import MVAELatent, VecMVAELatent, encode_mvae_observations

__all__ = [
    "MVAELatent",
    "MVAEModel",
    "VecMVAELatent",
    "check_space_matches",
    "encode_mvae_observations",
    "load_mvae",
    "mvae_loss",
    "pretrain_mvae",
    "product_of_experts",
    "read_mvae_config",
    "save_mvae",
]
