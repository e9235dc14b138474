"""The building blocks of every model over the modalities of a ``Dict`` observation space (GMC, and the MVAE and
MUSE baselines): activations, the per-modality :class:`Preprocessor`, the feature trunks and base encoders
(:func:`build_modality_encoder`), GMC's :class:`JointEncoder` and :class:`ProjectionHead`, and the checks and
parameter counts made before any layer is built.

The models themselves (:class:`gmc_rl.model.MultimodalModel`, :class:`gmc_rl.model.GMCModel`) are assembled from
these in :mod:`gmc_rl.model`, which re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmc_rl.config import MAX_MODEL_PARAMETERS, ModelConfig
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.modalities import ModalitySpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
_IMAGE_SCALE = 1.0 / 255.0
_MIN_STD = 1e-6


def activation(config: ModelConfig) -> nn.Module:
    """A new module of the activation ``config.activation`` names; every model of gmc_rl builds its activations
    here."""
    return _ACTIVATIONS[config.activation]()


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing: raw env values -> float tensors the encoders read.


class Preprocessor(nn.Module):
    """Turn a raw batch of one modality (as the env emits it) into the float tensor its encoder reads.

    Images (uint8) are scaled to [0, 1] by 1/255. Vectors are standardised per feature, ``(x - mean) / std``, with
    statistics of the training data (``normalization = {"mean": [...], "std": [...]}``, ``flat_dim`` values each;
    identity when None). The statistics are buffers, so they travel with the weights and the device.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, spec: ModalitySpec, normalization: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "image":
            if normalization is not None:
                raise ModalityError(f"modality {spec.name!r} is an image (scaled by 1/255); it takes no mean/std")
            mean = np.zeros((1,), np.float32)  # broadcast over (C, H, W)
            std = np.full((1,), 1.0 / _IMAGE_SCALE, np.float32)
        else:
            mean, std = _read_stats(spec, normalization)
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))

    def forward(self, x: Tensor) -> Tensor:
        return (x.to(self.mean.dtype) - self.mean) / self.std

    def stats_json(self) -> dict[str, list[float]] | None:
        """The mean/std as flat JSON lists (None for images, whose scaling is fixed)."""
        if self.spec.kind == "image":
            return None
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}


def _read_stats(spec: ModalitySpec, normalization: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    if normalization is None:
        return np.zeros(spec.shape, np.float32), np.ones(spec.shape, np.float32)
    if not isinstance(normalization, Mapping) or set(normalization) != {"mean", "std"}:
        raise ModalityError(
            f"normalization of modality {spec.name!r} must be a mapping with keys 'mean' and 'std', "
            f"got {normalization!r}"
        )
    arrays = []
    for key in ("mean", "std"):
        value = np.asarray(normalization[key], dtype=np.float64)
        if value.size != spec.flat_dim:
            raise ModalityError(
                f"normalization {key} of modality {spec.name!r} has {value.size} values, expected {spec.flat_dim} "
                f"(one per feature of shape {spec.shape})"
            )
        if not np.isfinite(value).all():
            raise ModalityError(f"normalization {key} of modality {spec.name!r} contains NaN or inf")
        arrays.append(value.reshape(spec.shape))
    mean, std = arrays
    if (std < 0).any():
        raise ModalityError(f"normalization std of modality {spec.name!r} has negative values")
    std = np.where(std < _MIN_STD, 1.0, std)  # constant features: centre only
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Encoders.


def _build_trunk(spec: ModalitySpec, config: ModelConfig) -> tuple[nn.Module, int]:
    """Feature extractor of one modality and the size of its (flat) output."""
    if spec.kind == "image":
        channels, height, width = spec.shape
        layers: list[nn.Module] = []
        in_channels = channels
        for out_channels in config.conv_channels:
            layers += [nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1), activation(config)]
            in_channels = out_channels
            height, width = height // 2, width // 2
            if height < 1 or width < 1:
                raise ModalityError(
                    f"image modality {spec.name!r} of shape {spec.shape} is too small for {len(config.conv_channels)} "
                    f"stride-2 conv layers; use fewer pretrain.model.conv_channels"
                )
        layers.append(nn.Flatten())
        return nn.Sequential(*layers), in_channels * height * width
    layers = [nn.Flatten()]
    size = spec.flat_dim
    for hidden in config.mlp_hidden:
        layers += [nn.Linear(size, hidden), activation(config)]
        size = hidden
    return nn.Sequential(*layers), size


