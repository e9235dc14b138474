"""gmc_rl.muse: the hierarchical MUSE baseline, its pretraining, checkpoints, latent wrappers, agents and pipeline."""

from __future__ import annotations

import json
import math
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from test_pipeline import check_results, tiny_config

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.collect import collect
from gmc_rl.config import ExperimentConfig, ModelConfig, from_dict
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError
from gmc_rl.methods import get_method
from gmc_rl.muse import (
    MUSEConfig,
    MUSELatent,
    MUSEModel,
    VecMUSELatent,
    load_muse,
    muse_loss,
    pretrain_muse,
    product_of_experts,
    save_muse,
    symmetric_kl,
)
from gmc_rl.muse.model import top_kl_weight
from gmc_rl.pipeline import run_pipeline
from gmc_rl.wrappers import ModalityDropout

ENV = "gmc_rl/PendulumSound-v0"
SPACE = spaces.Dict({
    "image": spaces.Box(0, 255, (2, 20, 20), np.uint8),
    "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32),
})
SMALL_MODEL = {"latent_dim": 4, "common_dim": 16, "head_hidden": 16, "conv_channels": [4, 8], "mlp_hidden": [16]}


def small_model(space=SPACE, seed=0, muse: MUSEConfig | None = None) -> MUSEModel:
    torch.manual_seed(seed)
    return MUSEModel.from_space(space, from_dict(ModelConfig, SMALL_MODEL), muse=muse)


def batch(space=SPACE, n=6, seed=0):
    space.seed(seed)
    return {name: np.stack([space[name].sample() for _ in range(n)]) for name in space}


def experiment(epochs=3) -> ExperimentConfig:
    return from_dict(ExperimentConfig, {
        "env_id": ENV,
        "collect": {"steps": 300, "n_envs": 2, "val_fraction": 0.2},
        "pretrain": {"epochs": epochs, "batch_size": 64, "checkpoint_every": 1, "device": "cpu", "model": SMALL_MODEL},
        "agent": {"algo": "sac", "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": {"learning_starts": 100, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}},
    })


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(experiment(), tmp_path_factory.mktemp("muse") / "data", progress=False)


@pytest.fixture(scope="module")
def muse_dir(dataset, tmp_path_factory):
    return pretrain_muse(experiment(), dataset, tmp_path_factory.mktemp("muse") / "muse", progress=False)


# -- the model ------------------------------------------------------------------------------------------------


def test_product_of_experts_known_answers():
    mu, logvar = torch.tensor([[[1.5, -2.0]]]), torch.log(torch.tensor([[[0.5, 4.0]]]))  # (E=1, B=1, k=2)
    mean, out_logvar = product_of_experts(mu, logvar)
    torch.testing.assert_close(mean, mu[0])  # a single expert is its own product
    torch.testing.assert_close(out_logvar, logvar[0])
    # the prior N(0, 1) and an expert N(3, 0.25): precision 1 + 4 = 5, mean (0 * 1 + 3 * 4) / 5
    mus = torch.tensor([[[0.0]], [[3.0]], [[-7.0]]])
    logvars = torch.log(torch.tensor([[[1.0]], [[0.25]], [[0.1]]]))
    mean, out_logvar = product_of_experts(mus, logvars, torch.tensor([[1.0, 1.0, 0.0]]))  # third expert absent
    assert mean.item() == pytest.approx(12.0 / 5.0)
    assert torch.exp(-out_logvar).item() == pytest.approx(5.0)


def test_model_product_includes_the_prior_expert():
    """The top posterior of one modality is N(0, I) x that modality's expert, as in MUSE."""
    model = small_model().eval()
    bottoms = {"image": torch.randn(3, 16), "sound": torch.randn(3, 8)}
    mu, logvar = model.top_expert("sound", bottoms["sound"])
    mean, out_logvar = model.top_posterior(bottoms, torch.tensor([[0.0, 1.0]]).expand(3, -1))
    precision = 1.0 + torch.exp(-logvar)
    torch.testing.assert_close(torch.exp(-out_logvar), precision)
    torch.testing.assert_close(mean, mu * torch.exp(-logvar) / precision)


