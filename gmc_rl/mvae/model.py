"""The MVAE baseline (Wu & Goodman, NeurIPS 2018): a product-of-experts VAE that handles missing modalities natively.

Each modality m has a Gaussian expert q(z | x_m) = N(mu_m, var_m). Its encoder is the GMC base encoder f_m
(:func:`gmc_rl.model.build_modality_encoder`, same architecture and the same preprocessing,
:class:`gmc_rl.model.Preprocessor`) followed by a linear layer to (mu_m, log var_m). The posterior given any set S
of present modalities is the product of the experts in S and the prior expert N(0, I), which is Gaussian with

    precision = 1 + sum_{m in S} 1 / var_m,      mean = (sum_{m in S} mu_m / var_m) / precision.

So the same model encodes complete observations, one modality, or any subset, without a separate encoder per
subset. Decoders p(x_m | z) mirror the encoders: transposed convolutions for images (Bernoulli logits of the
pixels scaled to [0, 1]) and an MLP for vectors (unit-variance Gaussian on the standardised values).

The latent size is ``ModelConfig.latent_dim``, as for GMC. A policy reads the posterior mean
(:meth:`MVAEModel.encode`, the :class:`~gmc_rl.methods.Encoder` interface).

Example:
    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> from gmc_rl.config import ModelConfig
    >>> space = spaces.Dict({"image": spaces.Box(0, 255, (2, 16, 16), np.uint8),
    ...                      "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    >>> model = MVAEModel.from_space(space, ModelConfig())
    >>> obs = {name: np.stack([space[name].sample() for _ in range(4)]) for name in ("image", "sound")}
    >>> model.encode(obs).shape, model.encode(obs, ["sound"]).shape
    (torch.Size([4, 10]), torch.Size([4, 10]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gmc_rl.config import ModelConfig
from gmc_rl.errors import ModalityError
from gmc_rl.modalities import ModalitySpec, check_modalities, check_observation_batch
from gmc_rl.model import (
    MultimodalModel,
    activation,
    check_model_inputs,
    check_parameter_count,
    linear_size,
    trunk_size,
)

LOGVAR_RANGE = (-10.0, 10.0)
"""Log-variances of the experts are clamped to this range (keeps the product of experts finite)."""


def _conv_sizes(size: int, layers: int) -> list[int]:
    """Spatial sizes through ``layers`` convs of kernel 4, stride 2, padding 1 (as the GMC image trunk)."""
    sizes = [size]
    for _ in range(layers):
        sizes.append(sizes[-1] // 2)
    return sizes


class ImageDecoder(nn.Module):
    """z -> pixel logits of shape (C, H, W): linear layers, then transposed convs mirroring the encoder's convs."""

    def __init__(self, spec: ModalitySpec, config: ModelConfig) -> None:
        super().__init__()
        channels, height, width = spec.shape
        conv = list(config.conv_channels)
        heights, widths = _conv_sizes(height, len(conv)), _conv_sizes(width, len(conv))
        if heights[-1] < 1 or widths[-1] < 1:
            raise ModalityError(
                f"image modality {spec.name!r} of shape {spec.shape} is too small for {len(conv)} convs"
            )
        self.start = (conv[-1], heights[-1], widths[-1])
        self.fc = nn.Sequential(
            nn.Linear(config.latent_dim, config.common_dim), activation(config),
            nn.Linear(config.common_dim, conv[-1] * heights[-1] * widths[-1]), activation(config),
        )
        layers: list[nn.Module] = []
        outputs = [channels, *conv[:-1]]
        for index in range(len(conv) - 1, -1, -1):
            padding = (heights[index] - 2 * heights[index + 1], widths[index] - 2 * widths[index + 1])
            layers.append(nn.ConvTranspose2d(conv[index], outputs[index], kernel_size=4, stride=2, padding=1,
                                             output_padding=padding))
            if index > 0:
                layers.append(activation(config))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.fc(z).view(-1, *self.start))


