"""gmc_loss against a naive per-sample implementation, its properties and its input checks."""

import math

import pytest
import torch
import torch.nn.functional as F

from gmc_rl import gmc_loss
from gmc_rl.errors import ConfigError
from gmc_rl.loss import gmc_loss_terms


def naive_gmc_loss(modality_latents, joint, tau, joints_as_negatives=False):
    """The GMC loss written out sample by sample with explicit exponentials (float64)."""
    joint = joint.double()
    batch = joint.shape[0]
    total = 0.0
    for z in modality_latents:
        z = z.double()
        if joints_as_negatives:
            losses = []
            for i in range(batch):
                numerator = math.exp(float(joint[i] @ z[i]) / tau)
                denominator = sum(math.exp(float(joint[i] @ joint[j]) / tau) for j in range(batch) if j != i)
                losses.append(-math.log(numerator / denominator))
            total += sum(losses) / batch
            continue
        latents = [z[i] for i in range(batch)] + [joint[i] for i in range(batch)]
        losses = []
        for a in range(2 * batch):
            positive = a + batch if a < batch else a - batch
            numerator = math.exp(float(latents[a] @ latents[positive]) / tau)
            denominator = sum(math.exp(float(latents[a] @ latents[b]) / tau) for b in range(2 * batch) if b != a)
            losses.append(-math.log(numerator / denominator))
        total += sum(losses) / (2 * batch)
    return total


def random_latents(num_modalities, batch, dim=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    joint = F.normalize(torch.randn(batch, dim, generator=generator), dim=1)
    mods = [F.normalize(joint + 0.7 * torch.randn(batch, dim, generator=generator), dim=1)
            for _ in range(num_modalities)]
    return mods, joint


@pytest.mark.parametrize("num_modalities", [2, 3])
@pytest.mark.parametrize("batch", [2, 5, 16])
@pytest.mark.parametrize("tau", [0.1, 0.3, 1.0])
@pytest.mark.parametrize("joints_as_negatives", [False, True])
def test_matches_naive_double_loop(num_modalities, batch, tau, joints_as_negatives):
    mods, joint = random_latents(num_modalities, batch, seed=batch * 10 + num_modalities)
    expected = naive_gmc_loss(mods, joint, tau, joints_as_negatives)
    got = gmc_loss(mods, joint, tau, joints_as_negatives=joints_as_negatives)
    assert got.dim() == 0
    assert abs(float(got) - expected) < 1e-5 * max(1.0, abs(expected))
    terms = gmc_loss_terms(mods, joint, tau, joints_as_negatives)
    assert terms.shape == (num_modalities,)
    assert torch.allclose(terms.sum(), got)


def test_minimal_when_aligned_and_larger_when_shuffled():
    _, joint = random_latents(2, 32, seed=3)
    aligned = gmc_loss([joint, joint, joint], joint, 0.3)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    shuffled = gmc_loss([joint[perm], joint, joint], joint, 0.3)
    noisy = gmc_loss([F.normalize(joint + 0.5 * torch.randn_like(joint), dim=1), joint, joint], joint, 0.3)
    assert float(aligned) < float(noisy) < float(shuffled)


def test_stable_at_small_temperature_and_differentiable():
    mods, joint = random_latents(2, 64, seed=1)
    mods = [m.clone().requires_grad_(True) for m in mods]
    loss = gmc_loss(mods, joint, temperature=1e-3)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(m.grad).all() for m in mods)


def test_bad_inputs_raise_clear_errors():
    mods, joint = random_latents(2, 8)
    with pytest.raises(ConfigError, match="temperature"):
        gmc_loss(mods, joint, 0.0)
    with pytest.raises(ConfigError, match="shape"):
        gmc_loss([mods[0][:4], mods[1]], joint, 0.3)
    with pytest.raises(ConfigError, match="at least 2"):
        gmc_loss([m[:1] for m in mods], joint[:1], 0.3)
    with pytest.raises(ConfigError, match="sequence"):
        gmc_loss(mods[0], joint, 0.3)
    with pytest.raises(ConfigError, match="at least one"):
        gmc_loss([], joint, 0.3)