def test_symmetric_kl_known_answer():
    # N(0, 1) vs N(1, 1): each KL is 1/2 per dimension; N(0, 1) vs N(0, 2): (ln 2 + 1/2 - 1)/2 + (-ln 2 + 2 - 1)/2
    zeros = torch.zeros(1, 3)
    assert symmetric_kl(zeros, zeros, torch.ones(1, 3), zeros).item() == pytest.approx(3.0)
    value = symmetric_kl(zeros[:, :1], zeros[:, :1], zeros[:, :1], torch.full((1, 1), math.log(2.0))).item()
    assert value == pytest.approx(0.25)
    assert symmetric_kl(torch.ones(2, 4), zeros[:, :1].expand(2, 4), torch.ones(2, 4), zeros[:, :1].expand(2, 4)
                        ).tolist() == [0.0, 0.0]


def test_latent_sizes_are_config_driven():
    model = small_model()
    assert model.bottom_dims == {"image": 16, "sound": 8}  # the authors' pendulum sizes by name
    assert model.latent_dim == 4 == model.encode(batch()).shape[1]  # top latent = pretrain.model.latent_dim
    three = spaces.Dict({"camera": spaces.Box(0, 255, (1, 16, 16), np.uint8),
                         "joints": spaces.Box(-1, 1, (5,), np.float32), "sound": spaces.Box(-1, 1, (4,), np.float32)})
    assert small_model(three).bottom_dims == {"camera": 16, "joints": 8, "sound": 8}  # others by kind
    custom = small_model(three, muse=MUSEConfig(bottom_latent_dims={"joints": 3}))
    assert custom.bottom_dims == {"camera": 16, "joints": 3, "sound": 8}
    assert custom.encode(batch(three, 2), ["joints"]).shape == (2, 4)
    with pytest.raises(ModalityError, match=r"unknown modalities \['lidar'\]"):
        small_model(muse=MUSEConfig(bottom_latent_dims={"lidar": 4}))
    with pytest.raises(ConfigError, match="positive integer"):
        MUSEConfig(bottom_latent_dims={"image": 0})
    with pytest.raises(ConfigError, match="alignment_weight"):
        MUSEConfig(alignment_weight=-1.0)
    with pytest.raises(ConfigError, match=r"top_kl_warmup must be a fraction in \[0, 1\]"):
        MUSEConfig(top_kl_warmup=1.5)
    assert [top_kl_weight(e, 10, 0.4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert top_kl_weight(0, 3, 0.0) == 1.0


def test_encode_with_a_missing_modality():
    model = small_model().eval()
    obs = batch()
    complete = model.encode(obs)
    for present in (["sound"], ["image"]):
        alone = model.encode({name: obs[name] for name in present}, present)  # absent keys may be missing
        assert alone.shape == (6, 4) and torch.isfinite(alone).all()
        assert not torch.allclose(alone, complete)
    sound_only = model.encode(obs, ["sound"])
    zeroed = dict(obs, image=np.zeros_like(obs["image"]))
    torch.testing.assert_close(model.encode(zeroed, mask=np.tile([0, 1], (6, 1))), sound_only)
    mask = np.array([[1, 1], [0, 1], [1, 0], [1, 1], [0, 1], [1, 0]])  # mixed availability, one pass
    mixed = model.encode(obs, mask=mask)
    torch.testing.assert_close(mixed[1], sound_only[1])
    torch.testing.assert_close(mixed[2], model.encode(obs, ["image"])[2])
    torch.testing.assert_close(mixed[0], complete[0])
    with pytest.raises(ModalityError, match="every modality missing"):
        model.encode(obs, mask=np.zeros((6, 2)))
    with pytest.raises(ModalityError, match="unknown modality 'sond'"):
        model.encode(obs, ["sond"])


def test_loss_terms_and_where_their_gradients_go():
    obs = batch()
    weighted, unweighted = small_model(), small_model(muse=MUSEConfig(top_reconstruction_weight=0.0,
                                                                         alignment_weight=0.0))
    loss, logs = muse_loss(weighted, obs, generator=torch.Generator().manual_seed(0))
    assert {"recon/image", "kl/image", "recon/sound", "kl/sound", "top_recon/image", "top_recon/sound", "top_kl",
            "align/image", "align/sound"} == set(logs)
    assert all(math.isfinite(v) for v in logs.values()) and torch.isfinite(loss)
    loss.backward()
    muse_loss(unweighted, obs, top_kl=0.0, generator=torch.Generator().manual_seed(0))[0].backward()
    # the top level reads the bottom latents but does not train the bottom VAEs (MUSE's stop-gradient) ...
    for name in ("encoders", "bottom_heads", "decoders"):
        for mine, other in zip(getattr(weighted, name).parameters(), getattr(unweighted, name).parameters()):
            torch.testing.assert_close(mine.grad, other.grad)
    # ... while the top-level terms train the top experts and decoders
    assert all(p.grad.abs().sum() > 0 for p in weighted.top_experts.parameters())
    assert all(p.grad.abs().sum() > 0 for p in weighted.top_decoders.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in unweighted.top_decoders.parameters())


# -- checkpoints ------------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_damage(tmp_path):
    model = small_model(seed=3, muse=MUSEConfig(bottom_latent_dims={"image": 5}, alignment_weight=2.0))
    save_muse(model, tmp_path / "m", {"note": "test"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_muse(tmp_path / "m")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.provenance == {"note": "test"}
    assert loaded.bottom_dims == {"image": 5, "sound": 8} and loaded.muse.alignment_weight == 2.0
    obs = batch()
    torch.testing.assert_close(loaded.encode(obs, ["sound"]), model.eval().encode(obs, ["sound"]))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "gmc-rl/muse-checkpoint" and len(config["weights_sha256"]) == 64
    assert config["muse"]["bottom_latent_dims"] == {"image": 5, "sound": 8}
    weights = tmp_path / "m" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_muse(tmp_path / "m")
    weights.write_bytes(good)
    with pytest.raises(CheckpointError, match="missing"):
        load_muse(tmp_path)
    del config["muse"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'muse'"):
        load_muse(tmp_path / "m")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "config.json").write_text(json.dumps({"format": "gmc-rl/mvae-checkpoint"}))
    (tmp_path / "g" / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is not a MUSE checkpoint"):
        load_muse(tmp_path / "g")


# -- pretraining ------------------------------------------------------------------------------------------------


def test_pretraining_learns_and_writes_a_loadable_checkpoint(muse_dir):
    for name in ("config.json", "model.safetensors", "history.json", "last/trainer_state.pt"):
        assert (muse_dir / name).is_file(), name
    assert any((muse_dir / "tb").iterdir())
    history = json.loads((muse_dir / "history.json").read_text())
    records = history["history"]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in records)
    assert records[2]["val_loss"] < records[1]["val_loss"] < records[0]["val_loss"], "the objective decreases"
    assert records[2]["train_loss"] < records[0]["train_loss"]
    model = load_muse(muse_dir)
    assert model.latent_dim == 4 and model.modalities == ["image", "sound"] and model.bottom_dims["sound"] == 8
    assert model.provenance["env_id"] == ENV and model.provenance["epoch"] == history["best_epoch"] == 3
    assert set(model.normalization) == {"sound"}, "vector modalities are standardised with the dataset statistics"


def test_pretraining_resume_rules(muse_dir, dataset, tmp_path):
    with pytest.raises(ConfigError, match="already holds a pretraining run with these settings; pass --resume"):
        pretrain_muse(experiment(), dataset, muse_dir, progress=False)
    copy = tmp_path / "muse"
    shutil.copytree(muse_dir, copy)
    before = (copy / "model.safetensors").read_bytes()
    assert pretrain_muse(experiment(), dataset, copy, resume=True, progress=False) == copy
    assert (copy / "model.safetensors").read_bytes() == before, "a finished run is returned as it is"
    with pytest.raises(ConfigError, match="other MUSE settings"):
        pretrain_muse(experiment(epochs=4), dataset, copy, resume=True, progress=False,
                      muse=MUSEConfig(alignment_weight=0.5))
    pretrain_muse(experiment(epochs=4), dataset, copy, resume=True, progress=False)
    history = json.loads((copy / "history.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4], "a resumed run continues its epochs"
    other = from_dict(ExperimentConfig, {"env_id": ENV, "pretrain": {"epochs": 4, "lr": 0.01, "model": SMALL_MODEL}})
    with pytest.raises(ConfigError, match="made with a different config or dataset"):
        pretrain_muse(other, dataset, copy, resume=True, progress=False)
    wrong_env = from_dict(ExperimentConfig, {"env_id": "gmc_rl/SensorReach-v0"})
    with pytest.raises(ConfigError, match="collected on 'gmc_rl/PendulumSound-v0'"):
        pretrain_muse(wrong_env, dataset, tmp_path / "x", progress=False)


# -- the latent wrappers, the agent and the pipeline ------------------------------------------------------------


def test_registry_entry():
    method = get_method("muse")
    assert method.needs_encoder and method.expose_mask and method.encoder_flag == "--muse"
    assert (method.encoder_stage.name, method.encoder_stage.directory) == ("muse", "muse")


def test_latent_wrappers_encode_present_modalities(muse_dir):
    model = load_muse(muse_dir)
    venv = make_method_vec_env("muse", ENV, {}, "image", n_envs=2, seed=0, encoder=model)
    raw = make_method_vec_env("raw", ENV, {}, "image", n_envs=2, seed=0)  # the same envs, seen raw
    assert isinstance(venv, VecMUSELatent) and venv.observation_space.shape == (4,)
    latents, obs = venv.reset(), raw.reset()
    assert latents.shape == (2, 4) and latents.dtype == np.float32
    np.testing.assert_allclose(latents, model.encode(obs, ["image"]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose, latents, model.encode(obs).numpy())
    venv.close()
    raw.close()

    env = MUSELatent(ModalityDropout(gym.make(ENV), drop=["image"]), model)
    plain = ModalityDropout(gym.make(ENV), drop=["image"])
    latent, _ = env.reset(seed=3)
    seen, _ = plain.reset(seed=3)
    assert env.observation_space.shape == (4,) and latent.shape == (4,)
    expected = model.encode({"sound": seen["sound"][None]}, ["sound"]).numpy()[0]
    np.testing.assert_allclose(latent, expected, rtol=1e-5, atol=1e-6)
    env.close()
    plain.close()


def test_muse_agent_trains_reloads_and_acts_without_a_modality(muse_dir, tmp_path):
    out = train_agent(experiment(), "muse", 0, tmp_path / "agent", encoder_dir=muse_dir, progress_bar=False)
    assert (out / "encoder" / "model.safetensors").is_file() and (out / "encoder" / "config.json").is_file()
    agent = load_agent(out)
    assert agent.method == "muse" and agent.encoder.latent_dim == 4
    for condition in ("complete", "sound", "dropout:0.5"):
        venv = agent.make_vec_env(condition, n_envs=2, seed=1)
        obs = venv.reset()
        assert obs.shape == (2, 4) and np.isfinite(obs).all()
        assert agent.predict(obs).shape == (2, 1)
        venv.close()
    with pytest.raises(CheckpointError, match="not a MUSE checkpoint"):
        train_agent(experiment(), "muse", 0, tmp_path / "wrong", encoder_dir=_as_mvae(muse_dir, tmp_path),
                    progress_bar=False)


def _as_mvae(muse_dir, tmp_path):
    """A MUSE checkpoint with an MVAE format tag (what passing the wrong directory looks like)."""
    fake = tmp_path / "mvae-tagged"
    shutil.copytree(muse_dir, fake)
    config = json.loads((fake / "config.json").read_text())
    config["format"] = "gmc-rl/mvae-checkpoint"
    (fake / "config.json").write_text(json.dumps(config))
    return fake


def test_tiny_pipeline_with_muse(tmp_path):
    config = tiny_config(ENV, ["muse"])
    run_dir = tmp_path / "run"
    results = run_pipeline(config, run_dir, progress=False, log=lambda message: None)
    check_results(results, ["muse"], ["complete", "image", "sound", "dropout:0.5"])
    assert (run_dir / "muse" / "model.safetensors").is_file()
    assert (run_dir / "agents" / "muse-seed0" / "agent.zip").is_file()
    record = json.loads((run_dir / "eval" / "runs" / "muse-seed0.json").read_text())
    assert set(record["diagnostics"]) == {"image", "sound"}
    assert all(math.isfinite(v) for gaps in record["diagnostics"].values() for v in gaps.values())
