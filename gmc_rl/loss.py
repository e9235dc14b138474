"""The GMC contrastive loss (Poklukar et al., ICML 2022) for any number of modalities, and the optional terms.

For each modality m, the batch of modality latents ``z_m`` (B, k) and the batch of complete (joint) latents
``z_joint`` (B, k) are stacked into 2B latents. Every one of the 2B latents is an anchor: its positive is its
partner of the same sample (``z_m^i`` <-> ``z_joint^i``), and the denominator runs over the other 2B - 1 latents
(the positive included, the anchor itself excluded), with cosine similarity divided by the temperature. The
per-modality term is the mean over the 2B anchors; the GMC loss sums the terms over modalities.

The "joints as negatives" ablation of the reference implementation uses the B complete latents as anchors: the
numerator is the positive pair ``(z_joint^i, z_m^i)`` and the denominator runs over the other complete latents
``z_joint^j`` (j != i) only.

Everything is computed with ``logsumexp`` on a (2B, 2B) similarity matrix per modality, so it is stable for small
temperatures and has no Python loop over samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gmc_rl.errors import ConfigError


def _check_inputs(modality_latents: Sequence[Tensor], joint_latents: Tensor, temperature: float) -> None:
    if isinstance(modality_latents, Tensor):
        raise ConfigError("modality_latents must be a sequence of (B, k) tensors (one per modality), not one tensor")
    if len(modality_latents) == 0:
        raise ConfigError("gmc_loss needs at least one modality latent batch")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if joint_latents.dim() != 2:
        raise ConfigError(f"joint_latents must have shape (B, k), got {tuple(joint_latents.shape)}")
    if joint_latents.shape[0] < 2:
        raise ConfigError(f"a contrastive loss needs a batch of at least 2 samples, got {joint_latents.shape[0]}")
    for index, z in enumerate(modality_latents):
        if z.shape != joint_latents.shape:
            raise ConfigError(
                f"modality_latents[{index}] has shape {tuple(z.shape)}, joint_latents {tuple(joint_latents.shape)}"
            )


def gmc_loss_terms(
    modality_latents: Sequence[Tensor],
    joint_latents: Tensor,
    temperature: float,
    joints_as_negatives: bool = False,
) -> Tensor:
    """Per-modality GMC loss terms, a tensor of shape (M,); :func:`gmc_loss` is their sum.

    Args:
        modality_latents: M tensors (B, k) of L2-normalised modality latents, in the model's modality order.
        joint_latents: (B, k) L2-normalised complete latents of the same B samples.
        temperature: tau, similarities are cosine / tau.
        joints_as_negatives: the ablation where only complete latents are negatives.
    """
    _check_inputs(modality_latents, joint_latents, temperature)
    batch = joint_latents.shape[0]
    device = joint_latents.device
    if joints_as_negatives:
        joint_sim = joint_latents @ joint_latents.T / temperature
        eye = torch.eye(batch, dtype=torch.bool, device=device)
        log_denominator = torch.logsumexp(joint_sim.masked_fill(eye, float("-inf")), dim=1)  # (B,)
        terms = []
        for z in modality_latents:
            positive = (z * joint_latents).sum(dim=1) / temperature
            terms.append((log_denominator - positive).mean())
        return torch.stack(terms)

    eye = torch.eye(2 * batch, dtype=torch.bool, device=device)
    partner = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(device)
    terms = []
    for z in modality_latents:
        both = torch.cat([z, joint_latents], dim=0)  # (2B, k): rows 0..B-1 modality, B..2B-1 joint
        sim = both @ both.T / temperature
        positive = sim.gather(1, partner[:, None]).squeeze(1)
        log_denominator = torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1)
        terms.append((log_denominator - positive).mean())
    return torch.stack(terms)


def gmc_loss(
    modality_latents: Sequence[Tensor],
    joint_latents: Tensor,
    temperature: float,
    joints_as_negatives: bool = False,
) -> Tensor:
    """The GMC loss: sum over modalities of the NT-Xent loss between modality and complete latents.

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(8, 10), dim=1)
        >>> float(gmc_loss([z, z], z, temperature=0.3)) > 0
        True

    Returns a scalar tensor (differentiable w.r.t. the latents).
    """
    return gmc_loss_terms(modality_latents, joint_latents, temperature, joints_as_negatives).sum()


def temporal_loss(latents: Tensor, next_latents: Tensor, temperature: float) -> Tensor:
    """The optional temporal term: the GMC (NT-Xent) loss between complete latents of consecutive steps.

    ``latents[i]`` and ``next_latents[i]`` are the complete latents of the observations at steps t and t + 1 of one
    episode; each is the other's positive, and the other 2B - 2 latents of the batch are negatives, exactly as in
    one per-modality term of :func:`gmc_loss_terms`. Telling the next step apart from other samples needs what
    moves the state on (velocities), which the per-modality terms alone may leave out when some modality cannot
    show it.

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(8, 10), dim=1)
        >>> float(temporal_loss(z, z, temperature=0.3)) > 0
        True
    """
    return gmc_loss_terms([next_latents], latents, temperature)[0]


def frame_order_loss(joint_latents: Tensor, modality_latents: Sequence[Tensor], reversed_latents: Sequence[Tensor],
                     temperature: float) -> Tensor:
    """The optional frame-order term: each complete latent must pick its modality's latent over the latent of the
    same observation with its stacked frames in reverse order.

    For every modality m and sample i the two candidates are ``z_m(x_i)`` and ``z_m(reversed(x_i))``; the term is
    the cross-entropy of choosing the first, with cosine similarity to ``z_joint(x_i)`` over the temperature,
    averaged over the batch and summed over modalities. Reversing the frames keeps what the frames show (the
    positions) and reverses their motion, so the term can only be lowered by latents that encode the motion:
    the contrastive terms alone are solved by positions when positions already tell the samples of a batch apart.
    A sample that does not move gives two equal candidates and the constant log 2.

    Example:
        >>> import torch
        >>> e = torch.eye(2)
        >>> round(float(frame_order_loss(e[:1], [e[:1]], [e[1:]], temperature=1.0)), 4)  # log(e + 1) - 1
        0.3133
    """
    terms = []
    for z, z_reversed in zip(modality_latents, reversed_latents, strict=True):
        logits = torch.stack([(joint_latents * z).sum(dim=1), (joint_latents * z_reversed).sum(dim=1)], dim=1)
        logits = logits / temperature
        terms.append((torch.logsumexp(logits, dim=1) - logits[:, 0]).mean())
    return torch.stack(terms).sum()


def modality_fit_loss(modality_latents: Sequence[Tensor], joint_latents: Tensor) -> Tensor:
    """The loss of the modality-fit stage: ``1 - cos(z_m, z_joint)`` averaged over the batch, summed over modalities.

    ``joint_latents`` are the targets (computed without gradients from the frozen joint path); both sides are
    L2-normalised, so the term is half the squared distance between them and is 0 exactly when every modality
    latent equals its complete latent.

    Example:
        >>> import torch
        >>> e = torch.eye(2)
        >>> float(modality_fit_loss([e, e.flip(0)], e))  # the first is exact, the second orthogonal
        1.0
    """
    if isinstance(modality_latents, Tensor) or len(modality_latents) == 0:
        raise ConfigError("modality_fit_loss needs a sequence of (B, k) modality latent batches, one per modality")
    terms = []
    for index, z in enumerate(modality_latents):
        if z.shape != joint_latents.shape:
            raise ConfigError(
                f"modality_latents[{index}] has shape {tuple(z.shape)}, joint_latents {tuple(joint_latents.shape)}"
            )
        terms.append((1 - (z * joint_latents).sum(dim=1)).mean())
    return torch.stack(terms).sum()
