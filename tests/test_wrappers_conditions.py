"""Evaluation condition strings: parsing, canonical names, the wrappers they build, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ToyEnv

from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.modalities import AVAILABILITY_KEY
from gmc_rl.wrappers import Condition, GaussianNoise, SaltPepperNoise, StuckSensor
from gmc_rl.wrappers.conditions import all_subset_conditions, apply_condition, parse_condition

MODS = ["image", "sound"]
ACTION = np.array([0.3], dtype=np.float32)


def test_parse_every_form():
    assert parse_condition("complete", MODS) == Condition("complete", "complete", ("image", "sound"))
    assert parse_condition("sound", MODS) == Condition("sound", "subset", ("sound",))
    assert parse_condition("sound+image", MODS) == Condition("complete", "complete", ("image", "sound"))
    three = ["image", "sound", "joints"]
    assert parse_condition(" joints+image ", three) == Condition("image+joints", "subset", ("image", "joints"))
    assert parse_condition("dropout:0.30", MODS) == Condition("dropout:0.3", "dropout", (), p=0.3)
    assert parse_condition("noise:sound:0.1", MODS) == Condition("noise:sound:0.1", "noise", ("sound",), severity=0.1)
    assert parse_condition("saltpepper:image:0.05", MODS).severity == 0.05
    assert parse_condition("stuck:image", MODS) == Condition("stuck:image", "stuck", ("image",), severity=1.0)
    assert parse_condition("stuck:image:0.01", MODS).name == "stuck:image:0.01"


@pytest.mark.parametrize("text, error, pattern", [
    ("imgae", ModalityError,
     r"unknown modality 'imgae'; available modalities are \['image', 'sound'\].*Did you mean 'image'"),
    ("image+audio", ModalityError, "unknown modality 'audio'"),
    ("noise:audio:0.1", ModalityError, r"unknown modality 'audio'; available modalities are \['image', 'sound'\]"),
    ("dropuot:0.3", ConfigError, "unknown kind 'dropuot'.*Did you mean 'dropout'"),
    ("dropout:abc", ConfigError, "dropout probability must be a number"),
    ("dropout:0.7", ConfigError, r"must be in \[0, 0.5\] for 2 modalities"),
    ("dropout:-0.1", ConfigError, "must be in"),
    ("dropout", ConfigError, "'dropout' needs arguments.*'dropout:P'"),
    ("noise:sound", ConfigError, "expected 'noise:MODALITY:SEVERITY'"),
    ("noise:sound:-1", ConfigError, "severity must be in"),
    ("saltpepper:image:2", ConfigError, r"severity must be in \[0, 1\]"),
    ("stuck:image:1.5", ConfigError, "per-step probability"),
    ("noise:sound:nan", ConfigError, "must be finite"),
    ("", ConfigError, "non-empty string"),
])
def test_bad_conditions_are_refused_with_the_culprit(text, error, pattern):
    with pytest.raises(error, match=pattern):
        parse_condition(text, MODS)


def test_all_subset_conditions():
    assert all_subset_conditions(MODS) == ["complete", "image", "sound"]
    three = all_subset_conditions(["image", "sound", "joints"])
    assert three == ["complete", "image", "sound", "joints", "image+sound", "image+joints", "sound+joints"]
    assert all(parse_condition(c, ["image", "sound", "joints"]).name == c for c in three)


@pytest.mark.parametrize("expose_mask", [True, False])
def test_every_condition_gives_the_same_space(expose_mask):
    conditions = [*all_subset_conditions(MODS), "dropout:0.3", "noise:sound:0.1", "saltpepper:image:0.1", "stuck:sound"]
    spaces_seen = [apply_condition(ToyEnv(), c, seed=0, expose_mask=expose_mask).observation_space for c in conditions]
    assert all(space == spaces_seen[0] for space in spaces_seen)
    assert (AVAILABILITY_KEY in spaces_seen[0].spaces) == expose_mask


def test_conditions_build_the_right_wrappers():
    env = apply_condition(ToyEnv(), "sound", seed=0, expose_mask=True)
    obs, info = env.reset(seed=0)
    assert info["available_modalities"] == ["sound"] and not obs["image"].any()
    env = apply_condition(ToyEnv(), parse_condition("complete", MODS), seed=0, expose_mask=True)
    obs, info = env.reset(seed=0)
    assert obs[AVAILABILITY_KEY].tolist() == [1, 1]
    env = apply_condition(ToyEnv(horizon=5000), "dropout:0.3", seed=0, expose_mask=True)
    env.reset(seed=0)
    masks = np.array([env.step(ACTION)[0][AVAILABILITY_KEY] for _ in range(3000)])
    assert np.all(np.abs((1 - masks.mean(axis=0)) - 0.3) < 0.03) and masks.any(axis=1).all()
    for text, cls in [("noise:sound:0.1", GaussianNoise), ("saltpepper:image:0.1", SaltPepperNoise),
                      ("stuck:image", StuckSensor)]:
        env = apply_condition(ToyEnv(), text, seed=0, expose_mask=False)
        assert isinstance(env.env, cls) and env.env.targets == [text.split(":")[1]]
    with pytest.raises(ModalityError, match="applies to images"):
        apply_condition(ToyEnv(), "saltpepper:sound:0.1", seed=0, expose_mask=True)
    with pytest.raises(ModalityError, match="unknown modality 'joints'"):
        apply_condition(ToyEnv(), "joints", seed=0, expose_mask=True)
