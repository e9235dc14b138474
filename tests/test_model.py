"""GMCModel over Dict spaces of 2 and 3 modalities: shapes, encode paths, preprocessing and the paper architecture."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import sample_batch, space_m2, space_m3
from torch import nn

from gmc_rl.config import ModelConfig
from gmc_rl.errors import ModalityError, SensorValueError
from gmc_rl.modalities import modality_specs
from gmc_rl.model import GMCModel, Preprocessor, build_modality_encoder

SMALL = ModelConfig(latent_dim=6, common_dim=16, head_hidden=24, conv_channels=[4, 8], mlp_hidden=[12])


@pytest.mark.parametrize("make_space", [space_m2, space_m3])
def test_latents_are_unit_norm_with_right_shapes(make_space):
    torch.manual_seed(0)
    space = make_space()
    model = GMCModel.from_space(space, SMALL)
    obs = sample_batch(space, 5)
    assert model.modalities == list(space.spaces)
    assert model.latent_dim == 6
    z = model.encode(obs)
    assert z.shape == (5, 6) and z.dtype == torch.float32
    assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)
    singles = model.modality_latents(obs)
    assert list(singles) == model.modalities
    for latent in singles.values():
        assert latent.shape == (5, 6)
        assert torch.allclose(latent.norm(dim=1), torch.ones(5), atol=1e-5)
    per_modality, joint = model.latents(obs)
    assert torch.allclose(joint, z)
    for name in model.modalities:
        assert torch.allclose(per_modality[name], singles[name])


@pytest.mark.parametrize("make_space", [space_m2, space_m3])
def test_subset_encoding_is_mean_of_single_modality_latents(make_space):
    torch.manual_seed(1)
    space = make_space()
    model = GMCModel.from_space(space, SMALL)
    obs = sample_batch(space, 4, seed=2)
    names = model.modalities
    for name in names:
        single = model.encode(obs, [name])
        assert torch.allclose(single, model.modality_latents(obs, [name])[name])
    subset = names[:2] if len(names) == 3 else names[:1]
    expected = torch.stack([model.encode(obs, [n]) for n in subset]).mean(0)
    assert torch.allclose(model.encode(obs, list(reversed(subset))), expected, atol=1e-6)
    # all modalities listed explicitly -> joint path, and absent modalities need not be in obs
    assert torch.allclose(model.encode(obs, names), model.joint_latent(obs))
    partial = {n: obs[n] for n in subset}
    assert torch.allclose(model.encode(partial, subset), expected, atol=1e-6)


def test_joint_encoder_has_its_own_trunks():
    model = GMCModel.from_space(space_m3(), SMALL)
    base = {id(p) for p in model.encoders.parameters()}
    joint = {id(p) for p in model.joint_encoder.parameters()}
    assert not base & joint
    assert len(model.joint_encoder.trunks) == 3


def test_paper_pendulum_architecture_by_default():
    space = spaces.Dict({
        "image": spaces.Box(0, 255, (2, 60, 60), np.uint8),
        "sound": spaces.Box(0.0, 1.0, (2, 3, 2), np.float32),
    })
    model = GMCModel.from_space(space, ModelConfig())
    image_encoder, sound_encoder = model.encoders
    convs = [m for m in image_encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (2, 32, (4, 4), (2, 2), (1, 1)), (32, 64, (4, 4), (2, 2), (1, 1))]
    assert any(isinstance(m, nn.SiLU) for m in image_encoder.modules())
    assert image_encoder[-1].in_features == 64 * 15 * 15 and image_encoder[-1].out_features == 64
    sound_linears = [m for m in sound_encoder.modules() if isinstance(m, nn.Linear)]
    assert [(linear.in_features, linear.out_features) for linear in sound_linears] == [(12, 50), (50, 50), (50, 64)]
    assert model.joint_encoder.projection.in_features == 64 * 15 * 15 + 50
    head = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert [(linear.in_features, linear.out_features) for linear in head] == [(64, 128), (128, 10)]
    assert model.encode(sample_batch(space, 3)).shape == (3, 10)


def test_preprocessing_uses_stats_and_image_scaling():
    specs = modality_specs(space_m2())
    mean = np.arange(12, dtype=np.float32)
    std = np.full(12, 2.0, np.float32)
    std[3] = 0.0  # constant feature: only centred
    pre = Preprocessor(specs["sound"], {"mean": mean.tolist(), "std": std.tolist()})
    x = torch.ones(2, 2, 3, 2)
    out = pre(x).reshape(2, 12)
    expected = (1.0 - mean) / np.where(std == 0, 1.0, std)
    assert np.allclose(out[0].numpy(), expected)
    image = Preprocessor(specs["image"])
    raw = torch.full((1, 2, 16, 16), 255, dtype=torch.uint8)
    assert torch.allclose(image(raw), torch.ones(1, 2, 16, 16))
    encoder = build_modality_encoder(specs["image"], SMALL)
    assert encoder(image(raw)).shape == (1, SMALL.common_dim)


def test_normalization_changes_encoding_and_is_reported():
    torch.manual_seed(0)
    space = space_m2()
    stats = {"sound": {"mean": [0.5] * 12, "std": [0.25] * 12}}
    model = GMCModel.from_space(space, SMALL, stats)
    assert model.normalization == stats
    torch.manual_seed(0)
    plain = GMCModel.from_space(space, SMALL)
    obs = sample_batch(space, 3)
    assert not torch.allclose(model.encode(obs, ["sound"]), plain.encode(obs, ["sound"]))
    assert torch.allclose(model.encode(obs, ["image"]), plain.encode(obs, ["image"]))


def test_accepts_tensors_and_float64_vectors():
    space = space_m2()
    model = GMCModel.from_space(space, SMALL)
    obs = sample_batch(space, 3)
    as_tensors = {k: torch.from_numpy(v) for k, v in obs.items()}
    as_f64 = {"image": obs["image"], "sound": obs["sound"].astype(np.float64)}
    z = model.encode(obs)
    assert torch.allclose(model.encode(as_tensors), z)
    assert torch.allclose(model.encode(as_f64), z, atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    space = space_m2()
    model = GMCModel.from_space(space, SMALL)
    obs = sample_batch(space, 3)
    with pytest.raises(ModalityError, match="unknown modality 'sond'.*Did you mean 'sound'"):
        model.encode(obs, ["sond"])
    with pytest.raises(ModalityError, match="empty"):
        model.encode(obs, [])
    with pytest.raises(ModalityError, match="string"):
        model.encode(obs, "sound")
    with pytest.raises(ModalityError, match="shape"):
        model.encode({"image": obs["image"][0], "sound": obs["sound"]})
    with pytest.raises(ModalityError, match="no modality 'sound'"):
        model.encode({"image": obs["image"]})
    with pytest.raises(ModalityError, match="uint8"):
        model.encode({"image": obs["image"].astype(np.float32), "sound": obs["sound"]})
    bad = obs["sound"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(SensorValueError, match="sound"):
        model.encode({"image": obs["image"], "sound": bad})
    with pytest.raises(ModalityError, match="at least 2"):
        GMCModel({"image": modality_specs(space)["image"]}, SMALL)
    with pytest.raises(ModalityError, match="too small"):
        GMCModel.from_space(space, ModelConfig(conv_channels=[4] * 5))
    with pytest.raises(ModalityError, match="expected 12"):
        GMCModel.from_space(space, SMALL, {"sound": {"mean": [0.0] * 5, "std": [1.0] * 5}})
    with pytest.raises(ModalityError, match="unknown modalities"):
        GMCModel.from_space(space, SMALL, {"lidar": {"mean": [0.0], "std": [1.0]}})


def test_architecture_round_trip_rebuilds_identical_model():
    torch.manual_seed(0)
    model = GMCModel.from_space(space_m3(), SMALL, {"joints": {"mean": [1.0] * 4, "std": [2.0] * 4}})
    rebuilt = GMCModel.from_architecture(model.architecture())
    rebuilt.load_state_dict(model.state_dict())
    obs = sample_batch(space_m3(), 4)
    assert torch.equal(rebuilt.encode(obs), model.encode(obs))
    assert rebuilt.architecture() == model.architecture()
