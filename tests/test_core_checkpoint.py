"""save_gmc / load_gmc round trips, corruption detection and space checks."""

import argparse
import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gmc_rl import load_gmc, save_gmc
from gmc_rl.checkpoint import (
    check_space_matches,
    load_training_state,
    read_checkpoint_config,
    save_training_state,
)
from gmc_rl.config import ModelConfig
from gmc_rl.errors import CheckpointError
from gmc_rl.model import GMCModel

SMALL = ModelConfig(latent_dim=5, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])


def make_space(image_shape=(2, 8, 8), sound_shape=(2, 3, 2), extra=False):
    entries = {
        "image": spaces.Box(0, 255, image_shape, np.uint8),
        "sound": spaces.Box(-1.0, 1.0, sound_shape, np.float32),
    }
    if extra:
        entries["joints"] = spaces.Box(-1.0, 1.0, (4,), np.float32)
    return spaces.Dict(entries)


def batch(space, n=3):
    space.seed(0)
    samples = [space.sample() for _ in range(n)]
    return {k: np.stack([s[k] for s in samples]) for k in space.spaces}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GMCModel.from_space(make_space(), SMALL, {"sound": {"mean": [0.1] * 12, "std": [0.5] * 12}})


def test_round_trip_is_exact_and_frozen(model, tmp_path):
    out = save_gmc(model, tmp_path / "ckpt", {"env_id": "test/Env-v0", "seed": 3})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["modalities"] == ["image", "sound"]
    assert config["specs"][0]["shape"] == [2, 8, 8]
    assert config["latent_dim"] == 5
    assert config["model"]["conv_channels"] == [4]
    assert config["normalization"]["sound"]["std"] == [0.5] * 12
    assert config["preprocessing"]["image"] == "scale 1/255"
    assert config["provenance"] == {"env_id": "test/Env-v0", "seed": 3}
    loaded = load_gmc(out)
    assert not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    assert loaded.provenance["seed"] == 3
    obs = batch(make_space())
    with torch.no_grad():
        assert torch.equal(loaded.encode(obs), model.encode(obs))
        assert torch.equal(loaded.encode(obs, ["sound"]), model.encode(obs, ["sound"]))
    # a path to a file inside the directory works too
    assert isinstance(load_gmc(out / "config.json"), GMCModel)


def test_model_passed_in_is_returned_frozen(model):
    same = load_gmc(model)
    assert same is model and not model.training
    assert all(not p.requires_grad for p in model.parameters())


def test_missing_corrupted_and_mismatched_files(model, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: "):
        load_gmc(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing"):
        load_gmc(tmp_path / "empty")
    out = save_gmc(model, tmp_path / "ckpt", {})
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_gmc(out)
    out = save_gmc(model, tmp_path / "ckpt2", {})
    (out / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_gmc(out)
    out = save_gmc(model, tmp_path / "ckpt3", {})
    config = read_checkpoint_config(out)
    config["model"]["common_dim"] = 9  # the weights (and their hash) unchanged, the architecture edited
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_gmc(out)


def test_unserialisable_provenance_is_refused(model, tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_gmc(model, tmp_path / "ckpt", {"bad": object()})


def test_space_mismatch_names_each_difference(model, tmp_path):
    loaded = load_gmc(save_gmc(model, tmp_path / "ckpt", {}))
    check_space_matches(loaded, make_space())  # same space: no error
    with pytest.raises(CheckpointError) as info:
        check_space_matches(loaded, make_space(image_shape=(2, 9, 9), extra=True))
    message = str(info.value)
    assert "'joints'" in message and "not expected" in message
    assert "modality 'image': expected shape (2, 8, 8), got (2, 9, 9)" in message
    other = spaces.Dict({"rgb": spaces.Box(0, 255, (3, 8, 8), np.uint8),
                         "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    with pytest.raises(CheckpointError, match=r"\['image'\] are expected but missing"):
        check_space_matches(loaded, other)
    with pytest.raises(CheckpointError, match="Dict"):
        check_space_matches(loaded, spaces.Box(0, 1, (3,)))


def test_training_state_round_trip_weights_only(tmp_path, model):
    state = {"epoch": 3, "model": model.state_dict(), "rng": torch.get_rng_state(), "history": [{"loss": 1.5}]}
    save_training_state(tmp_path / "last", state)
    back = load_training_state(tmp_path / "last")
    assert back["epoch"] == 3 and back["history"] == [{"loss": 1.5}]
    assert torch.equal(back["rng"], state["rng"])
    # an arbitrary pickled object is refused
    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "last" / "trainer_state.pt")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_training_state(tmp_path / "last")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_training_state(tmp_path / "nothing")


@pytest.mark.parametrize("path", [None, 3, 2.5, True, b"gmc", ["gmc"], {"path": "gmc"}],
                         ids=["None", "int", "float", "bool", "bytes", "list", "dict"])
def test_a_checkpoint_that_is_not_a_path_is_refused_by_name(path):
    """Before, load_gmc(None) was a raw TypeError from pathlib."""
    from gmc_rl.checkpoint import load_gmc
    from gmc_rl.errors import CheckpointError
    from gmc_rl.mvae.checkpoint import load_mvae

    for load in (load_gmc, load_mvae):
        with pytest.raises(CheckpointError, match=r"must be a path to a checkpoint directory \(or a loaded model\), "
                                                  rf"got {type(path).__name__}"):
            load(path)
