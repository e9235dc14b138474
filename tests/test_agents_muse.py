"""gmc_rl.muse: the hierarchical MUSE baseline, its pretraining, checkpoints, latent wrappers, agents and pipeline.

The checks it shares with the MVAE baseline are in :mod:`vae_baselines`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import check_results, parse, tiny_config
from vae_baselines import (
    ENV,
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
import gmc_rl.config
import gmc_rl.muse.model
from gmc_rl.agents import train_agent
from gmc_rl.collect import collect
from gmc_rl.config import (
    ExperimentConfig,
    ModelConfig,
    PretrainConfig,
    from_dict,
    load_config,
    pretrain_identity,
    to_dict,
)
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

EPOCHS = 3
"""Pretraining epochs of the module's run."""


def small_model(space=SPACE, seed=0, muse: MUSEConfig | None = None) -> MUSEModel:
    torch.manual_seed(seed)
    return MUSEModel.from_space(space, from_dict(ModelConfig, SMALL_MODEL), muse=muse)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return collect(experiment(EPOCHS), tmp_path_factory.mktemp("muse") / "data", progress=False)


@pytest.fixture(scope="module")
def muse_dir(dataset, tmp_path_factory):
    return pretrain_muse(experiment(EPOCHS), dataset, tmp_path_factory.mktemp("muse") / "muse", progress=False)


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
    with pytest.raises(ConfigError, match="'pretrain.muse.bottom_latent_dims.image': must be a positive integer"):
        MUSEConfig(bottom_latent_dims={"image": 0})
    with pytest.raises(ConfigError, match="'pretrain.muse.alignment_weight'"):
        MUSEConfig(alignment_weight=-1.0)
    with pytest.raises(ConfigError, match=r"'pretrain.muse.top_kl_warmup': must be a fraction in \[0, 1\]"):
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
    check_masked_encoding(model, obs)


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


# -- the config section pretrain.muse ----------------------------------------------------------------------------


