"""Transfer diagnostics (gmc_rl.transfer) on a toy env and encoder with known answers, the robustness warnings of
the results tables, and the diagnostics recorded by the pipeline and printed by `gmc-rl align --agent`."""

from __future__ import annotations

import doctest

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import gmc_rl.transfer
from gmc_rl.errors import ConfigError
from gmc_rl.evaluate import relative_loss, summarize
from gmc_rl.results import build_results, markdown_report, robustness_losses, robustness_warnings
from gmc_rl.transfer import diagnose_transfer


class Line(gym.Env):
    """A point on a line pushed by the action; two sensors read its position. Episodes of 20 steps."""

    observation_space = spaces.Dict({"a": spaces.Box(-50, 50, (1,)), "b": spaces.Box(-50, 50, (1,))})
    action_space = spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-2, 2)), 0
        return self._obs(), {}

    def step(self, action):
        self.x += float(np.clip(action[0], -1, 1))
        self.t += 1
        return self._obs(), -abs(self.x), False, self.t >= 20, {}

    def _obs(self):
        return {"a": np.array([self.x], np.float32), "b": np.array([self.x], np.float32)}


class ShiftedEncoder:
    """Latent = (position, 0); the subset ["b"] alone reads it shifted by ``shift`` (a biased sensor)."""

    modalities = ["a", "b"]

    def __init__(self, shift: float) -> None:
        self.shift = shift

    def encode(self, obs, modalities=None):
        x = np.asarray(obs["a"], np.float64).reshape(-1, 1)
        if modalities is not None and list(modalities) == ["b"]:
            x = x + self.shift
        return torch.as_tensor(np.concatenate([x, np.zeros_like(x)], axis=1))


def controller(z: np.ndarray) -> np.ndarray:
    """Drive the point to 0 (proportional, saturating at the action bounds)."""
    return np.clip(-0.5 * z[:, :1], -1.0, 1.0)


def test_identical_latents_give_no_gap():
    report = diagnose_transfer(ShiftedEncoder(0.0), controller, Line, [["a"], ["b"]], episodes=4)
    for subset in ("a", "b"):
        assert report[subset]["latent_gap"] == 0.0
        assert report[subset]["action_gap"] == 0.0
        assert report[subset]["drift"] == 0.0
        assert report[subset]["reward_loss"] == 0.0


def test_shifted_latent_gives_the_expected_gaps():
    shift = 0.4
    report = diagnose_transfer(ShiftedEncoder(shift), controller, Line, [["a"], ["b"]], episodes=4, horizon=20)
    assert report["a"]["latent_gap"] == 0.0 and report["a"]["drift"] == 0.0
    gaps = report["b"]
    assert gaps["latent_gap"] == pytest.approx(shift, abs=1e-6)
    # The controller settles near 0, where it is linear: the action differs by 0.5 * shift (half range 1).
    assert gaps["action_gap"] == pytest.approx(0.5 * shift, rel=0.05)
    # Closed loop, the biased controller settles at -shift instead of 0: the trajectories drift apart by up to
    # the shift, and the reward gets worse.
    assert 0.5 * shift < gaps["drift"] <= shift + 1e-6
    assert gaps["reward_loss"] > 0.1


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="not a non-empty subset"):
        diagnose_transfer(ShiftedEncoder(0.0), controller, Line, [["lidar"]])
    with pytest.raises(ConfigError, match="episodes"):
        diagnose_transfer(ShiftedEncoder(0.0), controller, Line, [["a"]], episodes=0)
    with pytest.raises(ConfigError, match="horizon"):
        diagnose_transfer(ShiftedEncoder(0.0), controller, Line, [["a"]], horizon=0)


def test_docstring_example_runs():
    result = doctest.testmod(gmc_rl.transfer)
    assert result.attempted > 0 and result.failed == 0


