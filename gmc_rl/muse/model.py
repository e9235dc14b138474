"""The MUSE baseline (Vasco et al., AAMAS 2022): a hierarchical multimodal VAE whose top level survives missing sensors.

MUSE ("How to Sense the World: Leveraging Hierarchy in Multimodal Perception for Robust Reinforcement Learning
Agents") has two levels of latent variables:

- **Bottom level**: one VAE per modality m, with its own latent z_m of size d_m (the authors' pendulum uses 16 for
  the image and 8 for the sound). Its encoder is the GMC base encoder f_m (:func:`gmc_rl.model.build_modality_encoder`,
  same architecture and preprocessing as GMC and the MVAE) followed by a linear layer to (mu_m, log var_m); its
  decoder mirrors it (the MVAE's decoders, :mod:`gmc_rl.mvae.model`, fed d_m values instead of k).
- **Top level**: one multimodal latent z_T of size k = ``ModelConfig.latent_dim`` (10 for the paper's pendulum), the
  size of the controller's input. Each modality has a top-level expert q(z_T | z_m), an MLP from z_m to
  (mu, log var); the posterior given the present modalities S is the product of the prior expert N(0, I) and the
  experts in S (:func:`product_of_experts`); absent modalities are simply left out of the product. Top-level
  decoders p(z_m | z_T) map z_T back to every bottom latent.

A policy reads the top posterior mean given the bottom posterior means of the present modalities
(:meth:`MUSEModel.encode`, the :class:`~gmc_rl.methods.Encoder` interface).

The objective (:func:`muse_loss`, per sample, averaged over the batch) is the one of the authors' public code:

    sum_m [ w_m * NLL(x_m | z_m) + KL(q(z_m | x_m) || N(0, I)) ]                    bottom ELBOs
  + gamma * sum_m || g_m(z_T) - sg(z_m) ||^2,   z_T ~ q(z_T | z_1..M)                top-level reconstruction
  + beta_T * KL(q(z_T | z_1..M) || N(0, I))                                          top-level prior term
  + alpha * mean_m SKL( q(z_T | z_m), q(z_T | z_1..M) )                             single-modality terms

where z_m ~ q(z_m | x_m) are the bottom samples, sg() stops their gradient (the top level learns from the bottom
latents but does not shape them, as in MUSE), g_m is the top-level decoder of modality m and SKL is the symmetric
KL divergence (KL(p || q) + KL(q || p)). The last line is MUSE's sub-sampled top-level term: each single-modality
top posterior q(z_T | z_m) (prior expert x the expert of m alone) is pulled onto the complete one, so that one
sensor alone lands where the controller, trained on complete observations, expects its input.

Deviations from the paper and its code (all documented in docs/agents.md):

- encoders and decoders are GMC's (conv/MLP capacity from ``config.pretrain.model``; no batch normalisation in the
  sound VAE), the top-level MLPs have two hidden layers of ``head_hidden`` units (the authors: three of 256);
- reconstruction likelihoods are those of the MVAE baseline (Bernoulli pixels, unit Gaussian on standardised vectors)
  with its modality weights w_m (:func:`gmc_rl.mvae.model.reconstruction_weights`: every modality counts equally)
  instead of the authors' hand-set lambda_image = 1, lambda_sound = 100;
- gamma = 10 and alpha = 1 as in the authors' pendulum config (:class:`~gmc_rl.config.MUSEConfig`, the config
  section ``pretrain.muse``); beta_T rises linearly to 1 over the first 40 % of the epochs (the authors: 200 of 500
  epochs); the bottom KL weights are 1 from the start (as theirs).

Example:
    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> from gmc_rl.config import ModelConfig
    >>> space = spaces.Dict({"image": spaces.Box(0, 255, (2, 16, 16), np.uint8),
    ...                      "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    >>> model = MUSEModel.from_space(space, ModelConfig())
    >>> model.bottom_dims
    {'image': 16, 'sound': 8}
    >>> obs = {name: np.stack([space[name].sample() for _ in range(4)]) for name in ("image", "sound")}
    >>> model.encode(obs).shape, model.encode(obs, ["sound"]).shape
    (torch.Size([4, 10]), torch.Size([4, 10]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from gymnasium import spaces
from torch import Tensor, nn

from gmc_rl.config import ModelConfig, MUSEConfig, from_dict  # MUSEConfig is also importable from here
from gmc_rl.errors import ModalityError
from gmc_rl.modalities import ModalitySpec, modality_specs
from gmc_rl.model import (
    activation,
    check_model_inputs,
    check_parameter_count,
    linear_size,
    read_architecture,
)
from gmc_rl.mvae.model import (
    LOGVAR_RANGE,
    ImageDecoder,
    PosteriorEncoder,
    VectorDecoder,
    kl_to_prior,
    reconstruction_nll,
    reconstruction_weights,
    sample_gaussian,
)
from gmc_rl.mvae.model import parameter_count as mvae_parameter_count

PAPER_BOTTOM_DIMS: dict[str, int] = {"image": 16, "sound": 8}
"""Bottom latent sizes of the authors' pendulum model, used for modalities of these names."""
DEFAULT_BOTTOM_DIMS: dict[str, int] = {"image": 16, "vector": 8}
"""Bottom latent size of any other modality, by kind (the paper's image and sound sizes)."""