def test_pretrain_muse_section_from_yaml_and_flags(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("pretrain:\n  epochs: 3\n  muse:\n    bottom_latent_dims: {image: 32, sound: 4}\n"
                    "    alignment_weight: 2\n")
    config = load_config(path)
    assert config.pretrain.muse == MUSEConfig(bottom_latent_dims={"image": 32, "sound": 4}, alignment_weight=2.0)
    assert isinstance(config.pretrain.muse.alignment_weight, float) and config.pretrain.epochs == 3
    assert gmc_rl.muse.MUSEConfig is gmc_rl.muse.model.MUSEConfig is gmc_rl.config.MUSEConfig  # one class
    shipped = Path(__file__).resolve().parents[1] / "experiments" / "pendulum_sound.yaml"
    assert load_config(shipped).pretrain.muse == MUSEConfig()  # its pretrain.muse writes out the defaults
    flags = parse("pipeline", ["--config", str(path), "--pretrain.muse.top_kl_warmup", "0.1",
                               "--pretrain.muse.bottom_latent_dims", '{"sound": 2}'])
    assert flags.pretrain.muse == MUSEConfig(bottom_latent_dims={"sound": 2}, alignment_weight=2.0, top_kl_warmup=0.1)
    assert flags.pretrain.epochs == 3  # the rest of the file is kept
    assert parse("pipeline", ["--pretrain.muse.alignment_weight", "0"]).pretrain.muse.alignment_weight == 0.0


@pytest.mark.parametrize("muse, message", [
    ({"alignment_wieght": 1}, "unknown config key 'pretrain.muse.alignment_wieght'.*Did you mean 'alignment_weight'"),
    ({"bottom_latent_dims": {"image": 0}}, "'pretrain.muse.bottom_latent_dims.image': must be a positive integer"),
    ({"bottom_latent_dims": {"image": 2.5}}, "'pretrain.muse.bottom_latent_dims.image': must be a positive integer"),
    ({"bottom_latent_dims": {"sound": True}}, "'pretrain.muse.bottom_latent_dims.sound': must be a positive integer"),
    ({"bottom_latent_dims": {"image": 5000}}, "'pretrain.muse.bottom_latent_dims.image'.*MAX_LAYER_WIDTH"),
    ({"bottom_latent_dims": [16, 8]}, "'pretrain.muse.bottom_latent_dims': must be a mapping"),
    ({"top_reconstruction_weight": -1}, "'pretrain.muse.top_reconstruction_weight': must be a finite number >= 0"),
    ({"alignment_weight": float("nan")}, "'pretrain.muse.alignment_weight': must be a finite number"),
    ({"top_kl_warmup": 1.5}, r"'pretrain.muse.top_kl_warmup': must be a fraction in \[0, 1\]"),
    ({"top_kl_warmup": "0.4"}, "'pretrain.muse.top_kl_warmup': must be a number"),
    ("defaults", "config section 'pretrain.muse' must be a mapping"),
])
def test_bad_muse_settings_are_refused_naming_the_key(muse, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ExperimentConfig, {"pretrain": {"muse": muse}})


def test_muse_settings_change_only_the_muse_identity():
    default = PretrainConfig()
    # the section before 'muse' and the optional loss terms (all left out of the identity at their defaults)
    left_out = ("muse", "temporal_weight", "frame_order_weight", "modality_fit_epochs")
    before = {key: value for key, value in to_dict(default).items() if key not in left_out}
    changed = PretrainConfig(muse={"alignment_weight": 2.0, "bottom_latent_dims": {"image": 4}})
    assert pretrain_identity(default, "gmc") == pretrain_identity(changed, "gmc") == \
        {**before, "modality_fit_epochs": default.modality_fit_epochs}  # GMC's own key, on by default
    assert pretrain_identity(default, "mvae") == pretrain_identity(changed, "mvae") == before
    assert pretrain_identity(default, "muse") == before  # MUSE runs made with the defaults keep their identity
    assert pretrain_identity(PretrainConfig(muse={"alignment_weight": 1}), "muse") == before  # defaults, written out
    assert pretrain_identity(changed, "muse") == {**before, "muse": to_dict(changed.muse)}


def test_muse_settings_change_only_the_muse_stages(tmp_path):
    from gmc_rl.pipeline import _plan

    def stage_hashes(config):
        return {task.stage.name: task.stage.hash for task in _plan(config, tmp_path, ["complete", "image"])[0]}

    base = stage_hashes(tiny_config(ENV, ["gmc", "mvae", "muse", "state"]))
    changed = stage_hashes(tiny_config(ENV, ["gmc", "mvae", "muse", "state"], pretrain={"muse": {"top_kl_warmup": 0}}))
    assert sorted(name for name in base if base[name] != changed[name]) == \
        ["evaluate_muse-seed0", "muse", "train_muse-seed0"]


def test_pretrain_muse_reads_the_config_section(dataset, tmp_path):
    settings = {"bottom_latent_dims": {"image": 5}, "alignment_weight": 2.0, "top_kl_warmup": 0.0}
    data = to_dict(experiment(1))
    data["pretrain"]["muse"] = settings
    config = from_dict(ExperimentConfig, data)
    out = pretrain_muse(config, dataset, tmp_path / "muse", progress=False)
    model = load_muse(out)
    assert model.bottom_dims == {"image": 5, "sound": 8} and model.muse.alignment_weight == 2.0
    assert json.loads((out / "config.json").read_text())["muse"]["alignment_weight"] == 2.0
    history = json.loads((out / "history.json").read_text())["history"]
    assert history[0]["top_kl_weight"] == 1.0  # no warm-up
    assert json.loads((out / "run.json").read_text())["identity"]["pretrain"]["muse"] == to_dict(config.pretrain.muse)
    # an explicit muse replaces the section: the same settings given so are the same run (returned as it is) ...
    assert pretrain_muse(experiment(1), dataset, out, resume=True, progress=False,
                         muse=MUSEConfig(**settings)) == out
    # ... and the section's defaults are another one
    with pytest.raises(ConfigError, match="different config or dataset"):
        pretrain_muse(experiment(1), dataset, out, resume=True, progress=False)


# -- checkpoints ------------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_damage(tmp_path):
    model = small_model(seed=3, muse=MUSEConfig(bottom_latent_dims={"image": 5}, alignment_weight=2.0))
    loaded = save_and_load(save_muse, load_muse, model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    assert loaded.bottom_dims == {"image": 5, "sound": 8} and loaded.muse.alignment_weight == 2.0
    obs = batch()
    torch.testing.assert_close(loaded.encode(obs, ["sound"]), model.eval().encode(obs, ["sound"]))
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "gmc-rl/muse-checkpoint" and len(config["weights_sha256"]) == 64
    assert config["muse"]["bottom_latent_dims"] == {"image": 5, "sound": 8}
    check_damage_is_refused(load_muse, tmp_path / "m", "gmc-rl/mvae-checkpoint", "is not a MUSE checkpoint")
    del config["muse"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'muse'"):
        load_muse(tmp_path / "m")


# -- pretraining ------------------------------------------------------------------------------------------------


def test_pretraining_learns_and_writes_a_loadable_checkpoint(muse_dir):
    model, history = check_pretraining_output(muse_dir, load_muse, EPOCHS)
    records = history["history"]
    assert records[2]["val_loss"] < records[1]["val_loss"] < records[0]["val_loss"], "the objective decreases"
    assert records[2]["train_loss"] < records[0]["train_loss"]
    assert model.bottom_dims["sound"] == 8 and history["best_epoch"] == 3


def test_pretraining_resume_rules(muse_dir, dataset, tmp_path):
    copy = check_resume_rules(pretrain_muse, dataset, muse_dir, tmp_path, EPOCHS)
    other = MUSEConfig(alignment_weight=0.5)
    with pytest.raises(ConfigError, match=r"different config or dataset \(pretrain\.muse: None -> "):
        pretrain_muse(experiment(EPOCHS + 2), dataset, copy, resume=True, progress=False, muse=other)
    # a run.json that does not record the settings the weights were trained with (e.g. a run made with
    # pretrain_muse(..., muse=...) before pretrain.muse existed): the resumable state still refuses the resume
    run_file = copy / "run.json"
    run = json.loads(run_file.read_text())
    run["identity"]["pretrain"]["muse"] = to_dict(other)
    run_file.write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="other MUSE settings"):  # also where a resume would train further
        pretrain_muse(experiment(EPOCHS + 2), dataset, copy, resume=True, progress=False, muse=other)


# -- the latent wrappers, the agent and the pipeline ------------------------------------------------------------


def test_registry_entry():
    method = get_method("muse")
    assert method.needs_encoder and method.expose_mask and method.encoder_flag == "--muse"
    assert (method.encoder_stage.name, method.encoder_stage.directory) == ("muse", "muse")


def test_latent_wrappers_encode_present_modalities(muse_dir):
    model = load_muse(muse_dir)
    venv, raw = open_image_only_envs("muse", model, VecMUSELatent)
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
    check_agent(experiment(EPOCHS), "muse", muse_dir, tmp_path / "agent")
    with pytest.raises(CheckpointError, match="not a MUSE checkpoint"):
        train_agent(experiment(EPOCHS), "muse", 0, tmp_path / "wrong",
                    encoder_dir=retagged(muse_dir, tmp_path / "mvae-tagged", "gmc-rl/mvae-checkpoint"),
                    progress_bar=False)


def test_tiny_pipeline_with_muse(tmp_path):
    config = tiny_config(ENV, ["muse"], pretrain={"muse": {"bottom_latent_dims": {"sound": 3}, "alignment_weight": 2}})
    run_dir = tmp_path / "run"
    results = run_pipeline(config, run_dir, progress=False, log=lambda message: None)
    check_results(results, ["muse"], ["complete", "image", "sound", "dropout:0.5"])
    assert (run_dir / "muse" / "model.safetensors").is_file()
    model = load_muse(run_dir / "muse")  # trained with the config's pretrain.muse
    assert model.bottom_dims == {"image": 16, "sound": 3} and model.muse.alignment_weight == 2.0
    assert (run_dir / "agents" / "muse-seed0" / "agent.zip").is_file()
    record = json.loads((run_dir / "eval" / "runs" / "muse-seed0.json").read_text())
    assert set(record["diagnostics"]) == {"image", "sound"}
    assert all(math.isfinite(v) for gaps in record["diagnostics"].values() for v in gaps.values())