class VectorDecoder(nn.Module):
    """z -> values of shape ``spec.shape``: an MLP mirroring the encoder's hidden sizes."""

    def __init__(self, spec: ModalitySpec, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(config.latent_dim, config.common_dim), activation(config)]
        size = config.common_dim
        for hidden in reversed(config.mlp_hidden):
            layers += [nn.Linear(size, hidden), activation(config)]
            size = hidden
        layers.append(nn.Linear(size, spec.flat_dim))
        self.net = nn.Sequential(*layers)
        self.shape = spec.shape

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.shape)


def parameter_count(specs: Mapping[str, ModalitySpec], config: ModelConfig) -> int:
    """Number of parameters of ``MVAEModel(specs, config)``, computed from the shapes without building it."""
    total = 0
    for spec in specs.values():
        trunk, features = trunk_size(spec, config)
        total += trunk + linear_size(features, config.common_dim)  # encoder
        total += linear_size(config.common_dim, 2 * config.latent_dim)  # expert
        total += linear_size(config.latent_dim, config.common_dim)  # first decoder layer
        if spec.kind == "image":
            conv = list(config.conv_channels)
            height, width = _conv_sizes(spec.shape[1], len(conv))[-1], _conv_sizes(spec.shape[2], len(conv))[-1]
            total += linear_size(config.common_dim, conv[-1] * height * width)
            outputs = [spec.shape[0], *conv[:-1]]
            total += sum(c * o * 16 + o for c, o in zip(conv, outputs))  # transposed convs, kernel 4 x 4
        else:
            size = config.common_dim
            for hidden in reversed(config.mlp_hidden):
                total, size = total + linear_size(size, hidden), hidden
            total += linear_size(size, spec.flat_dim)
    return total


