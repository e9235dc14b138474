"""gmc_rl.mvae: the product-of-experts VAE baseline, its pretraining, checkpoints, latent wrappers and agents.

The checks it shares with the MUSE baseline are in :mod:`vae_baselines`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from vae_baselines import (
    SMALL_MODEL,
    SPACE,
    batch,
    check_agent,
    check_damage_is_refused,
    check_masked_encoding,
    check_pretraining_output,
    check_resume_rules,
    experiment,
    open_image_only_envs,
    retagged,
    save_and_load,
)

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import train_agent
from gmc_rl.collect import collect
from gmc_rl.config import ModelConfig, from_dict
from gmc_rl.errors import CheckpointError
from gmc_rl.modalities import modality_specs
from gmc_rl.mvae import (
    MVAEModel,
    VecMVAELatent,
    load_mvae,
    mvae_loss,
    pretrain_mvae,
    product_of_experts,
    save_mvae,
)
from gmc_rl.mvae.model import elbo_subsets, kl_to_prior, reconstruction_weights

EPOCHS = 2
"""Pretraining epochs of the module's run."""


def small_model(space=SPACE, seed=0) -> MVAEModel:
    torch.manual_seed(seed)
    return MVAEModel.from_space(space, from_dict(ModelConfig, SMALL_MODEL))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(experiment(EPOCHS), tmp_path_factory.mktemp("mvae") / "data", progress=False)


@pytest.fixture(scope="module")
def mvae_dir(dataset, tmp_path_factory):
    return pretrain_mvae(experiment(EPOCHS), dataset, tmp_path_factory.mktemp("mvae") / "mvae", progress=False)


# -- the model ------------------------------------------------------------------------------------------------


def test_product_of_experts_is_the_precision_weighted_gaussian_product():
    mus = torch.tensor([[[1.0, -2.0]], [[3.0, 0.5]]])  # (M=2, B=1, k=2)
    logvars = torch.log(torch.tensor([[[0.5, 2.0]], [[0.25, 1.0]]]))
    mean, logvar = product_of_experts(mus, logvars, torch.ones(1, 2))
    precision = 1.0 + 1 / 0.5 + 1 / 0.25  # prior + experts, first latent dimension
    assert torch.exp(-logvar[0, 0]).item() == pytest.approx(precision)
    assert mean[0, 0].item() == pytest.approx((1.0 / 0.5 + 3.0 / 0.25) / precision)
    # an absent expert leaves the product: prior x expert 1 only
    mean, logvar = product_of_experts(mus, logvars, torch.tensor([[1.0, 0.0]]))
    assert mean[0, 1].item() == pytest.approx((-2.0 / 2.0) / (1.0 + 1 / 2.0))
    assert torch.exp(-logvar[0, 1]).item() == pytest.approx(1.5)
    # no expert at all: the prior N(0, I)
    mean, logvar = product_of_experts(mus, logvars, torch.zeros(1, 2))
    assert torch.all(mean == 0) and torch.allclose(logvar, torch.zeros_like(logvar))


def test_encode_subset_equals_masked_encode_and_ignores_absent_values():
    model = small_model().eval()
    obs = batch()
    sound_only = model.encode(obs, ["sound"])
    masked = model.encode(obs, mask=np.tile([0, 1], (6, 1)))
    torch.testing.assert_close(sound_only, masked)
    assert not torch.allclose(model.encode(obs), sound_only)
    check_masked_encoding(model, obs)  # a mixed batch is encoded row by row in one pass


