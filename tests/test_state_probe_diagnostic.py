"""The state probe (gmc_rl.state_probe): known answers, warnings that name the variable, states in datasets."""

import json
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig
from gmc_rl.data import STATES_KEY, load_dataset
from gmc_rl.errors import DatasetError
from gmc_rl.state_probe import (
    StateProbeReport,
    StateProbeWarning,
    knn_r2,
    linear_r2,
    probe_dataset_split,
    probe_states,
    state_variables,
    warn_unreadable,
)


def uniform_states(rows=900, seed=0):
    """Independent uniform states in [-1, 1]^3 (the fitted and the scored rows cover the same region)."""
    return np.random.default_rng(seed).uniform(-1, 1, size=(rows, 3))


class TableEncoder:
    """A stand-in encoder with a known answer: modality ``"a"`` holds the first two state variables (its latent is
    an invertible map of them), ``"b"`` holds only noise; the complete latent is ``a``'s."""

    modalities = ["a", "b"]

    def encode(self, obs, modalities=None):
        names = modalities or self.modalities
        if "a" in names:
            x = torch.as_tensor(obs["a"])
            return torch.stack([torch.tanh(x[:, 0]), x[:, 1] ** 3, x[:, 0] + x[:, 1]], dim=1)
        return torch.as_tensor(obs["b"])


def test_a_latent_that_holds_the_state_reads_near_one_and_a_shuffled_one_near_zero():
    states = uniform_states()
    assert knn_r2(states * 5.0 + 1.0, states).min() > 0.95
    assert linear_r2(states @ np.array([[1, 2, 0], [0, 1, 0], [3, 0, 1.0]]), states).min() > 0.99
    shuffled = states[np.random.default_rng(1).permutation(len(states))]
    assert np.abs(knn_r2(shuffled, states)).max() < 0.3
    assert np.abs(linear_r2(shuffled, states)).max() < 0.3


def test_knn_reads_a_nonlinear_map_that_the_linear_probe_misses():
    states = uniform_states()
    folded = np.c_[np.cos(3 * states[:, :1]), np.sin(3 * states[:, :1])]  # a circle: not linear in the state
    assert knn_r2(folded, states[:, :1])[0] > 0.9
    assert linear_r2(folded, states[:, :1])[0] < 0.9


def test_probe_reports_every_latent_and_warns_naming_the_missing_variable():
    states = uniform_states()
    rng = np.random.default_rng(2)
    obs = {"a": states[:, :2].astype(np.float32), "b": rng.normal(size=(len(states), 3)).astype(np.float32)}
    report = probe_states(TableEncoder(), obs, states, ["x", "y", "speed"])
    assert set(report.knn) == {"complete", "a", "b"}
    assert report.knn["complete"][0] > 0.9 and report.knn["complete"][1] > 0.9
    assert report.unreadable("complete") == ["speed"]
    assert report.unreadable("b") == ["x", "y", "speed"]
    lines = report.warnings()
    assert len(lines) == 1 and "'speed'" in lines[0] and "complete latent" in lines[0]
    with pytest.warns(StateProbeWarning, match="my encoder: state variable 'speed'"):
        warn_unreadable(report, "my encoder")
    table = report.table()
    assert "speed" in table and "complete" in table
    assert json.loads(json.dumps(report.to_json()))["unreadable"]["complete"] == ["speed"]


def test_warning_names_the_single_modality_that_still_reads_the_variable():
    report = StateProbeReport(["x", "v"], {"complete": [0.9, 0.2], "image": [0.9, 0.1], "sound": [0.9, 0.8]},
                              {"complete": [0.5, 0.0], "image": [0.5, 0.0], "sound": [0.5, 0.4]}, rows=100)
    (line,) = report.warnings()
    assert "'v'" in line and "readable from sound alone" in line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unreadable(StateProbeReport(["x"], {"complete": [0.8]}, {"complete": [0.1]}, rows=100), "fine")