def trunk_size(spec: ModalitySpec, config: ModelConfig) -> tuple[int, int]:
    """(parameters, output features) of the trunk :func:`_build_trunk` builds for ``spec``, computed without
    building it (Python integers: no overflow, no allocation)."""
    if spec.kind == "image":
        channels, height, width = spec.shape
        parameters = 0
        for out_channels in config.conv_channels:
            parameters += channels * out_channels * 16 + out_channels  # kernel 4 x 4, and the bias
            channels, height, width = out_channels, height // 2, width // 2
        return parameters, channels * height * width
    parameters, size = 0, spec.flat_dim
    for hidden in config.mlp_hidden:
        parameters, size = parameters + size * hidden + hidden, hidden
    return parameters, size


def linear_size(inputs: int, outputs: int) -> int:
    """Parameters of ``nn.Linear(inputs, outputs)``."""
    return inputs * outputs + outputs


def check_model_inputs(specs: Mapping[str, ModalitySpec], normalization: Mapping[str, dict] | None,
                       what: str) -> tuple[dict[str, ModalitySpec], dict[str, dict]]:
    """Check the modality specs and normalisation statistics a model is built from (at least 2 modalities, each
    spec named by its key, statistics only for known modalities); return them as plain dicts. Used by GMC and by
    the MVAE and MUSE baselines."""
    specs = dict(specs)
    if len(specs) < 2:
        raise ModalityError(f"{what} needs at least 2 modalities, got {list(specs)}")
    for name, spec in specs.items():
        if not isinstance(spec, ModalitySpec) or spec.name != name:
            raise ModalityError(f"specs[{name!r}] must be the ModalitySpec named {name!r}, got {spec!r}")
    normalization = dict(normalization or {})
    unknown = [name for name in normalization if name not in specs]
    if unknown:
        raise ModalityError(f"normalization given for unknown modalities {unknown}; modalities are {list(specs)}")
    return specs, normalization


def check_parameter_count(count: int, what: str) -> None:
    """Raise :class:`ConfigError` if a model of ``count`` parameters exceeds :data:`MAX_MODEL_PARAMETERS`.

    Called before any layer is built, so an architecture that cannot fit fails at once instead of in an allocation.
    """
    if count > MAX_MODEL_PARAMETERS:
        raise ConfigError(
            f"config key 'pretrain.model': the {what} for these modalities would have {count:,} parameters, more "
            f"than {MAX_MODEL_PARAMETERS:,} (MAX_MODEL_PARAMETERS); use smaller images or widths, or more "
            "conv_channels layers (each divides the features of an image by 4)"
        )


def parameter_count(specs: Mapping[str, ModalitySpec], config: ModelConfig) -> int:
    """Number of parameters of ``GMCModel(specs, config)``, computed from the shapes without building it."""
    sizes = [trunk_size(spec, config) for spec in specs.values()]
    base = sum(trunk + linear_size(features, config.common_dim) for trunk, features in sizes)
    joint = sum(trunk for trunk, _ in sizes) + linear_size(sum(features for _, features in sizes), config.common_dim)
    head = linear_size(config.common_dim, config.head_hidden) + linear_size(config.head_hidden, config.latent_dim)
    return base + joint + head


def build_modality_encoder(spec: ModalitySpec, config: ModelConfig) -> nn.Module:
    """Base encoder f_m of one modality: preprocessed batch (B, *shape) -> (B, common_dim).

    A conv stack (``config.conv_channels``, kernel 4, stride 2, padding 1) for image modalities, an MLP
    (``config.mlp_hidden``) on the flattened values for vector modalities, then a linear layer to
    ``config.common_dim``. Reused by other models (e.g. the MVAE baseline) so that they share architectures.
    """
    trunk, features = _build_trunk(spec, config)
    return nn.Sequential(trunk, nn.Linear(features, config.common_dim))


class JointEncoder(nn.Module):
    """f_{1:M}: one trunk per modality (separate from the base encoders'), concatenated, then linear to d."""

    def __init__(self, specs: Sequence[ModalitySpec], config: ModelConfig) -> None:
        super().__init__()
        trunks, sizes = zip(*(_build_trunk(spec, config) for spec in specs))
        self.trunks = nn.ModuleList(trunks)
        self.projection = nn.Linear(sum(sizes), config.common_dim)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        return self.projection(torch.cat([trunk(x) for trunk, x in zip(self.trunks, inputs)], dim=1))


class ProjectionHead(nn.Module):
    """g: d -> head_hidden (activation) -> k, L2-normalised; shared by every encoder."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(config.common_dim, config.head_hidden),
            activation(config),
            nn.Linear(config.head_hidden, config.latent_dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.net(h), dim=-1)