@pytest.mark.parametrize("shape", [(2, 20, 20), (3, 25, 31), (1, 16, 9)])
def test_decoders_reconstruct_the_input_shapes(shape):
    space = spaces.Dict({"image": spaces.Box(0, 255, shape, np.uint8),
                         "joints": spaces.Box(-1, 1, (5,), np.float32),
                         "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    model = small_model(space)
    out = model.decode(model.encode(batch(space, 3)))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {k: s.shape for k, s in space.spaces.items()}


def test_elbo_subsets_follow_the_mvae_subsampling():
    assert elbo_subsets(["image", "sound"]) == [("image", "sound"), ("image",), ("sound",)]
    three = elbo_subsets(["a", "b", "c"], torch.Generator().manual_seed(0))
    assert three[:4] == [("a", "b", "c"), ("a",), ("b",), ("c",)] and len(three) == 5 and len(three[4]) == 2


def test_reconstruction_weights_balance_modalities():
    weights = reconstruction_weights(modality_specs(SPACE))
    dims = {"image": 800, "sound": 12}
    assert weights["image"] * dims["image"] == pytest.approx(weights["sound"] * dims["sound"])
    assert kl_to_prior(torch.zeros(2, 3), torch.zeros(2, 3)).tolist() == [0.0, 0.0]


def test_loss_decreases_with_training():
    model = small_model()
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 15, size=(32, 2))
    images = np.zeros((32, 2, 20, 20), np.uint8)
    for image, (row, col) in zip(images, corners):
        image[:, row:row + 5, col:col + 5] = 255  # a white square somewhere: structure a VAE can learn
    sounds = np.repeat((corners / 15.0).astype(np.float32), 6, axis=1).reshape(32, 2, 3, 2)
    obs = {"image": images, "sound": sounds}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    first, logs = mvae_loss(model, obs, generator=generator)
    assert {"recon/image", "recon/sound", "kl", "nelbo/image+sound", "nelbo/image", "nelbo/sound"} <= set(logs)
    for _ in range(20):
        loss, _ = mvae_loss(model, obs, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last, _ = mvae_loss(model, obs, generator=torch.Generator().manual_seed(0))
    assert last.item() < 0.9 * first.item()


def test_checkpoint_round_trip_and_damage(tmp_path):
    model = small_model(seed=3)
    loaded = save_and_load(save_mvae, load_mvae, model, tmp_path / "m")
    obs = batch()
    torch.testing.assert_close(loaded.encode(obs), model.eval().encode(obs))
    check_damage_is_refused(load_mvae, tmp_path / "m", "gmc-rl/gmc-checkpoint", "is not an MVAE checkpoint")


# -- pretraining ------------------------------------------------------------------------------------------------


def test_pretraining_writes_a_loadable_checkpoint(mvae_dir, dataset):
    check_pretraining_output(mvae_dir, load_mvae, EPOCHS)


def test_pretraining_resume_rules(mvae_dir, dataset, tmp_path):
    check_resume_rules(pretrain_mvae, dataset, mvae_dir, tmp_path, EPOCHS)


# -- the latent wrapper and the agent ---------------------------------------------------------------------------


def test_vec_wrapper_encodes_present_modalities_and_terminal_observations(mvae_dir):
    model = load_mvae(mvae_dir)
    venv, raw = open_image_only_envs("mvae", model, VecMVAELatent)
    actions = np.full((2, 1), 0.7, np.float32)
    for _ in range(300):
        latents, _, dones, infos = venv.step(actions)
        obs, _, raw_dones, raw_infos = raw.step(actions)
    assert dones.all() and raw_dones.all(), "PendulumSound episodes end after 300 steps"
    for info, raw_info in zip(infos, raw_infos):
        terminal = {k: v[None] for k, v in raw_info["terminal_observation"].items()}
        np.testing.assert_allclose(info["terminal_observation"], model.encode(terminal, ["image"]).numpy()[0],
                                   rtol=1e-5, atol=1e-6)
    venv.close()
    raw.close()


def test_mvae_agent_trains_reloads_and_acts_without_a_modality(mvae_dir, tmp_path):
    check_agent(experiment(EPOCHS), "mvae", mvae_dir, tmp_path / "agent")


def test_mvae_agent_refuses_a_gmc_checkpoint_dir(tmp_path, mvae_dir):
    with pytest.raises(CheckpointError, match="not an MVAE checkpoint"):
        train_agent(experiment(EPOCHS), "mvae", 0, tmp_path / "a",
                    encoder_dir=retagged(mvae_dir, tmp_path / "wrong", "gmc-rl/gmc-checkpoint"), progress_bar=False)