@pytest.mark.parametrize("states, message", [
    (np.zeros((60, 2)), "3 variables"),
    (np.zeros((59, 3)), "60 rows"),
    (np.full((60, 3), np.nan), "NaN"),
    (np.zeros(60), "3 variables"),
])
def test_bad_states_are_refused_with_the_reason(states, message):
    obs = {"a": np.zeros((60, 2), np.float32), "b": np.zeros((60, 3), np.float32)}
    with pytest.raises(DatasetError, match=message):
        probe_states(TableEncoder(), obs, states, ["x", "y", "speed"])


def test_too_few_rows_are_refused():
    obs = {"a": np.zeros((10, 2), np.float32), "b": np.zeros((10, 3), np.float32)}
    with pytest.raises(DatasetError, match="at least 30 rows"):
        probe_states(TableEncoder(), obs, np.zeros((10, 3)), ["x", "y", "speed"])


def test_fitted_on_other_rows_the_probe_reads_what_few_in_order_rows_miss():
    """A scored split that covers the states unevenly (here: the last third of the rows in a region the first two
    thirds never visit) reads a held variable as unreadable with the in-order split; fitted on other rows that
    cover the region, as probe_dataset_split fits on the training split, it reads it (a known answer)."""
    scored = uniform_states(300, seed=3)
    scored = scored[np.argsort(scored[:, 0])]  # rows ordered by x: the scored tail lies where no fitted row is
    assert knn_r2(scored * 2.0, scored)[0] < 0.5
    other = uniform_states(3000, seed=4)
    assert knn_r2(scored * 2.0, scored, fit=(other * 2.0, other)).min() > 0.9
    assert linear_r2(scored * 2.0, scored, fit=(other * 2.0, other)).min() > 0.99
    rng = np.random.default_rng(5)
    obs = {"a": scored[:, :2].astype(np.float32), "b": rng.normal(size=(300, 3)).astype(np.float32)}
    fit_obs = {"a": other[:, :2].astype(np.float32), "b": rng.normal(size=(3000, 3)).astype(np.float32)}
    report = probe_states(TableEncoder(), obs, scored, ["x", "y", "speed"], fit_observations=fit_obs,
                          fit_states=other)
    assert report.unreadable("complete") == ["speed"] and report.fitted_on == "3000 other rows"
    with pytest.raises(DatasetError, match="both fit_observations and fit_states"):
        probe_states(TableEncoder(), obs, scored, ["x", "y", "speed"], fit_states=other)


def test_a_dataset_split_is_probed_with_regressions_fitted_on_the_training_split(tmp_path):
    config = ExperimentConfig(env_id="gmc_rl/CartPoleSensors-v0",
                              collect=CollectConfig(steps=400, n_envs=2, val_fraction=0.25, seed=3))
    dataset = load_dataset(collect(config, tmp_path / "data", progress=False))

    class JointsEncoder:
        modalities = ["image", "joints", "sound"]

        def encode(self, obs, modalities=None):
            return torch.as_tensor(obs["joints"]).reshape(len(obs["joints"]), -1).float()

    report = probe_dataset_split(JointsEncoder(), dataset)
    n_train, n_val = len(dataset.train[STATES_KEY]), len(dataset.val[STATES_KEY])
    assert report.rows == n_val and report.fitted_on == f"{n_train} rows of the training split (every 1)"
    assert report.to_json()["fitted_on"] == report.fitted_on
    assert probe_dataset_split(JointsEncoder(), dataset, "train").fitted_on.startswith("the first")


def test_state_variable_names_fall_back_to_indices():
    assert state_variables(["x", "v"], 2) == ["x", "v"]
    for recorded in (None, ["x"], ["x", ""], ["x", 3], "xv"):
        assert state_variables(recorded, 2) == ["state[0]", "state[1]"]