def resolve_bottom_dims(specs: Mapping[str, ModalitySpec], muse: MUSEConfig) -> dict[str, int]:
    """The bottom latent size of every modality of ``specs``: given, else the paper's by name, else by kind.

    Raises:
        ModalityError: ``muse.bottom_latent_dims`` names a modality that is not in ``specs``.
    """
    unknown = [name for name in muse.bottom_latent_dims if name not in specs]
    if unknown:
        raise ModalityError(f"config key 'pretrain.muse.bottom_latent_dims' names unknown modalities {unknown}; "
                            f"modalities are {list(specs)}")
    return {
        name: muse.bottom_latent_dims.get(name, PAPER_BOTTOM_DIMS.get(name, DEFAULT_BOTTOM_DIMS[spec.kind]))
        for name, spec in specs.items()
    }


def _mlp(inputs: int, hidden: int, outputs: int, config: ModelConfig) -> nn.Sequential:
    """inputs -> hidden -> hidden -> outputs, with the config's activation between the layers."""
    return nn.Sequential(nn.Linear(inputs, hidden), activation(config), nn.Linear(hidden, hidden),
                         activation(config), nn.Linear(hidden, outputs))


def _mlp_size(inputs: int, hidden: int, outputs: int) -> int:
    return linear_size(inputs, hidden) + linear_size(hidden, hidden) + linear_size(hidden, outputs)


def parameter_count(specs: Mapping[str, ModalitySpec], config: ModelConfig, bottom_dims: Mapping[str, int]) -> int:
    """Number of parameters of a :class:`MUSEModel`, computed from the shapes without building it.

    A bottom VAE has the parameters of a one-modality MVAE with latent size d_m; the top level adds an expert
    (d_m -> 2k) and a decoder (k -> d_m) per modality.
    """
    total = 0
    for name, spec in specs.items():
        size = bottom_dims[name]
        total += mvae_parameter_count({name: spec}, dataclasses.replace(config, latent_dim=size))
        total += _mlp_size(size, config.head_hidden, 2 * config.latent_dim)
        total += _mlp_size(config.latent_dim, config.head_hidden, size)
    return total