def product_of_experts(mus: Tensor, logvars: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Combine Gaussian experts with the prior N(0, I).

    Args:
        mus, logvars: (M, B, k) means and log-variances of the M modality experts.
        mask: (B, M) with 1 where the modality is present (absent experts are left out of the product).

    Returns:
        (mean, logvar) of the product, each (B, k).
    """
    precision = torch.exp(-logvars) * mask.t().unsqueeze(-1).to(mus.dtype)
    total = 1.0 + precision.sum(dim=0)
    mean = (mus * precision).sum(dim=0) / total
    return mean, -torch.log(total)


def presence_mask(all_modalities: Sequence[str], device: torch.device, batch: int,
                  modalities: Sequence[str] | None = None, mask: Any = None) -> Tensor:
    """(B, M) float presence mask over ``all_modalities``: from a per-observation ``mask`` (checked: its shape, and
    at least one modality present per row) or, if None, from a list of names (None = all). Used by every
    product-of-experts model (MVAE, MUSE)."""
    if mask is not None:
        mask = mask if isinstance(mask, Tensor) else torch.from_numpy(np.asarray(mask))
        if tuple(mask.shape) != (batch, len(all_modalities)):
            raise ModalityError(
                f"availability mask must have shape ({batch}, {len(all_modalities)}), got {tuple(mask.shape)}"
            )
        if not bool((mask.sum(dim=1) > 0).all()):
            raise ModalityError("the availability mask marks every modality missing for some observation")
        return mask.to(device, torch.float32)
    names = check_modalities(modalities, all_modalities)
    row = torch.tensor([float(name in names) for name in all_modalities], device=device)
    return row.expand(batch, -1)


class PosteriorEncoder(MultimodalModel):
    """A multimodal model whose policy latent is the mean of a posterior over the present modalities (MVAE, MUSE).

    Subclasses define :meth:`posterior`; presence may be given by names or by a per-observation mask, and
    :meth:`encode` (the :class:`~gmc_rl.methods.Encoder` interface) returns the posterior mean.
    """

    def posterior(
        self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None, mask: Any = None
    ) -> tuple[Tensor, Tensor]:
        """Posterior (mean, logvar), each (B, k), of the present modalities."""
        raise NotImplementedError

    def presence_mask(self, batch: int, modalities: Sequence[str] | None = None, mask: Any = None) -> Tensor:
        """(B, M) float presence mask from a per-observation ``mask`` or, if None, a list of names (None = all)."""
        return presence_mask(self.modalities, self.device, batch, modalities, mask)

    def present_inputs(self, obs: Mapping[str, Any], modalities: Sequence[str] | None,
                       mask: Any) -> tuple[dict[str, Tensor], Tensor]:
        """Check ``obs`` and preprocess the modalities it must hold; returns the inputs and the (B, M) presence mask.

        With a ``mask`` every modality must be in ``obs`` (the zero-filled values of absent ones are ignored);
        otherwise only the named ``modalities`` (None = all).
        """
        names = self.modalities if mask is not None else check_modalities(modalities, self.modalities)
        batch = check_observation_batch(obs, self.specs, names)
        inputs = self.preprocess(obs, names)
        return inputs, self.presence_mask(batch, names if mask is None else None, mask)

    def encode(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None, mask: Any = None) -> Tensor:
        """The latent a policy reads: the posterior mean (B, k) of the present modalities.

        ``encode(obs, modalities)`` is the :class:`~gmc_rl.methods.Encoder` interface (the transfer diagnostics use
        it); the latent wrappers pass the per-observation availability ``mask`` instead (see :meth:`posterior`).
        """
        return self.posterior(obs, modalities, mask)[0]

    def forward(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> Tensor:
        """Same as :meth:`encode`."""
        return self.encode(obs, modalities)


class MVAEModel(PosteriorEncoder):
    """Multimodal VAE with a product-of-experts posterior over the modalities ``specs``.

    Args:
        specs: modality name -> :class:`~gmc_rl.modalities.ModalitySpec` (2 or more), canonical order.
        config: the architecture (the GMC :class:`~gmc_rl.config.ModelConfig`: same encoders, latent size).
        normalization: vector modality name -> ``{"mean": [...], "std": [...]}`` of the training data.

    Attributes:
        specs, modalities, latent_dim, config, normalization (as :class:`gmc_rl.model.GMCModel`).
    """

    def __init__(
        self,
        specs: Mapping[str, ModalitySpec],
        config: ModelConfig,
        normalization: Mapping[str, dict] | None = None,
    ) -> None:
        specs, normalization = check_model_inputs(specs, normalization, "the MVAE")
        check_parameter_count(parameter_count(specs, config), "MVAE")
        super().__init__(specs, config, normalization)
        self.experts = nn.ModuleList([
            nn.Sequential(activation(config), nn.Linear(config.common_dim, 2 * config.latent_dim))
            for _ in specs
        ])
        self.decoders = nn.ModuleList([
            ImageDecoder(spec, config) if spec.kind == "image" else VectorDecoder(spec, config)
            for spec in specs.values()
        ])

    # -- forward paths ------------------------------------------------------------------------------------------

    def expert_params(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(mu, logvar), each (M, B, k), of every modality's expert from preprocessed inputs (all modalities)."""
        mus, logvars = [], []
        for index, name in enumerate(self.modalities):
            mu, logvar = self.experts[index](self.encoders[index](inputs[name])).chunk(2, dim=-1)
            mus.append(mu)
            logvars.append(logvar.clamp(*LOGVAR_RANGE))
        return torch.stack(mus), torch.stack(logvars)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        """Decoder outputs for every modality: pixel logits for images, standardised values for vectors."""
        return {name: decoder(z) for name, decoder in zip(self.modalities, self.decoders)}

    def posterior(
        self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None, mask: Any = None
    ) -> tuple[Tensor, Tensor]:
        """PoE posterior (mean, logvar), each (B, k), from the present modalities.

        Presence is given either by ``modalities`` (names, the same for the whole batch; None = all; keys of
        absent modalities may be missing from ``obs``) or by a per-observation ``mask`` (B, M) of 0/1 in canonical
        modality order, as the availability mask of :class:`~gmc_rl.wrappers.ModalityDropout` (``obs`` then holds
        every modality; the zero-filled values of absent ones are ignored).
        """
        inputs, present = self.present_inputs(obs, modalities, mask)
        batch = present.shape[0]
        for name in self.modalities:  # not in obs: its expert is masked out, so any input will do
            if name not in inputs:
                inputs[name] = torch.zeros((batch, *self.specs[name].shape), device=self.device)
        mus, logvars = self.expert_params(inputs)
        return product_of_experts(mus, logvars, present)


def reconstruction_weights(specs: Mapping[str, ModalitySpec]) -> dict[str, float]:
    """Weight of each modality's reconstruction term, so that every modality counts equally in total.

    A 2x60x60 image has 7200 values and a 2x3x2 sound 12; unweighted, the image would dominate the ELBO and the
    latent would ignore the sound (Wu & Goodman weight the modalities' likelihoods for the same reason). Each
    modality's summed log-likelihood is scaled by ``D / (M * D_m)`` (D = total number of values), so the weights
    of a single modality environment would be 1.
    """
    total = sum(spec.flat_dim for spec in specs.values())
    return {name: total / (len(specs) * spec.flat_dim) for name, spec in specs.items()}


def reconstruction_nll(spec: ModalitySpec, output: Tensor, target: Tensor) -> Tensor:
    """Per-sample negative log-likelihood (up to a constant) of a preprocessed target: (B,)."""
    if spec.kind == "image":
        loss = F.binary_cross_entropy_with_logits(output, target.clamp(0.0, 1.0), reduction="none")
    else:
        loss = 0.5 * (output - target) ** 2
    return loss.flatten(1).sum(dim=1)


def kl_to_prior(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample: (B,)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def elbo_subsets(
    modalities: Sequence[str], generator: torch.Generator | None = None, random_subsets: int = 1
) -> list[tuple[str, ...]]:
    """The modality subsets whose ELBOs make up the MVAE objective (Wu & Goodman's sub-sampled training).

    The complete set, every single modality, and for more than two modalities ``random_subsets`` random subsets of
    intermediate size drawn per batch.
    """
    names = list(modalities)
    subsets = [tuple(names)] + [(name,) for name in names]
    if len(names) > 2:
        for _ in range(random_subsets):
            size = int(torch.randint(2, len(names), (1,), generator=generator))
            chosen = torch.randperm(len(names), generator=generator)[:size].tolist()
            subsets.append(tuple(name for i, name in enumerate(names) if i in chosen))
    return subsets


def sample_gaussian(mean: Tensor, logvar: Tensor, generator: torch.Generator | None) -> Tensor:
    """A reparameterised sample ``mean + sigma * noise``, the noise drawn from ``generator`` (on its device) when
    given. Used by every VAE objective (MVAE, MUSE)."""
    device = generator.device if generator is not None else mean.device
    noise = torch.randn(mean.shape, generator=generator, device=device).to(mean.device)
    return mean + noise * torch.exp(0.5 * logvar)


def mvae_loss(
    model: MVAEModel,
    obs: Mapping[str, Any],
    beta: float = 1.0,
    generator: torch.Generator | None = None,
    sample: bool = True,
) -> tuple[Tensor, dict[str, float]]:
    """The MVAE objective on a batch: sum over :func:`elbo_subsets` of the negative ELBO, batch mean.

    Each subset's term reconstructs the modalities of that subset from z ~ q(z | subset) and adds ``beta`` times
    the KL to the prior (``beta`` is annealed from 0 during training, as in the MVAE paper).

    Returns the loss and a dict of logged values: ``recon/<modality>`` (unweighted negative log-likelihood) and
    ``kl`` of the complete-observation term, and ``nelbo/<subset>`` (weighted negative ELBO, beta = 1) per subset.
    """
    inputs = model.preprocess(obs)
    batch = next(iter(inputs.values())).shape[0]
    mus, logvars = model.expert_params(inputs)
    weights = reconstruction_weights(model.specs)
    total = torch.zeros((), device=model.device)
    logs: dict[str, float] = {}
    for subset in elbo_subsets(model.modalities, generator):
        mean, logvar = product_of_experts(mus, logvars, model.presence_mask(batch, subset))
        z = sample_gaussian(mean, logvar, generator) if sample else mean
        recon = torch.zeros(batch, device=model.device)
        complete = len(subset) == len(model.modalities)
        for name in subset:
            index = model.modalities.index(name)
            nll = reconstruction_nll(model.specs[name], model.decoders[index](z), inputs[name])
            recon = recon + weights[name] * nll
            if complete:
                logs[f"recon/{name}"] = float(nll.detach().mean())
        kl = kl_to_prior(mean, logvar)
        total = total + (recon + beta * kl).mean()
        if complete:
            logs["kl"] = float(kl.detach().mean())
        logs[f"nelbo/{'+'.join(subset)}"] = float((recon + kl).detach().mean())
    return total, logs
