"""The optional temporal and frame-order terms of GMC pretraining: values, pairs, config and effect on a run."""

import json
import math

import numpy as np
import pytest
import torch

from gmc_rl import load_gmc
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig, pretrain_identity
from gmc_rl.errors import ConfigError
from gmc_rl.loss import frame_order_loss, temporal_loss
from gmc_rl.modalities import ModalitySpec
from gmc_rl.pretrain import check_frame_stacks, pretrain, successor_mask

SMALL = ModelConfig(latent_dim=8, common_dim=16, head_hidden=32, conv_channels=[4, 8], mlp_hidden=[16])


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_temporal_loss_matches_a_hand_computed_value(temperature):
    # two orthogonal latents whose next steps are themselves: for every anchor the positive has cosine 1 and the
    # two other latents cosine 0, so each of the 4 anchors scores log(2 + e^(1/tau)) - 1/tau
    z = torch.eye(2)
    expected = math.log(2 + math.exp(1 / temperature)) - 1 / temperature
    assert float(temporal_loss(z, z.clone(), temperature)) == pytest.approx(expected, rel=1e-6)


def test_temporal_loss_is_lower_when_next_steps_match_their_own_step():
    torch.manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(16, 6), dim=1)
    matched = temporal_loss(z, z, 0.3)
    shuffled = temporal_loss(z, z[torch.randperm(16)], 0.3)
    assert float(matched) < float(shuffled) - 1.0


def test_successor_mask_pairs_only_steps_of_one_episode():
    split = {
        "terminated": np.array([False, False, True, False, False, False]),
        "truncated": np.array([False, False, False, False, True, False]),
    }
    assert successor_mask(split).tolist() == [True, True, False, True, False, False]


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_frame_order_loss_matches_a_hand_computed_value(temperature):
    # sample 0: its modality latent equals the complete one, the reversed one is orthogonal:
    #   log(e^(1/tau) + e^0) - 1/tau; sample 1 does not move (both candidates equal): log 2. Two modalities, same.
    e = torch.eye(2)
    joint = torch.stack([e[0], e[1]])
    forward = [joint.clone(), joint.clone()]
    backward = [torch.stack([e[1], e[1]]), torch.stack([e[1], e[1]])]
    per_modality = (math.log(math.exp(1 / temperature) + 1) - 1 / temperature + math.log(2)) / 2
    assert float(frame_order_loss(joint, forward, backward, temperature)) == pytest.approx(2 * per_modality, rel=1e-6)


def test_frame_order_needs_a_stack_axis_in_every_modality():
    check_frame_stacks({"image": ModalitySpec("image", (2, 8, 8), "uint8", "image", 0, 255),
                        "sound": ModalitySpec("sound", (2, 3), "float32", "vector", 0, 1)})
    with pytest.raises(ConfigError, match=r"modality 'joints' has shape \(4,\)"):
        check_frame_stacks({"joints": ModalitySpec("joints", (4,), "float32", "vector", -1, 1)})
    with pytest.raises(ConfigError, match="modality 'image' has shape"):
        check_frame_stacks({"image": ModalitySpec("image", (1, 8, 8), "uint8", "image", 0, 255)})


@pytest.mark.parametrize("key", ["temporal_weight", "frame_order_weight"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_term_weight_is_refused_naming_the_key(key, bad):
    with pytest.raises(ConfigError, match=f"pretrain.{key}"):
        PretrainConfig(**{key: bad})


@pytest.mark.parametrize("key", ["temporal_weight", "frame_order_weight"])
def test_identity_names_a_term_only_for_gmc_and_only_when_used(key):
    assert key not in pretrain_identity(PretrainConfig(), "gmc")  # older runs keep their hashes
    assert pretrain_identity(PretrainConfig(**{key: 0.5}), "gmc")[key] == 0.5
    assert key not in pretrain_identity(PretrainConfig(**{key: 0.5}), "mvae")


def _config(**pretrain_settings):
    settings = {"epochs": 2, "batch_size": 32, "checkpoint_every": 1, "lr": 3e-3, "model": SMALL,
                "reference_latents": 0, **pretrain_settings}
    return ExperimentConfig(env_id="gmc_rl/CartPoleSensors-v0",
                            collect=CollectConfig(steps=240, n_envs=2, val_fraction=0.2, seed=1),
                            pretrain=PretrainConfig(**settings))


def test_pretraining_with_the_term_logs_it_and_trains_other_weights(tmp_path):
    data = collect(_config(), tmp_path / "data", progress=False)
    plain = pretrain(_config(), data, tmp_path / "plain", progress=False)
    temporal = pretrain(_config(temporal_weight=1.0, frame_order_weight=0.5), data, tmp_path / "temporal",
                        progress=False)
    plain_history = json.loads((plain / "history.json").read_text())
    history = json.loads((temporal / "history.json").read_text())
    assert "loss/train_temporal" not in plain_history[0]
    assert "loss/train_frame_order" not in plain_history[0]
    assert all(h["loss/train_temporal"] > 0 and h["loss/train_frame_order"] > 0 for h in history)
    provenance = load_gmc(temporal).provenance
    assert provenance["temporal_weight"] == 1.0 and provenance["frame_order_weight"] == 0.5
    assert "temporal_weight" not in load_gmc(plain).provenance
    first = {k: v for k, v in load_gmc(plain).state_dict().items()}
    second = load_gmc(temporal).state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)