def product_of_experts(mus: Tensor, logvars: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The product of Gaussian experts: precision-weighted mean, summed precisions.

    Unlike :func:`gmc_rl.mvae.product_of_experts` no prior is implied: the caller includes the prior expert
    N(0, I) among the experts (as MUSE does), so the product of a single expert is that expert.

    Args:
        mus, logvars: (E, B, k) means and log-variances of E experts.
        mask: (B, E) with 1 where the expert takes part (None: all do). Every row needs at least one expert.

    Returns:
        (mean, logvar) of the product, each (B, k).
    """
    precision = torch.exp(-logvars)
    if mask is not None:
        precision = precision * mask.t().unsqueeze(-1).to(mus.dtype)
    total = precision.sum(dim=0)
    return (mus * precision).sum(dim=0) / total, -torch.log(total)


def symmetric_kl(mean_p: Tensor, logvar_p: Tensor, mean_q: Tensor, logvar_q: Tensor) -> Tensor:
    """KL(p || q) + KL(q || p) of two diagonal Gaussians, per sample: (B,)."""
    var_p, var_q = logvar_p.exp(), logvar_q.exp()
    squared = (mean_p - mean_q).pow(2)
    return 0.5 * ((var_p + squared) / var_q + (var_q + squared) / var_p - 2.0).sum(dim=1)


class MUSEModel(PosteriorEncoder):
    """Hierarchical multimodal VAE: a VAE per modality below, a product-of-experts latent of size k above.

    Args:
        specs: modality name -> :class:`~gmc_rl.modalities.ModalitySpec` (2 or more), canonical order.
        config: the architecture (the GMC :class:`~gmc_rl.config.ModelConfig`: same encoders; k = latent_dim).
        normalization: vector modality name -> ``{"mean": [...], "std": [...]}`` of the training data.
        muse: bottom latent sizes and loss weights (default :class:`MUSEConfig`: the authors' pendulum values).

    Attributes:
        specs, modalities, latent_dim (k, the top latent a policy reads), config, normalization (as
        :class:`gmc_rl.model.GMCModel`), muse (with the resolved bottom sizes), bottom_dims (name -> d_m).
    """

    def __init__(
        self,
        specs: Mapping[str, ModalitySpec],
        config: ModelConfig,
        normalization: Mapping[str, dict] | None = None,
        muse: MUSEConfig | None = None,
    ) -> None:
        specs, normalization = check_model_inputs(specs, normalization, "MUSE")
        muse = muse if muse is not None else MUSEConfig()
        bottom_dims = resolve_bottom_dims(specs, muse)
        check_parameter_count(parameter_count(specs, config, bottom_dims), "MUSE model")
        super().__init__(specs, config, normalization)
        self.bottom_dims = bottom_dims
        self.muse = dataclasses.replace(muse, bottom_latent_dims=dict(bottom_dims))
        k, hidden = config.latent_dim, config.head_hidden
        self.bottom_heads = nn.ModuleList([
            nn.Sequential(activation(config), nn.Linear(config.common_dim, 2 * self.bottom_dims[name]))
            for name in specs
        ])
        self.decoders = nn.ModuleList([
            (ImageDecoder if spec.kind == "image" else VectorDecoder)(
                spec, dataclasses.replace(config, latent_dim=self.bottom_dims[name]))
            for name, spec in specs.items()
        ])
        self.top_experts = nn.ModuleList([_mlp(self.bottom_dims[name], hidden, 2 * k, config) for name in specs])
        self.top_decoders = nn.ModuleList([_mlp(k, hidden, self.bottom_dims[name], config) for name in specs])

    @classmethod
    def from_space(
        cls,
        observation_space: spaces.Space,
        config: ModelConfig,
        normalization: Mapping[str, dict] | None = None,
        muse: MUSEConfig | None = None,
    ) -> MUSEModel:
        """A model for the modalities of a ``Dict`` observation space."""
        return cls(modality_specs(observation_space), config, normalization, muse)

    # -- serialisation ------------------------------------------------------------------------------------------

    def architecture(self) -> dict[str, Any]:
        """JSON description from which :meth:`from_architecture` rebuilds an identical (untrained) model.

        ``muse`` records the resolved bottom sizes, so a checkpoint does not depend on the defaults of this module.
        """
        return {**super().architecture(), "muse": dataclasses.asdict(self.muse)}

    @classmethod
    def from_architecture(cls, data: Mapping[str, Any]) -> MUSEModel:
        """Inverse of :meth:`architecture`."""
        specs, config, normalization = read_architecture(data)
        return cls(specs, config, normalization, from_dict(MUSEConfig, data["muse"], "muse"))

    # -- forward paths ------------------------------------------------------------------------------------------

    def bottom_posterior(self, name: str, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar), each (B, d_m), of q(z_m | x_m) from the preprocessed batch of modality ``name``."""
        index = self.modalities.index(name)
        mu, logvar = self.bottom_heads[index](self.encoders[index](inputs)).chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def top_expert(self, name: str, bottom: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar), each (B, k), of the top-level expert q(z_T | z_m) of modality ``name``."""
        mu, logvar = self.top_experts[self.modalities.index(name)](bottom).chunk(2, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def top_expert_params(self, bottoms: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(mus, logvars), each (1 + M, B, k): the prior expert N(0, I) first, then every modality's top expert.

        Args:
            bottoms: name -> (B, d_m) bottom latent of every modality.
        """
        experts = [self.top_expert(name, bottoms[name]) for name in self.modalities]
        prior = torch.zeros_like(experts[0][0])
        return torch.stack([prior, *(mu for mu, _ in experts)]), torch.stack([prior, *(lv for _, lv in experts)])

    @staticmethod
    def with_prior(mask: Tensor) -> Tensor:
        """(B, 1 + M): a presence mask (B, M) with the always-present prior expert in front."""
        return torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)

    def top_posterior(self, bottoms: Mapping[str, Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        """q(z_T | present z_m): the product of the prior N(0, I) and the experts of the present modalities.

        Args:
            bottoms: name -> (B, d_m) bottom latent of every modality (values of absent ones are ignored).
            mask: (B, M) with 1 where the modality is present, in canonical order.
        """
        mus, logvars = self.top_expert_params(bottoms)
        return product_of_experts(mus, logvars, self.with_prior(mask))

    def decode(self, bottoms: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Bottom decoder outputs: pixel logits for images, standardised values for vectors."""
        return {name: self.decoders[i](bottoms[name]) for i, name in enumerate(self.modalities)}

    def posterior(
        self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None, mask: Any = None
    ) -> tuple[Tensor, Tensor]:
        """Top posterior (mean, logvar), each (B, k), given the bottom posterior means of the present modalities.

        Presence is given either by ``modalities`` (names, the same for the whole batch; None = all; keys of absent
        modalities may be missing from ``obs``, and their encoders are not run) or by a per-observation ``mask``
        (B, M) of 0/1 in canonical modality order, as the availability mask of
        :class:`~gmc_rl.wrappers.ModalityDropout` (``obs`` then holds every modality; the zero-filled values of
        absent ones are ignored).
        """
        inputs, present = self.present_inputs(obs, modalities, mask)
        batch = present.shape[0]
        bottoms = {}
        for name in self.modalities:
            if name in inputs:
                bottoms[name] = self.bottom_posterior(name, inputs[name])[0]
            else:  # absent for the whole batch: its expert is masked out, so any value will do
                bottoms[name] = torch.zeros((batch, self.bottom_dims[name]), device=self.device)
        return self.top_posterior(bottoms, present)


def top_kl_weight(epoch: int, epochs: int, warmup: float) -> float:
    """beta_T of epoch ``epoch`` (0-based): linear rise to 1 over the first ``warmup`` fraction of ``epochs``.

    With 10 epochs and warmup 0.4: 0.25, 0.5, 0.75, 1, 1, ... (the authors' WarmUp, over 200 of 500 epochs).
    """
    span = round(warmup * epochs)
    return 1.0 if span < 1 else min(1.0, (epoch + 1) / span)


def muse_loss(
    model: MUSEModel,
    obs: Mapping[str, Any],
    top_kl: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The MUSE objective on a complete batch (module docstring), batch mean; ``top_kl`` is beta_T.

    Returns the loss and a dict of logged batch means: ``recon/<m>`` (unweighted negative log-likelihood) and
    ``kl/<m>`` of each bottom VAE, ``top_recon/<m>`` (squared error of z_m from z_T), ``top_kl`` and ``align/<m>``
    (symmetric KL of the single-modality top posterior to the complete one).
    """
    inputs = model.preprocess(obs)
    batch = next(iter(inputs.values())).shape[0]
    weights = reconstruction_weights(model.specs)
    muse = model.muse
    total = torch.zeros(batch, device=model.device)
    logs: dict[str, float] = {}
    samples: dict[str, Tensor] = {}
    for index, name in enumerate(model.modalities):  # bottom ELBOs
        mean, logvar = model.bottom_posterior(name, inputs[name])
        z = sample_gaussian(mean, logvar, generator)
        nll = reconstruction_nll(model.specs[name], model.decoders[index](z), inputs[name])
        kl = kl_to_prior(mean, logvar)
        total = total + weights[name] * nll + kl
        samples[name] = z.detach()  # the top level reads the bottom latents but does not train the bottom VAEs
        logs[f"recon/{name}"], logs[f"kl/{name}"] = float(nll.detach().mean()), float(kl.detach().mean())

    complete = torch.ones(batch, len(model.modalities), device=model.device)
    mus, logvars = model.top_expert_params(samples)
    top_mean, top_logvar = product_of_experts(mus, logvars, model.with_prior(complete))
    z_top = sample_gaussian(top_mean, top_logvar, generator)
    for index, name in enumerate(model.modalities):  # top-level reconstruction of every bottom latent
        error = (model.top_decoders[index](z_top) - samples[name]).pow(2).sum(dim=1)
        total = total + muse.top_reconstruction_weight * error
        logs[f"top_recon/{name}"] = float(error.detach().mean())
    kl_top = kl_to_prior(top_mean, top_logvar)
    total = total + top_kl * kl_top
    logs["top_kl"] = float(kl_top.detach().mean())

    alignment = torch.zeros(batch, device=model.device)
    for index, name in enumerate(model.modalities):  # single-modality top posteriors pulled onto the complete one
        alone = torch.zeros_like(complete)
        alone[:, index] = 1.0
        mean, logvar = product_of_experts(mus, logvars, model.with_prior(alone))
        skl = symmetric_kl(mean, logvar, top_mean, top_logvar)
        alignment = alignment + skl / len(model.modalities)
        logs[f"align/{name}"] = float(skl.detach().mean())
    total = total + muse.alignment_weight * alignment
    return total.mean(), logs
