"""Tests of the env-agnostic evaluation harness (gmc_rl.evaluate) on small Gymnasium envs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from gmc_rl.errors import ConfigError, SensorValueError
from gmc_rl.evaluate import evaluate_conditions, mean_interval, ratio_interval, run_episodes, summarize, t_critical


class CountdownEnv(gym.Env):
    """Episodes of random length (1..max_len steps, from the reset seed); reward = 1 per step + the action."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, max_len: int = 5, bad_reward: bool = False) -> None:
        self.max_len = max_len
        self.bad_reward = bad_reward
        self.left = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = int(self.np_random.integers(1, self.max_len + 1))
        return np.array([self.left / self.max_len], dtype=np.float32), {}

    def step(self, action):
        self.left -= 1
        reward = float("nan") if self.bad_reward else 1.0 + float(np.asarray(action).reshape(-1)[0])
        obs = np.array([self.left / self.max_len], dtype=np.float32)
        return obs, reward, self.left <= 0, False, {}


def pendulum_factory(condition: str, n_envs: int, seed: int):
    return make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)


def pd_controller(obs):
    """A fixed deterministic controller of Pendulum-v1 (obs = cos, sin, thdot)."""
    return np.clip(-2.0 * obs[:, 1:2] - 0.5 * obs[:, 2:3], -2.0, 2.0)


def test_t_critical_matches_tables():
    assert t_critical(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_critical(4) == pytest.approx(2.7764, abs=1e-4)
    assert t_critical(99) == pytest.approx(1.9842, abs=1e-4)
    assert t_critical(100_000) == pytest.approx(1.95998, abs=1e-4)
    with pytest.raises(ValueError):
        t_critical(0)


def test_t_critical_matches_scipy():
    from scipy import stats  # a dev dependency (pyproject extras "dev")
    for dof in (2, 7, 30, 250):
        assert t_critical(dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-8)


def test_mean_interval_known_values():
    stats = mean_interval([1.0, 2.0, 3.0, 4.0])
    assert stats["mean"] == 2.5
    assert stats["std"] == pytest.approx(math.sqrt(5 / 3))
    half = t_critical(3) * math.sqrt(5 / 3) / 2
    assert stats["half_width"] == pytest.approx(half)
    assert stats["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    single = mean_interval([7.0])
    assert single["mean"] == 7.0 and single["half_width"] is None and single["ci95"] is None


def test_ratio_interval_equals_t_interval_for_equal_lengths():
    returns = [-300.0, -450.0, -120.0, -600.0, -210.0]
    lengths = [300] * 5
    ratio = ratio_interval(returns, lengths)
    per_step = mean_interval([r / 300 for r in returns])
    assert ratio["mean"] == pytest.approx(per_step["mean"])
    assert ratio["half_width"] == pytest.approx(per_step["half_width"])


def test_ratio_interval_is_total_over_steps_for_unequal_lengths():
    ratio = ratio_interval([10.0, 1.0], [10, 1])
    assert ratio["mean"] == pytest.approx(11 / 11)
    assert ratio["half_width"] == pytest.approx(0.0)  # every step earns exactly 1
    with pytest.raises(ValueError):
        ratio_interval([1.0], [0])


def test_run_episodes_counts_exactly_and_unbiased():
    venv = make_vec_env(lambda: CountdownEnv(max_len=6), n_envs=4)
    returns, lengths = run_episodes(venv, lambda obs: np.zeros((4, 1), np.float32), episodes=10, seed=3)
    assert len(returns) == len(lengths) == 10
    # reward is 1 per step with a zero action, so each return equals its length.
    assert returns == [float(n) for n in lengths]
    assert all(1 <= n <= 6 for n in lengths)


def test_run_episodes_fewer_episodes_than_envs():
    venv = make_vec_env(lambda: CountdownEnv(), n_envs=4)
    returns, _ = run_episodes(venv, lambda obs: np.zeros((4, 1), np.float32), episodes=1, seed=0)
    assert len(returns) == 1


def test_run_episodes_rejects_nonfinite_reward_and_bad_count():
    venv = make_vec_env(lambda: CountdownEnv(bad_reward=True), n_envs=1)
    with pytest.raises(SensorValueError, match="non-finite reward"):
        run_episodes(venv, lambda obs: np.zeros((1, 1), np.float32), episodes=1, seed=0)
    with pytest.raises(ConfigError, match="positive"):
        run_episodes(venv, lambda obs: obs, episodes=0)


def test_evaluate_conditions_structure_and_reproducibility():
    kwargs = dict(conditions=["complete", "other"], episodes=3, seeds=[0, 2], n_envs=2, progress=False)
    first = evaluate_conditions(pendulum_factory, pd_controller, **kwargs)
    second = evaluate_conditions(pendulum_factory, pd_controller, **kwargs)
    assert list(first) == ["complete", "other"]
    assert first == second  # same seeds, deterministic policy -> identical numbers
    summary = first["complete"]
    assert summary["episodes"] == 6 and summary["steps"] == 6 * 200
    assert [u["seed"] for u in summary["per_seed"]] == [0, 2]
    assert all(len(u["returns"]) == 3 for u in summary["per_seed"])
    per_step = summary["per_step_reward"]
    assert -16.3 <= per_step["ci95"][0] <= per_step["mean"] <= per_step["ci95"][1] <= 0.0
    assert summary["per_step_reward"]["mean"] == pytest.approx(summary["episode_return"]["mean"] / 200)
    assert summary["across_seeds"]["per_step_reward"]["n"] == 2
    third = evaluate_conditions(pendulum_factory, pd_controller, **{**kwargs, "seeds": [5, 7]})
    assert third["complete"]["episode_return"]["mean"] != summary["episode_return"]["mean"]


def test_evaluate_conditions_passes_condition_and_seed():
    calls = []

    def factory(condition, n_envs, seed):
        calls.append((condition, n_envs, seed))
        return make_vec_env(lambda: CountdownEnv(), n_envs=n_envs, seed=seed)

    evaluate_conditions(factory, lambda obs: np.zeros((len(obs), 1), np.float32), ["a", "b"], episodes=2,
                        seeds=[4], n_envs=8, progress=False)
    assert calls == [("a", 2, 4), ("b", 2, 4)]  # never more envs than episodes


def test_evaluate_conditions_rejects_bad_arguments():
    def predict(obs):
        return obs

    with pytest.raises(ConfigError, match="no evaluation conditions"):
        evaluate_conditions(pendulum_factory, predict, [], 1, [0], 1, progress=False)
    with pytest.raises(ConfigError, match="repeated"):
        evaluate_conditions(pendulum_factory, predict, ["a", "a"], 1, [0], 1, progress=False)
    with pytest.raises(ConfigError, match="seeds"):
        evaluate_conditions(pendulum_factory, predict, ["a"], 1, [], 1, progress=False)


def test_summarize_pools_units():
    summary = summarize([({"seed": 0}, [1.0, 3.0], [1, 3]), ({"seed": 1}, [5.0], [10])])
    assert summary["episodes"] == 3 and summary["steps"] == 14
    assert summary["per_step_reward"]["mean"] == pytest.approx(9 / 14)
    assert summary["episode_return"]["mean"] == pytest.approx(3.0)
    assert [u["per_step_reward"] for u in summary["per_seed"]] == pytest.approx([1.0, 0.5])
    assert summary["across_seeds"]["per_step_reward"]["mean"] == pytest.approx(0.75)
    assert summary["episode_length"] == {"mean": pytest.approx(14 / 3), "min": 1, "max": 10}
