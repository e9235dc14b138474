"""The MVAE baseline: a product-of-experts multimodal VAE (Wu & Goodman 2018) with GMC's encoders and latent size.

- :class:`MVAEModel` - Gaussian experts per modality, prior expert, product of experts, per-modality decoders.
- :func:`pretrain_mvae` - train it on the GMC pretraining dataset with the pretrain section's settings.
- :func:`save_mvae`, :func:`load_mvae` - safetensors + JSON checkpoints (no unpickling).
- :class:`MVAELatent`, :class:`VecMVAELatent` - the posterior mean of the present modalities as an env's observation.
"""

from agents.mvae.checkpoint import check_space_matches, load_mvae, read_mvae_config, save_mvae
from agents.mvae.model import MVAEModel, mvae_loss, product_of_experts
from agents.mvae.training import pretrain_mvae
from agents.mvae.wrappers import MVAELatent, VecMVAELatent, encode_mvae_observations

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
