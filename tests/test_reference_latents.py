"""Projection of partial latents onto reference complete latents (GMCModel.set_reference_latents): known answers,
checkpoint round trip, pretraining writes them, and bad inputs are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import TINY_ID, config_for, sample_batch, space_m2

from gmc_rl.checkpoint import load_gmc, save_gmc
from gmc_rl.collect import collect
from gmc_rl.config import ModelConfig
from gmc_rl.errors import CheckpointError, ModalityError
from gmc_rl.model import GMCModel
from gmc_rl.pretrain import pretrain


def model_with_reference(neighbours: int = 1) -> tuple[GMCModel, torch.Tensor]:
    torch.manual_seed(0)
    model = GMCModel.from_space(space_m2(), ModelConfig())
    reference = torch.eye(10)[:6]  # six orthonormal unit vectors
    model.set_reference_latents(reference, neighbours)
    return model, reference


def test_partial_latent_becomes_its_nearest_reference_latent():
    model, reference = model_with_reference(neighbours=1)
    obs = sample_batch(space_m2(), 8)
    with torch.no_grad():
        plain = model.modality_latents(obs, ["sound"])["sound"]
        projected = model.encode(obs, ["sound"])
    expected = reference[(plain @ reference.T).argmax(dim=1)]
    assert torch.equal(projected, expected)
    # The complete path is untouched.
    model_without = GMCModel.from_space(space_m2(), ModelConfig())
    model_without.load_state_dict({k: v for k, v in model.state_dict().items() if k != "reference_latents"})
    with torch.no_grad():
        assert torch.equal(model.encode(obs), model_without.encode(obs))


def test_projection_averages_the_nearest_neighbours_and_normalises():
    model, reference = model_with_reference(neighbours=2)
    z = torch.nn.functional.normalize(torch.tensor([[3.0, 2.0, 1.0, 0, 0, 0, 0, 0, 0, 0]]), dim=-1)
    expected = torch.nn.functional.normalize(reference[0] + reference[1], dim=-1)
    assert torch.allclose(model.project(z)[0], expected)


def test_reference_latents_survive_a_checkpoint(tmp_path):
    model, _ = model_with_reference(neighbours=3)
    save_gmc(model, tmp_path / "ckpt", {"note": "test"})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["reference_latents"] == {"size": 6, "neighbours": 3}
    loaded = load_gmc(tmp_path / "ckpt")
    obs = sample_batch(space_m2(), 5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(obs, ["image"]), model.encode(obs, ["image"]))


def test_bad_reference_latents_are_refused(tmp_path):
    model = GMCModel.from_space(space_m2(), ModelConfig())
    with pytest.raises(ModalityError, match="shape"):
        model.set_reference_latents(torch.zeros(4, 3))
    with pytest.raises(ModalityError, match="neighbours"):
        model.set_reference_latents(torch.eye(10)[:4], neighbours=5)
    with pytest.raises(ModalityError, match="no reference latents"):
        model.project(torch.zeros(1, 10))
    model.set_reference_latents(torch.eye(10)[:4], 2)
    save_gmc(model, tmp_path / "ckpt", {})
    path = tmp_path / "ckpt" / "config.json"
    config = json.loads(path.read_text())
    config["reference_latents"] = {"size": 10**12, "neighbours": 2}  # refused before allocating
    path.write_text(json.dumps(config))
    with pytest.raises((CheckpointError, ModalityError), match="reference_latents"):
        load_gmc(tmp_path / "ckpt")


def test_pretraining_keeps_reference_latents_unless_zero(tmp_path):
    data = collect(config_for(TINY_ID, 120), tmp_path / "data", progress=False)
    out = pretrain(config_for(TINY_ID, 120, epochs=1, reference_latents=50, reference_neighbours=3), data,
                   tmp_path / "with", progress=False)
    model = load_gmc(out)
    assert model.reference_latents is not None and tuple(model.reference_latents.shape) == (50, model.latent_dim)
    assert model.reference_neighbours == 3
    assert torch.allclose(model.reference_latents.norm(dim=1), torch.ones(50), atol=1e-5)
    paper = load_gmc(pretrain(config_for(TINY_ID, 120, epochs=1, reference_latents=0), data, tmp_path / "paper",
                              progress=False))
    assert paper.reference_latents is None


def test_a_checkpoint_whose_reference_latents_hold_zero_rows_is_refused(tmp_path):
    """Before, all-zero reference latents loaded and projected partial observations onto nothing."""
    from safetensors.torch import load_file, save_file

    from gmc_rl.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from gmc_rl.data import file_sha256
    from gmc_rl.io import read_json, write_json_atomic

    torch.manual_seed(0)
    config = ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])
    model = GMCModel.from_space(space_m2(), config)
    model.set_reference_latents(torch.nn.functional.normalize(torch.randn(6, 4), dim=-1), 2)
    directory = save_gmc(model, tmp_path / "ckpt", {})
    assert load_gmc(directory).reference_latents.shape == (6, 4)
    weights = load_file(str(directory / WEIGHTS_FILE))
    weights["reference_latents"][2] = 0.0
    save_file(weights, str(directory / WEIGHTS_FILE))
    config = read_json(directory / CONFIG_FILE)
    config["weights_sha256"] = file_sha256(directory / WEIGHTS_FILE)  # as a crafted checkpoint would
    write_json_atomic(directory / CONFIG_FILE, config)
    with pytest.raises(CheckpointError, match="reference latents contain all-zero rows"):
        load_gmc(directory)


@pytest.mark.parametrize("latents, message", [
    (torch.cat([torch.eye(10)[:4], torch.full((1, 10), 1e30)]), r"must be unit vectors .* row 4 has norm 3.16228e\+30"),
    (torch.eye(10)[:4] * 2.0, "row 0 has norm 2"),
    (np.ma.masked_array(np.eye(10, dtype=np.float32)[:4], mask=np.zeros((4, 10), bool)), "a masked array"),
    (np.eye(10, dtype=">f4")[:4], "other byte order"),
    (np.eye(10, dtype=np.longdouble)[:4], "must be a float tensor"),
    (torch.eye(10)[:4].to_sparse(), "layout torch.sparse_coo"),
    (torch.eye(10)[:4].to("meta"), "meta device"),
    (torch.eye(10)[:4].to(torch.float8_e4m3fn), "dtype float8_e4m3fn is not accepted"),
])
def test_reference_latents_outside_their_class_are_refused(latents, message):
    """Before, a finite but huge row (1e30) made encode return an all-zero latent, and the other arrays raised raw
    numpy or torch errors (or, masked, were read as they were)."""
    model = GMCModel.from_space(space_m2(), ModelConfig())
    with pytest.raises(ModalityError, match=message):
        model.set_reference_latents(latents, 2)
    model.set_reference_latents(torch.eye(10, dtype=torch.float64)[:4].numpy(), 2)  # a float64 array is fine
    model.set_reference_latents(np.eye(10, dtype=np.float32)[:4][::-1], 2)  # so are negative strides
