"""The optional temporal term of GMC pretraining: its value, its pairs, its config and its effect on a run."""

import json
import math

import numpy as np
import pytest
import torch

from gmc_rl import load_gmc
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig, pretrain_identity
from gmc_rl.errors import ConfigError
from gmc_rl.loss import temporal_loss
from gmc_rl.pretrain import pretrain, successor_mask

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


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_temporal_weight_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigError, match="pretrain.temporal_weight"):
        PretrainConfig(temporal_weight=bad)


def test_identity_names_the_term_only_for_gmc_and_only_when_used():
    assert "temporal_weight" not in pretrain_identity(PretrainConfig(), "gmc")  # older runs keep their hashes
    assert pretrain_identity(PretrainConfig(temporal_weight=0.5), "gmc")["temporal_weight"] == 0.5
    assert "temporal_weight" not in pretrain_identity(PretrainConfig(temporal_weight=0.5), "mvae")


def _config(**pretrain_settings):
    settings = {"epochs": 2, "batch_size": 32, "checkpoint_every": 1, "lr": 3e-3, "model": SMALL,
                "reference_latents": 0, **pretrain_settings}
    return ExperimentConfig(env_id="gmc_rl/CartPoleSensors-v0",
                            collect=CollectConfig(steps=240, n_envs=2, val_fraction=0.2, seed=1),
                            pretrain=PretrainConfig(**settings))


def test_pretraining_with_the_term_logs_it_and_trains_other_weights(tmp_path):
    data = collect(_config(), tmp_path / "data", progress=False)
    plain = pretrain(_config(), data, tmp_path / "plain", progress=False)
    temporal = pretrain(_config(temporal_weight=1.0), data, tmp_path / "temporal", progress=False)
    plain_history = json.loads((plain / "history.json").read_text())
    history = json.loads((temporal / "history.json").read_text())
    assert "loss/train_temporal" not in plain_history[0]
    assert all(h["loss/train_temporal"] > 0 for h in history)
    assert load_gmc(temporal).provenance["temporal_weight"] == 1.0
    assert "temporal_weight" not in load_gmc(plain).provenance
    first = {k: v for k, v in load_gmc(plain).state_dict().items()}
    second = load_gmc(temporal).state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)
