"""Sensor corruption wrappers: noise statistics, bounds, seeding, stuck sensors, stacking, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import ToyEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.modalities import AVAILABILITY_KEY
from gmc_rl.wrappers import GaussianNoise, ModalityDropout, NonFiniteGuard, SaltPepperNoise, StuckSensor

pytestmark = pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")

ACTION = np.array([0.3], dtype=np.float32)


def paired_rollout(env, steps: int, seed: int = 0):
    """Observations of ``env`` and of a clean ToyEnv driven by the same seed and actions."""
    clean_env = ToyEnv(joints="joints" in env.observation_space.spaces)
    obs, _ = env.reset(seed=seed)
    clean, _ = clean_env.reset(seed=seed)
    pairs = [(obs, clean)]
    for _ in range(steps):
        obs, *_ = env.step(ACTION)
        clean, *_ = clean_env.step(ACTION)
        pairs.append((obs, clean))
    return pairs


def test_gaussian_noise_std_is_relative_to_the_declared_range():
    # joints has infinite bounds: std = severity (no clipping), so the statistics are exact.
    env = GaussianNoise(ToyEnv(joints=True), "joints", severity=0.5, seed=0)
    diffs = np.concatenate([o["joints"] - c["joints"] for o, c in paired_rollout(env, 39)])
    assert abs(diffs.std() - 0.5) < 0.1 and abs(diffs.mean()) < 0.15
    # sound spans [-1, 1]: std = 0.01 * 2, results clipped into the box; the image is untouched.
    env = GaussianNoise(ToyEnv(), ["sound"], severity=0.01, seed=0)
    pairs = paired_rollout(env, 39)
    diffs = np.concatenate([o["sound"] - c["sound"] for o, c in pairs])
    assert 0.013 < diffs.std() < 0.027
    for obs, clean in pairs:
        assert obs["sound"].dtype == np.float32 and env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs["image"], clean["image"])


def test_gaussian_noise_on_images_stays_uint8():
    env = GaussianNoise(ToyEnv(), "image", severity=0.05, seed=1)
    pairs = paired_rollout(env, 10)
    diffs = np.concatenate([(o["image"].astype(float) - c["image"]).ravel() for o, c in pairs])
    assert all(o["image"].dtype == np.uint8 for o, _ in pairs)
    assert 0.7 * 12.75 < diffs.std() < 1.1 * 12.75  # clipping at 0/255 shrinks it a little
    assert np.allclose(diffs, np.rint(diffs))


def test_zero_severity_is_the_identity_and_seeds_reproduce():
    for obs, clean in paired_rollout(GaussianNoise(ToyEnv(), ["image", "sound"], severity=0.0, seed=0), 5):
        np.testing.assert_array_equal(obs["image"], clean["image"])
        np.testing.assert_array_equal(obs["sound"], clean["sound"])

    def noisy(seed, reset_seed):
        return [o["sound"] for o, _ in paired_rollout(GaussianNoise(ToyEnv(), "sound", 0.1, seed=seed), 5, reset_seed)]

    np.testing.assert_array_equal(noisy(3, 0), noisy(3, 0))
    assert not np.array_equal(noisy(3, 0), noisy(4, 0))
    assert not np.array_equal(noisy(3, 0), noisy(3, 1))


def test_salt_and_pepper_hits_the_requested_fraction():
    env = SaltPepperNoise(ToyEnv(), "image", severity=0.2, seed=0)
    changed, black, white, total = 0, 0, 0, 0
    for obs, clean in paired_rollout(env, 30):
        hit = obs["image"] != clean["image"]
        assert set(np.unique(obs["image"][hit])) <= {0, 255}
        changed += hit.sum()
        black += (obs["image"][hit] == 0).sum()
        white += (obs["image"][hit] == 255).sum()
        total += hit.size
        np.testing.assert_array_equal(obs["sound"], clean["sound"])
    # a hit pixel that already had the chosen extreme value does not show as changed: rate slightly below 0.2
    assert 0.17 < changed / total < 0.21
    assert 0.4 < black / (black + white) < 0.6


def test_stuck_sensor_repeats_its_last_value():
    env = StuckSensor(ToyEnv(), "image", seed=0)  # severity 1: stuck from the first step
    pairs = paired_rollout(env, 10)
    first = pairs[0][0]["image"]
    for obs, clean in pairs[1:]:
        np.testing.assert_array_equal(obs["image"], first)
        np.testing.assert_array_equal(obs["sound"], clean["sound"])
    env = StuckSensor(ToyEnv(), "sound", severity=0.2, seed=2)
    obs, info = env.reset(seed=0)
    assert info["stuck_modalities"] == []
    clean_env = ToyEnv()
    clean_env.reset(seed=0)
    history, stuck_at = [obs["sound"]], None
    for t in range(1, 40):
        obs, _, _, _, info = env.step(ACTION)
        clean, *_ = clean_env.step(ACTION)
        if stuck_at is None and info["stuck_modalities"] == ["sound"]:
            stuck_at = t
            np.testing.assert_array_equal(obs["sound"], history[-1])  # the value of the step before
        if stuck_at is None:
            np.testing.assert_array_equal(obs["sound"], clean["sound"])
        else:
            assert info["stuck_modalities"] == ["sound"]
            np.testing.assert_array_equal(obs["sound"], history[stuck_at - 1])
        history.append(clean["sound"])
    assert stuck_at is not None
    obs, info = env.reset()
    assert info["stuck_modalities"] == []  # a new episode starts with a working sensor


def test_corruption_leaves_dropped_modalities_alone():
    env = GaussianNoise(ModalityDropout(ToyEnv(), drop=["sound"]), ["image", "sound"], severity=0.3, seed=0)
    obs, _ = env.reset(seed=0)
    assert not obs["sound"].any() and obs[AVAILABILITY_KEY].tolist() == [1, 0]


@pytest.mark.parametrize("make", [
    lambda: GaussianNoise(ToyEnv(), ["image", "sound"], severity=0.3, seed=0),
    lambda: SaltPepperNoise(ToyEnv(), "image", severity=0.5),
    lambda: StuckSensor(ToyEnv(), "sound", severity=0.1),
    lambda: ModalityDropout(
        NonFiniteGuard(GaussianNoise(SaltPepperNoise(StuckSensor(ToyEnv(joints=True), "joints", 0.05), "image", 0.1),
                                     "sound", 2.0)),
        p=0.3, per="step", seed=0,
    ),
])
def test_check_env_passes(make):
    gym_check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=False)


def test_errors_are_clear():
    with pytest.raises(ModalityError,
                       match=r"GaussianNoise\(modalities=...\): unknown modality 'snd'.*\['image', 'sound'\]"):
        GaussianNoise(ToyEnv(), "snd", severity=0.1)
    with pytest.raises(ModalityError, match="needs at least one modality"):
        GaussianNoise(ToyEnv(), [], severity=0.1)
    with pytest.raises(ConfigError, match="GaussianNoise severity must be a finite number >= 0"):
        GaussianNoise(ToyEnv(), "sound", severity=-0.1)
    with pytest.raises(ConfigError, match=r"SaltPepperNoise severity must be in \[0, 1\]"):
        SaltPepperNoise(ToyEnv(), "image", severity=1.5)
    with pytest.raises(ModalityError, match=r"applies to images.*'sound' is a float32 vector.*\['image'\]"):
        SaltPepperNoise(ToyEnv(), "sound", severity=0.1)
    with pytest.raises(ConfigError, match=r"StuckSensor severity must be in \[0, 1\]"):
        StuckSensor(ToyEnv(), "sound", severity=2)