def test_collect_records_the_true_state_behind_every_observation(tmp_path):
    config = ExperimentConfig(env_id="gmc_rl/CartPoleSensors-v0",
                              collect=CollectConfig(steps=120, n_envs=2, val_fraction=0.25, seed=3))
    dataset = load_dataset(collect(config, tmp_path / "data", progress=False))
    assert dataset.metadata["state_names"] == ["x", "x_dot", "theta", "theta_dot"]
    states = np.concatenate([dataset.train[STATES_KEY], dataset.val[STATES_KEY]])
    actions = np.concatenate([dataset.train["actions"], dataset.val["actions"]])
    done = np.concatenate([dataset.train["terminated"] | dataset.train["truncated"],
                           dataset.val["terminated"] | dataset.val["truncated"]])
    assert states.shape == (120, 4) and states.dtype == np.float32
    # Replay env 0 (the first 60 rows, seeded with collect.seed) with the recorded actions: the same states.
    env = gym.make("gmc_rl/CartPoleSensors-v0")
    _, info = env.reset(seed=3)
    for row in range(60):
        np.testing.assert_allclose(states[row], info["state"], rtol=1e-6)
        _, _, terminated, truncated, info = env.step(int(actions[row]))
        if terminated or truncated:
            assert done[row]
            _, info = env.reset()


def test_a_dataset_without_states_is_not_probed(tmp_path):
    from helpers import TINY_ID

    config = ExperimentConfig(env_id=TINY_ID, collect=CollectConfig(steps=80, n_envs=2, val_fraction=0.5, seed=0))
    dataset = load_dataset(collect(config, tmp_path / "data", progress=False))
    assert STATES_KEY not in dataset.val and "state_names" not in dataset.metadata
    assert probe_dataset_split(TableEncoder(), dataset) is None


def test_linear_probe_reads_a_mixed_code_with_unrelated_units_and_not_noise():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(900, 2))
    latents = np.hstack([states @ rng.normal(size=(2, 6)), rng.normal(size=(900, 4))])
    assert np.all(linear_r2(latents, states) > 0.99)
    assert np.all(linear_r2(rng.normal(size=(900, 10)), states) < 0.1)


def test_experiment_script_imports_the_core_probe():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "state_probe.py"
    spec = importlib.util.spec_from_file_location("state_probe_script", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.probe_states is probe_states and callable(script.visited)


def test_pretrain_and_align_report_the_probe_of_an_env_with_a_state(tmp_path, capsys):
    from gmc_rl.cli import main

    data, out = tmp_path / "data", tmp_path / "gmc"
    small = ["--latent-dim", "4", "--common-dim", "8", "--head-hidden", "8", "--conv-channels", "4", "4",
             "--mlp-hidden", "8", "--batch-size", "16"]
    assert main(["collect", "--env", "gmc_rl/CartPoleSensors-v0", "--steps", "200", "--n-envs", "2",
                 "--val-fraction", "0.3", "--out", str(data), "--quiet"]) == 0
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet", *small]) == 0
    written = json.loads((out / "state_probe.json").read_text())
    assert written["variables"] == ["x", "x_dot", "theta", "theta_dot"]
    assert set(written["knn_r2"]) == {"complete", "image", "joints", "sound"}
    capsys.readouterr()
    assert main(["align", "--model", str(out), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "State probe on val" in printed and "theta_dot" in printed
    for name in written["unreadable"]["complete"]:
        assert f"warning: state variable {name!r}" in printed
    assert main(["align", "--model", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state_probe"]["knn_r2"] == written["knn_r2"]


@pytest.mark.parametrize("observations, states, says", [
    ({}, np.zeros((40, 3)), "as a mapping of modality arrays, got dict {}"),
    (None, np.zeros((40, 3)), "got NoneType"),
    ({"a": np.zeros((40, 2), np.float32)}, np.zeros((40, 3), np.complex64), "real-valued states, got dtype complex64"),
    ({"a": np.zeros((40, 2), np.float32)}, np.full((40, 3), "x"), "real-valued states, got dtype <U1"),
    ({"a": np.zeros((40, 2), np.float32)}, np.full((40, 3), None), "real-valued states, got dtype object"),
])
def test_observations_and_states_of_the_wrong_kind_are_refused_by_name(observations, states, says):
    """Before, an empty mapping raised a raw StopIteration, str or object states a raw TypeError, and complex
    states were cast to real without a word."""
    with pytest.raises(DatasetError, match=re.escape(says)):
        probe_states(TableEncoder(), observations, states, ["x", "y", "speed"])
