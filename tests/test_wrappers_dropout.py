"""ModalityDropout and NonFiniteGuard: masks, zero-filling, drop rates, seeding, composition, clear errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import ToyEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from gmc_rl.errors import ConfigError, ModalityError, SensorValueError
from gmc_rl.modalities import AVAILABILITY_KEY
from gmc_rl.wrappers import ModalityDropout, NonFiniteGuard
from gmc_rl.wrappers.dropout import keep_one_bernoulli, keep_one_count_probabilities

pytestmark = pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")

ACTION = np.array([0.3], dtype=np.float32)


def run_masks(env: gym.Env, steps: int, seed: int = 0) -> np.ndarray:
    """Availability masks of ``steps`` consecutive observations (resetting at episode ends)."""
    obs, _ = env.reset(seed=seed)
    masks = [obs[AVAILABILITY_KEY]]
    for _ in range(steps - 1):
        obs, _, terminated, truncated, _ = env.step(ACTION)
        masks.append(obs[AVAILABILITY_KEY])
        if terminated or truncated:
            obs, _ = env.reset()
            masks.append(obs[AVAILABILITY_KEY])
    return np.array(masks, dtype=bool)


def test_fixed_drop_zero_fills_and_exposes_mask():
    env = ModalityDropout(ToyEnv(), drop=["image"])
    assert isinstance(env.observation_space, spaces.Dict)
    assert env.observation_space[AVAILABILITY_KEY] == spaces.MultiBinary(2)
    assert env.observation_space["image"] == ToyEnv().observation_space["image"]
    obs, info = env.reset(seed=0)
    assert info["available_modalities"] == ["sound"]
    np.testing.assert_array_equal(obs[AVAILABILITY_KEY], [0, 1])
    assert obs["image"].dtype == np.uint8 and not obs["image"].any()
    raw, _ = ToyEnv().reset(seed=0)
    np.testing.assert_array_equal(obs["sound"], raw["sound"])
    for _ in range(5):
        obs, _, _, _, info = env.step(ACTION)
        assert info["available_modalities"] == ["sound"] and not obs["image"].any() and obs["sound"].any()
    assert env.available_modalities == ["sound"]


def test_single_name_string_is_accepted():
    env = ModalityDropout(ToyEnv(), drop="sound")
    _, info = env.reset(seed=0)
    assert info["available_modalities"] == ["image"]


def test_without_mask_the_space_is_exactly_the_envs():
    base = ToyEnv()
    env = ModalityDropout(base, drop=["sound"], expose_mask=False)
    assert env.observation_space == base.observation_space
    obs, info = env.reset(seed=0)
    assert set(obs) == {"image", "sound"} and not obs["sound"].any()
    assert info["available_modalities"] == ["image"]


@pytest.mark.parametrize("make", [
    lambda: ModalityDropout(ToyEnv(), drop=["image"]),
    lambda: ModalityDropout(ToyEnv(), p=0.3, per="step", seed=1),
    lambda: ModalityDropout(ToyEnv(), p=0.3, per="episode", expose_mask=False),
    lambda: NonFiniteGuard(ToyEnv(nan_at={2: "sound"}), on_nonfinite="drop"),
    lambda: ModalityDropout(NonFiniteGuard(ToyEnv(nan_at={3: "sound"}), on_nonfinite="drop"), p=0.2, per="step"),
])
def test_check_env_passes(make):
    gym_check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=False)


@pytest.mark.parametrize("keep_one", [True, False])
def test_per_step_dropout_rate_matches_p(keep_one):
    env = ModalityDropout(ToyEnv(horizon=10_000), p=0.3, per="step", keep_one=keep_one, seed=123)
    masks = run_masks(env, 6000)
    dropped = 1.0 - masks.mean(axis=0)
    assert np.all(np.abs(dropped - 0.3) <= 0.03), dropped
    all_dropped = (~masks).all(axis=1).mean()
    if keep_one:
        assert all_dropped == 0.0
    else:
        assert abs(all_dropped - 0.09) < 0.02


def test_keep_one_rate_with_three_modalities_and_limit():
    env = ModalityDropout(ToyEnv(joints=True, horizon=10_000), p=0.6, per="step", seed=7)
    masks = run_masks(env, 6000)
    assert np.all(np.abs((1 - masks.mean(axis=0)) - 0.6) <= 0.03)
    assert masks.any(axis=1).all()
    # p = (M-1)/M with keep_one: exactly one modality survives at every step.
    env = ModalityDropout(ToyEnv(horizon=10_000), p=0.5, per="step", seed=7)
    masks = run_masks(env, 400)
    assert (masks.sum(axis=1) == 1).all()
    assert 0.4 < masks[:, 0].mean() < 0.6


def test_keep_one_bernoulli_solves_the_marginal():
    for m, p in [(2, 0.3), (3, 0.6), (4, 0.1)]:
        q = keep_one_bernoulli(p, m)
        assert (q - q**m) / (1 - q**m) == pytest.approx(p, abs=1e-9)
    assert keep_one_bernoulli(0.3, 2) == pytest.approx(0.3 / 0.7)
    for m, p in [(2, 0.3), (3, 0.6), (5, 0.25)]:
        probs = keep_one_count_probabilities(keep_one_bernoulli(p, m), m)
        assert probs.shape == (m,) and probs.sum() == pytest.approx(1.0)
        assert (probs * np.arange(m)).sum() / m == pytest.approx(p, abs=1e-9)  # E[dropped] / M = p


def test_per_episode_dropout_is_fixed_within_an_episode():
    env = ModalityDropout(ToyEnv(horizon=8), p=0.3, per="episode", seed=3)
    patterns = []
    for episode in range(300):
        obs, info = env.reset(seed=1000 + episode) if episode == 0 else env.reset()
        pattern = tuple(obs[AVAILABILITY_KEY])
        assert info["available_modalities"] == [n for n, k in zip(["image", "sound"], pattern) if k]
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(ACTION)
            assert tuple(obs[AVAILABILITY_KEY]) == pattern
            done = terminated or truncated
        patterns.append(pattern)
    patterns = np.array(patterns, dtype=bool)
    assert len({tuple(p) for p in patterns}) == 3  # both, image only, sound only; never none
    assert np.all(np.abs((1 - patterns.mean(axis=0)) - 0.3) < 0.08)


def test_seeding_is_reproducible():
    def masks(seed, reset_seed):
        return run_masks(ModalityDropout(ToyEnv(), p=0.4, per="step", seed=seed), 200, seed=reset_seed)

    np.testing.assert_array_equal(masks(5, 0), masks(5, 0))
    assert not np.array_equal(masks(5, 0), masks(6, 0))
    assert not np.array_equal(masks(5, 0), masks(5, 1))  # vector envs reset copies with different seeds
    assert not np.array_equal(masks(None, 0), masks(None, 1))
    np.testing.assert_array_equal(masks(None, 4), masks(None, 4))


def test_errors_are_clear():
    with pytest.raises(ModalityError, match=r"unknown modality 'imgae'.*\['image', 'sound'\].*Did you mean 'image'"):
        ModalityDropout(ToyEnv(), drop=["imgae"])
    with pytest.raises(ModalityError, match="removes every modality.*allow_all=True"):
        ModalityDropout(ToyEnv(), drop=["image", "sound"])
    env = ModalityDropout(ToyEnv(), drop=["image", "sound"], allow_all=True)
    obs, info = env.reset(seed=0)
    assert info["available_modalities"] == [] and not obs["sound"].any()
    for p in (-0.1, 1.5, float("nan"), "0.3"):
        with pytest.raises(ConfigError, match="dropout probability p must be a number in"):
            ModalityDropout(ToyEnv(), p=p)
    with pytest.raises(ConfigError, match=r"p=0.7 is too high with keep_one=True.*<= 0.5"):
        ModalityDropout(ToyEnv(), p=0.7)
    ModalityDropout(ToyEnv(), p=1.0, keep_one=False)  # allowed: the user accepts all-missing steps
    with pytest.raises(ConfigError, match="per=.*'episode', 'step'.*'steps'"):
        ModalityDropout(ToyEnv(), p=0.1, per="steps")
    with pytest.raises(ConfigError, match="either a fixed drop"):
        ModalityDropout(ToyEnv(), drop=["image"], p=0.1)
    with pytest.raises(ConfigError, match="seed must be None or a non-negative integer"):
        ModalityDropout(ToyEnv(), p=0.1, seed=-1)
    with pytest.raises(ModalityError, match="needs a Dict observation space"):
        ModalityDropout(gym.make("CartPole-v1"), p=0.1)


def test_nonfinite_guard_raises_naming_the_modality():
    env = NonFiniteGuard(ToyEnv(nan_at={3: "sound"}))
    assert env.observation_space == ToyEnv().observation_space
    env.reset(seed=0)
    env.step(ACTION)
    env.step(ACTION)
    with pytest.raises(SensorValueError, match=r"step 3 of the episode: modality 'sound' \(3 NaN, 0 inf\)"):
        env.step(ACTION)
    with pytest.raises(SensorValueError, match="at reset: modality 'sound'"):
        NonFiniteGuard(ToyEnv(nan_at={0: "sound"})).reset(seed=0)
    with pytest.raises(ConfigError, match="on_nonfinite must be one of"):
        NonFiniteGuard(ToyEnv(), on_nonfinite="ignore")


def test_nonfinite_guard_drop_marks_modality_missing_for_that_step():
    env = NonFiniteGuard(ToyEnv(nan_at={2: "sound"}), on_nonfinite="drop")
    obs, info = env.reset(seed=0)
    assert info["nonfinite_modalities"] == [] and obs[AVAILABILITY_KEY].tolist() == [1, 1]
    env.step(ACTION)
    obs, _, _, _, info = env.step(ACTION)
    assert info["nonfinite_modalities"] == ["sound"] and info["available_modalities"] == ["image"]
    assert obs[AVAILABILITY_KEY].tolist() == [1, 0] and np.isfinite(obs["sound"]).all() and not obs["sound"].any()
    obs, _, _, _, info = env.step(ACTION)
    assert obs[AVAILABILITY_KEY].tolist() == [1, 1] and obs["sound"].any()


def test_masks_compose_and_keep_one_accounts_for_inner_drops():
    inner = NonFiniteGuard(ToyEnv(nan_at={t: "sound" for t in range(1, 40)}), on_nonfinite="drop")
    env = ModalityDropout(inner, p=0.5, per="step", seed=0)  # would drop image half of the time
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        obs, _, _, _, info = env.step(ACTION)
        assert info["available_modalities"] == ["image"]  # sound broken; image always kept
    # a fixed condition is never overridden: both missing -> all-zero mask.
    env = ModalityDropout(NonFiniteGuard(ToyEnv(nan_at={1: "sound"}), on_nonfinite="drop"), drop=["image"])
    env.reset(seed=0)
    obs, *_ = env.step(ACTION)
    assert obs[AVAILABILITY_KEY].tolist() == [0, 0]
