"""gmc_rl.mvae: the product-of-experts VAE baseline, its pretraining, checkpoints, latent wrappers and agents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.collect import collect
from gmc_rl.config import ExperimentConfig, ModelConfig, from_dict
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError
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

ENV = "gmc_rl/PendulumSound-v0"
SPACE = spaces.Dict({
    "image": spaces.Box(0, 255, (2, 20, 20), np.uint8),
    "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32),
})
SMALL_MODEL = {"latent_dim": 4, "common_dim": 16, "head_hidden": 16, "conv_channels": [4, 8], "mlp_hidden": [16]}


def small_model(space=SPACE, seed=0) -> MVAEModel:
    torch.manual_seed(seed)
    return MVAEModel.from_space(space, from_dict(ModelConfig, SMALL_MODEL))


def batch(space=SPACE, n=6, seed=0):
    space.seed(seed)
    return {name: np.stack([space[name].sample() for _ in range(n)]) for name in space}


def experiment(epochs=2) -> ExperimentConfig:
    return from_dict(ExperimentConfig, {
        "env_id": ENV,
        "collect": {"steps": 300, "n_envs": 2, "val_fraction": 0.2},
        "pretrain": {"epochs": epochs, "batch_size": 64, "checkpoint_every": 1, "device": "cpu", "model": SMALL_MODEL},
        "agent": {"algo": "sac", "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": {"learning_starts": 100, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}},
    })


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(experiment(), tmp_path_factory.mktemp("mvae") / "data", progress=False)


@pytest.fixture(scope="module")
def mvae_dir(dataset, tmp_path_factory):
    return pretrain_mvae(experiment(), dataset, tmp_path_factory.mktemp("mvae") / "mvae", progress=False)


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
    zeroed = dict(obs, image=np.zeros_like(obs["image"]))
    torch.testing.assert_close(model.encode(zeroed, mask=np.tile([0, 1], (6, 1))), sound_only)
    assert not torch.allclose(model.encode(obs), sound_only)
    # a mixed batch is encoded row by row in one pass
    mask = np.array([[1, 1], [0, 1], [1, 0], [1, 1], [0, 1], [1, 0]])
    mixed = model.encode(obs, mask=mask)
    torch.testing.assert_close(mixed[1], sound_only[1])
    torch.testing.assert_close(mixed[2], model.encode(obs, ["image"])[2])
    torch.testing.assert_close(mixed[0], model.encode(obs)[0])
    with pytest.raises(ModalityError, match="every modality missing"):
        model.encode(obs, mask=np.zeros((6, 2)))
    with pytest.raises(ModalityError, match="unknown modality 'sond'"):
        model.encode(obs, ["sond"])


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
    save_mvae(model, tmp_path / "m", {"note": "test"})
    loaded = load_mvae(tmp_path / "m")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.provenance == {"note": "test"}
    obs = batch()
    torch.testing.assert_close(loaded.encode(obs), model.eval().encode(obs))
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_mvae(tmp_path / "m")
    with pytest.raises(CheckpointError, match="missing"):
        load_mvae(tmp_path)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "config.json").write_text(json.dumps({"format": "gmc-rl/gmc-checkpoint"}))
    (tmp_path / "g" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not an MVAE checkpoint"):
        load_mvae(tmp_path / "g")


# -- pretraining ------------------------------------------------------------------------------------------------


def test_pretraining_writes_a_loadable_checkpoint(mvae_dir, dataset):
    for name in ("config.json", "model.safetensors", "history.json", "last/trainer_state.pt"):
        assert (mvae_dir / name).is_file(), name
    assert any((mvae_dir / "tb").iterdir())
    history = json.loads((mvae_dir / "history.json").read_text())
    assert [r["epoch"] for r in history["history"]] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in history["history"])
    model = load_mvae(mvae_dir)
    assert model.latent_dim == 4 and model.modalities == ["image", "sound"]
    assert model.provenance["env_id"] == ENV and model.provenance["epoch"] == history["best_epoch"]
    assert set(model.normalization) == {"sound"}, "vector modalities are standardised with the dataset statistics"


def test_pretraining_resume_rules(mvae_dir, dataset, tmp_path):
    with pytest.raises(ConfigError, match="already holds a pretraining run with these settings; pass --resume"):
        pretrain_mvae(experiment(), dataset, mvae_dir, progress=False)
    import shutil

    copy = tmp_path / "mvae"
    shutil.copytree(mvae_dir, copy)
    assert pretrain_mvae(experiment(epochs=2), dataset, copy, resume=True, progress=False) == copy
    pretrain_mvae(experiment(epochs=3), dataset, copy, resume=True, progress=False)
    history = json.loads((copy / "history.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3], "a resumed run continues its epochs"
    other = from_dict(ExperimentConfig, {"env_id": ENV, "pretrain": {"epochs": 3, "lr": 0.01, "model": SMALL_MODEL}})
    with pytest.raises(ConfigError, match="made with a different config or dataset"):
        pretrain_mvae(other, dataset, copy, resume=True, progress=False)
    wrong_env = from_dict(ExperimentConfig, {"env_id": "gmc_rl/SensorReach-v0"})
    with pytest.raises(ConfigError, match="collected on 'gmc_rl/PendulumSound-v0'"):
        pretrain_mvae(wrong_env, dataset, tmp_path / "x", progress=False)


# -- the latent wrapper and the agent ---------------------------------------------------------------------------


def test_vec_wrapper_encodes_present_modalities_and_terminal_observations(mvae_dir):
    model = load_mvae(mvae_dir)
    venv = make_method_vec_env("mvae", ENV, {}, "image", n_envs=2, seed=0, encoder=model)
    raw = make_method_vec_env("raw", ENV, {}, "image", n_envs=2, seed=0)  # the same envs, seen raw
    assert isinstance(venv, VecMVAELatent) and venv.observation_space.shape == (4,)
    latents, obs = venv.reset(), raw.reset()
    assert latents.shape == (2, 4) and latents.dtype == np.float32
    np.testing.assert_allclose(latents, model.encode(obs, ["image"]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose, latents, model.encode(obs).numpy())
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
    out = train_agent(experiment(), "mvae", 0, tmp_path / "agent", encoder_dir=mvae_dir, progress_bar=False)
    assert (out / "encoder" / "model.safetensors").is_file() and (out / "encoder" / "config.json").is_file()
    agent = load_agent(out)
    assert agent.method == "mvae" and agent.encoder.latent_dim == 4
    for condition in ("complete", "sound", "dropout:0.5"):
        venv = agent.make_vec_env(condition, n_envs=2, seed=1)
        obs = venv.reset()
        assert obs.shape == (2, 4)
        assert agent.predict(obs).shape == (2, 1)
        venv.close()


def test_mvae_agent_refuses_a_gmc_checkpoint_dir(tmp_path, mvae_dir):
    with pytest.raises(CheckpointError, match="not an MVAE checkpoint"):
        train_agent(experiment(), "mvae", 0, tmp_path / "a", encoder_dir=_as_gmc(mvae_dir, tmp_path),
                    progress_bar=False)


def _as_gmc(mvae_dir, tmp_path):
    """An MVAE checkpoint with a GMC format tag (what passing the wrong directory looks like)."""
    import shutil

    fake = tmp_path / "wrong"
    shutil.copytree(mvae_dir, fake)
    config = json.loads((fake / "config.json").read_text())
    config["format"] = "gmc-rl/gmc-checkpoint"
    (fake / "config.json").write_text(json.dumps(config))
    return fake
