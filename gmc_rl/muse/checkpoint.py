"""MUSE checkpoints: ``config.json`` + ``model.safetensors``, the same self-contained layout as GMC and MVAE ones.

``config.json`` holds the format tag (``gmc-rl/muse-checkpoint``), the modality specs, the architecture
(:class:`~gmc_rl.config.ModelConfig`), the top latent size, the preprocessing statistics, the MUSE settings (bottom
latent sizes, loss weights: :class:`~gmc_rl.muse.model.MUSEConfig`), the SHA-256 of the weights and a
``provenance`` mapping. Writing, reading, loading and checking are those of every kind of checkpoint
(:class:`gmc_rl.checkpoint.CheckpointKind`), named here for MUSE; weights are read with safetensors, so nothing is
unpickled.
"""

from __future__ import annotations

from gmc_rl.checkpoint import CheckpointKind
from gmc_rl.muse.model import MUSEModel

FORMAT = "gmc-rl/muse-checkpoint"
FORMAT_VERSION = 1
MUSE_CHECKPOINT = CheckpointKind(MUSEModel, FORMAT, "MUSE checkpoint", "a MUSE checkpoint", "MUSE", "MUSE model",
                                 "MUSE pretraining", extra_fields={"muse": dict}, version=FORMAT_VERSION,
                                 saver="save_muse", a_model="a MUSEModel")
"""MUSE checkpoints, written by :func:`gmc_rl.muse.pretrain_muse`; their config also holds the ``muse`` settings.
Its methods, under this module's names (their docstrings in :class:`~gmc_rl.checkpoint.CheckpointKind`):
``save_muse(model, directory, provenance)``, ``read_muse_config(path)`` (with the ``muse`` section),
``load_muse(path_or_model, device="cpu")`` (frozen: eval mode, no gradients) and
``check_space_matches(model, observation_space)``."""

save_muse = MUSE_CHECKPOINT.save
read_muse_config = MUSE_CHECKPOINT.read_config
load_muse = MUSE_CHECKPOINT.load
check_space_matches = MUSE_CHECKPOINT.check_space
