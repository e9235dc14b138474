"""MVAE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC checkpoints.

``config.json`` holds the format tag (``gmc-rl/mvae-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the latent size, the preprocessing statistics, the SHA-256 of the weights
and a ``provenance`` mapping. Writing, reading, loading and checking are those of every kind of checkpoint
(:class:`gmc_rl.checkpoint.CheckpointKind`), named here for the MVAE; weights are read with safetensors: nothing is
unpickled.
"""

from __future__ import annotations

from gmc_rl.checkpoint import CheckpointKind
from gmc_rl.mvae.model import MVAEModel

FORMAT = "gmc-rl/mvae-checkpoint"
FORMAT_VERSION = 1
MVAE_CHECKPOINT = CheckpointKind(MVAEModel, FORMAT, "MVAE checkpoint", "an MVAE checkpoint", "MVAE", "MVAE",
                                 "MVAE pretraining", version=FORMAT_VERSION, saver="save_mvae", a_model="an MVAEModel")
"""MVAE checkpoints, written by :func:`gmc_rl.mvae.pretrain_mvae`. Its methods, under this module's names (their
docstrings in :class:`~gmc_rl.checkpoint.CheckpointKind`): ``save_mvae(model, directory, provenance)``,
``read_mvae_config(path)``, ``load_mvae(path_or_model, device="cpu")`` (frozen: eval mode, no gradients) and
``check_space_matches(model, observation_space)``."""

save_mvae = MVAE_CHECKPOINT.save
read_mvae_config = MVAE_CHECKPOINT.read_config
load_mvae = MVAE_CHECKPOINT.load
check_space_matches = MVAE_CHECKPOINT.check_space