def test_relative_loss_is_sign_aware():
    assert relative_loss(-0.5, -1.5) == pytest.approx(2.0)  # three times as bad
    assert relative_loss(-0.5, -0.45) == pytest.approx(-0.1)  # better
    assert relative_loss(100.0, 80.0) == pytest.approx(0.2)  # positive rewards
    assert np.isnan(relative_loss(0.0, -1.0))


def _results(sound_scores: list[float], diagnostics=None) -> dict:
    """Results of one method with two agents: complete at -0.5 per step, sound as given per agent."""
    def unit(name: str, score: float) -> tuple[dict, list[float], list[int]]:
        return {"agent": name, "seed": 0}, [score * 100] * 3, [100] * 3

    per_condition = {
        "complete": summarize([unit("gmc-seed0", -0.5), unit("gmc-seed1", -0.5)]),
        "sound": summarize([unit("gmc-seed0", sound_scores[0]), unit("gmc-seed1", sound_scores[1])]),
    }
    return build_results({"gmc": per_condition}, env_id="toy", diagnostics=diagnostics)


def test_warning_names_the_agent_condition_and_loss():
    gaps = {"latent_gap": 0.16, "action_gap": 0.2, "drift": 0.31, "reward_loss": 2.1,
            "complete_return": -50.0, "subset_return": -155.0}
    results = _results([-0.52, -1.5], diagnostics={"gmc": {"gmc-seed1": {"sound": gaps}}})
    losses = robustness_losses(results)
    assert [(item["agent"], item["condition"]) for item in losses] == [("gmc-seed1", "sound")]
    assert losses[0]["loss"] == pytest.approx(2.0)
    (line,) = robustness_warnings(results)
    assert "gmc-seed1" in line and "'sound'" in line and "200 %" in line and "drift 0.310" in line
    assert "paired short episodes lose 210 %" in line
    report = markdown_report(results)
    assert "## Robustness check" in report and "WARNING: gmc-seed1" in report
    assert "## Transfer diagnostics" in report and "| gmc-seed1 | sound | 0.160 | 0.200 | 0.310 | +210.0 % |" in report


def test_no_warning_within_ten_percent():
    results = _results([-0.54, -0.47])  # 8 % worse and 6 % better
    assert robustness_warnings(results) == []
    assert "Every agent stays within 10 %" in markdown_report(results)


class SparseLine(Line):
    """Line with a reward of 0 at every step: the complete return is 0, so a relative loss is not defined."""

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, 0.0, terminated, truncated, info


def test_a_complete_return_of_zero_gives_no_loss_and_the_results_still_write(tmp_path):
    """Before, reward_loss was NaN there: the pipeline's evaluation record and results.json (strict JSON) failed
    with a raw ValueError, and the tables printed 'nan %'."""
    from gmc_rl.evaluate import defined_loss, format_loss
    from gmc_rl.results import load_results, write_results

    assert defined_loss(0.0, -1.0) is None and defined_loss(-2.0, -3.0) == pytest.approx(0.5)
    assert format_loss(None) == "n/a" and format_loss(float("nan")) == "n/a" and format_loss(0.25) == "+25.0 %"
    report = diagnose_transfer(ShiftedEncoder(0.4), controller, SparseLine, [["b"]], episodes=2, horizon=5)
    assert report["b"]["reward_loss"] is None and report["b"]["complete_return"] == 0.0
    results = _results([-0.6, -0.5], diagnostics={"gmc": {"gmc-seed0": report}})
    write_results(results, tmp_path / "out", plot=False)
    assert "| gmc-seed0 | b | 0.400 |" in markdown_report(load_results(tmp_path / "out"))
    assert "| n/a |" in (tmp_path / "out" / "results.md").read_text()
    (line,) = robustness_warnings(_results([-0.6, -0.5], diagnostics={"gmc": {"gmc-seed0": {"sound": report["b"]}}}))
    assert "paired short episodes lose n/a" in line
