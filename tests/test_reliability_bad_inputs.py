"""Catalogue of bad inputs: each one raises a gmc-rl error of the right type whose message names the culprit.

Every test below is one row of the table in docs/reliability.md. Where a file or directory was about to be
written, the test also checks that nothing (or nothing partial) was left behind, so that a corrected rerun starts
clean. The envs here are tiny and local (an 8x8 image and a 3-vector), except where the registered ``gmc_rl/``
ids are the point of the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import PAIR_ID, SMALL_MODEL, PairEnv, copy_of, pair_config

from gmc_rl.checkpoint import check_space_matches, load_gmc, save_gmc
from gmc_rl.collect import collect
from gmc_rl.config import (
    AgentConfig,
    CollectConfig,
    EvaluateConfig,
    ExperimentConfig,
    PretrainConfig,
    from_dict,
    load_config,
)
from gmc_rl.data import load_dataset
from gmc_rl.errors import CheckpointError, ConfigError, DatasetError, ModalityError, SensorValueError
from gmc_rl.model import GMCModel
from gmc_rl.pretrain import pretrain
from gmc_rl.wrappers import GMCLatent, ModalityDropout, NonFiniteGuard, make_latent_env
from gmc_rl.wrappers.conditions import parse_condition


def files_in(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes); empty if ``path`` does not exist."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_inputs")


@pytest.fixture(scope="module")
def dataset(workdir) -> Path:
    return collect(pair_config(), workdir / "data", progress=False)


@pytest.fixture(scope="module")
def checkpoint(workdir) -> Path:
    """A GMC checkpoint of the PairEnv (random weights: these tests are about loading, not accuracy)."""
    torch.manual_seed(0)
    model = GMCModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    return save_gmc(model, workdir / "gmc", {"env_id": PAIR_ID})


@pytest.fixture(scope="module")
def model(checkpoint) -> GMCModel:
    return load_gmc(checkpoint)


# ----------------------------------------------------------------------------------------------------------------
# Environments and observation spaces.


def test_env_without_dict_observations_is_refused_and_writes_nothing(tmp_path):
    config = ExperimentConfig(env_id="Pendulum-v1", collect=CollectConfig(steps=20, n_envs=1))
    with pytest.raises(ModalityError, match="needs a Dict observation space") as error:
        collect(config, tmp_path / "data", progress=False)
    assert "Box" in str(error.value)
    assert files_in(tmp_path / "data") == {}


@pytest.mark.parametrize(
    ("layout", "fragments"),
    [
        ("one", ["at least 2 modalities", "['vec']"]),
        ("discrete", ["modality 'button'", "Discrete(2)", "only Box"]),
        ("plus", ["'left+right'", "separators"]),
    ],
)
def test_unusable_observation_spaces_name_the_modality(layout, fragments):
    env = PairEnv(layout=layout)
    with pytest.raises(ModalityError) as error:
        ModalityDropout(env, p=0.2)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize("env_id", ["gmc_rl/PendulumSond-v0", "MyRobot-v3"])
def test_unregistered_env_id_lists_the_registered_gmc_rl_ids(env_id, tmp_path, checkpoint):
    from gmc_rl.agents import train_agent
    from gmc_rl.pipeline import run_pipeline

    config = ExperimentConfig(env_id=env_id, collect=CollectConfig(steps=20, n_envs=1))
    calls = {
        "collect": lambda: collect(config, tmp_path / "data", progress=False),
        "train": lambda: train_agent(config, "state", 0, tmp_path / "agent", progress_bar=False),
        "pipeline": lambda: run_pipeline(config, tmp_path / "run", progress=False, log=lambda message: None),
        "latent env": lambda: make_latent_env(env_id, checkpoint),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError) as error:
            call()
        message = str(error.value)
        assert repr(env_id) in message, name
        assert "gmc_rl/PendulumSound-v0" in message and "gmc_rl/CartPoleSensors-v0" in message, name
        if env_id.startswith("gmc_rl/"):
            assert "Did you mean 'gmc_rl/PendulumSound-v0'" in message, name
    for out in ("data", "agent", "run"):
        assert files_in(tmp_path / out) == {}, out
    assert not (tmp_path / "run").exists()  # a typo must not leave a run directory that then refuses the fix


def test_unknown_env_kwarg_is_named_with_the_valid_ones(tmp_path):
    config = ExperimentConfig(env_kwargs={"image_sise": 32}, collect=CollectConfig(steps=20, n_envs=1))
    with pytest.raises(ConfigError, match="'image_sise'") as error:
        collect(config, tmp_path / "data", progress=False)
    assert "Did you mean 'image_size'" in str(error.value)
    assert files_in(tmp_path / "data") == {}


# ----------------------------------------------------------------------------------------------------------------
# Unknown modality names, wherever they are given.


def test_unknown_modality_names_are_refused_everywhere(model):
    env = gym.make(PAIR_ID)
    cases = {
        "GMCLatent": lambda: GMCLatent(env, model, modalities=["vex"]),
        "ModalityDropout": lambda: ModalityDropout(env, drop=["sound"]),
        "condition": lambda: parse_condition("imgae", ["image", "vec"]),
        "condition subset": lambda: parse_condition("image+sound", ["image", "vec"]),
        "noise condition": lambda: parse_condition("noise:sound:0.1", ["image", "vec"]),
        "encode": lambda: model.encode({"image": np.zeros((1, 1, 8, 8), np.uint8)}, modalities=["sound"]),
    }
    for name, call in cases.items():
        with pytest.raises(ModalityError) as error:
            call()
        message = str(error.value)
        assert "unknown modality" in message and "'image'" in message and "'vec'" in message, name
    with pytest.raises(ModalityError, match="Did you mean 'vec'"):
        GMCLatent(env, model, modalities=["vex"])


def test_modalities_given_as_a_string_instead_of_a_list(model):
    with pytest.raises(ModalityError, match=r"got the string 'vec'; use \['vec'\]"):
        GMCLatent(gym.make(PAIR_ID), model, modalities="vec")


# ----------------------------------------------------------------------------------------------------------------
# An env that does not match the checkpoint.


@pytest.mark.parametrize(
    ("layout", "fragments"),
    [
        ("wide", ["modality 'image'", "expected shape (1, 8, 8), got (1, 9, 8)"]),
        ("float64", ["modality 'vec'", "expected dtype float32, got float64"]),
        ("discrete", ["Discrete", "only Box"]),
        ("one", ["at least 2 modalities"]),
    ],
)
def test_env_checkpoint_mismatch_names_each_difference(layout, fragments, model, checkpoint):
    env = PairEnv(layout=layout)
    for call in (lambda: check_space_matches(model, env.observation_space), lambda: GMCLatent(env, checkpoint)):
        with pytest.raises(CheckpointError) as error:
            call()
        for fragment in fragments:
            assert fragment in str(error.value)


def test_missing_and_extra_modalities_are_named(model):
    space = spaces.Dict({"image": spaces.Box(0, 255, (1, 8, 8), np.uint8),
                         "sound": spaces.Box(-1, 1, (3,), np.float32)})
    with pytest.raises(CheckpointError, match=r"modalities \['vec'\] are expected but missing") as error:
        check_space_matches(model, space)
    assert "modalities ['sound'] are present but not expected" in str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Sensor values.


def test_nan_sensor_value_stops_with_the_modality_and_step(checkpoint):
    env = GMCLatent(NonFiniteGuard(PairEnv(nan_at=2)), checkpoint)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(SensorValueError) as error:
        env.step(env.action_space.sample())
    message = str(error.value)
    assert "modality 'vec' (1 NaN, 0 inf)" in message and "step 2" in message and "on_nonfinite='drop'" in message


def test_inf_in_a_batch_given_to_the_encoder(model):
    batch = {"image": np.zeros((2, 1, 8, 8), np.uint8), "vec": np.zeros((2, 3), np.float32)}
    batch["vec"][1, 2] = np.inf
    with pytest.raises(SensorValueError, match="modality 'vec' contains NaN or inf"):
        model.encode(batch)
    # without the guard the wrapper stack refuses it too (no silent NaN latent)
    env = GMCLatent(PairEnv(nan_at=1), model)
    env.reset(seed=0)
    with pytest.raises(SensorValueError, match="'vec'"):
        env.step(env.action_space.sample())


def test_observation_of_the_wrong_dtype_or_shape(model):
    with pytest.raises(ModalityError, match="modality 'image': expected dtype uint8"):
        model.encode({"image": np.zeros((2, 1, 8, 8), np.float32), "vec": np.zeros((2, 3), np.float32)})
    with pytest.raises(ModalityError,
                       match=r"modality 'image': expected a batch of shape \(B, 1, 8, 8\), got \(1, 8, 8\)"):
        model.encode({"image": np.zeros((1, 8, 8), np.uint8), "vec": np.zeros((1, 3), np.float32)})


# ----------------------------------------------------------------------------------------------------------------
# Datasets.


def _empty_file(directory: Path) -> None:
    (directory / "train.npz").write_bytes(b"")


def _truncated_file(directory: Path) -> None:
    data = (directory / "val.npz").read_bytes()
    (directory / "val.npz").write_bytes(data[: len(data) // 2])


def _edited_array(directory: Path) -> None:
    with np.load(directory / "train.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["vec"] = arrays["vec"][:, :2]
    np.savez(directory / "train.npz", **arrays)


def _edited_values(directory: Path) -> None:
    with np.load(directory / "train.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["rewards"] = arrays["rewards"] * 2  # same shape and dtype: only the recorded SHA-256 can tell
    np.savez(directory / "train.npz", **arrays)


def _no_metadata(directory: Path) -> None:
    (directory / "metadata.json").unlink()


def _flipped_byte(directory: Path) -> None:
    data = bytearray((directory / "val.npz").read_bytes())
    data[len(data) // 3] ^= 0xFF
    (directory / "val.npz").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "fragments"),
    [
        (_empty_file, ["train.npz", "truncated or corrupted"]),
        (_truncated_file, ["val.npz", "truncated or corrupted"]),
        (_flipped_byte, ["val.npz"]),
        (_edited_array, ["train.npz", "array 'vec' is float32[", ", 2]", "metadata says float32["]),
        (_edited_values, ["train.npz does not match the SHA-256 recorded in metadata.json"]),
        (_no_metadata, ["metadata.json is missing", "gmc-rl collect"]),
    ],
    ids=["empty", "truncated", "flipped-byte", "edited-array", "edited-values", "no-metadata"],
)
def test_damaged_dataset_is_refused(damage, fragments, dataset, tmp_path):
    broken = copy_of(dataset, tmp_path)
    damage(broken)
    with pytest.raises(DatasetError) as error:
        load_dataset(broken)
    for fragment in fragments:
        assert fragment in str(error.value)
    if damage is _flipped_byte:  # caught by the zip CRC or by the SHA-256 that metadata.json records
        assert "truncated or corrupted" in str(error.value) or "does not match the SHA-256" in str(error.value)
    with pytest.raises(DatasetError):  # pretraining on it stops before writing anything
        pretrain(pair_config(), broken, tmp_path / "gmc", progress=False)
    assert files_in(tmp_path / "gmc") == {}


def test_dataset_of_another_env(dataset, tmp_path):
    config = pair_config()
    config.env_id = "gmc_rl/PendulumSound-v0"
    with pytest.raises(ConfigError, match=f"collected on '{PAIR_ID}'.*'gmc_rl/PendulumSound-v0'"):
        pretrain(config, dataset, tmp_path / "gmc", progress=False)
    assert files_in(tmp_path / "gmc") == {}


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints.


def test_truncated_checkpoint_weights(checkpoint, tmp_path):
    broken = copy_of(checkpoint, tmp_path)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="SHA-256 differs") as error:
        load_gmc(broken)
    assert "model.safetensors" in str(error.value)


def test_truncated_weights_with_a_matching_hash_are_still_refused(checkpoint, tmp_path):
    from gmc_rl.data import file_sha256

    broken = copy_of(checkpoint, tmp_path)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    config = json.loads((broken / "config.json").read_text())
    config["weights_sha256"] = file_sha256(weights)
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_gmc(broken)


def test_edited_checkpoint_config(checkpoint, tmp_path):
    broken = copy_of(checkpoint, tmp_path)
    (broken / "config.json").write_text('{"format": "gmc-rl/gmc-checkpoint", ')
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_gmc(broken)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        ({"latent_dim": 6}, ["do not fit the architecture", "head.net.2.weight: (4, 8) vs model (6, 8)"]),
        ({"conv_channels": [4, 8]}, ["do not fit the architecture", "missing ["]),
        ({"activation": "gelu"}, ["describes no valid GMC model", "unknown activation 'gelu'"]),
    ],
)
def test_checkpoint_config_describing_another_architecture(edit, fragments, checkpoint, tmp_path):
    broken = copy_of(checkpoint, tmp_path)
    config = json.loads((broken / "config.json").read_text())
    config["model"].update(edit)
    if "latent_dim" in edit:
        config["latent_dim"] = edit["latent_dim"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as error:
        load_gmc(broken)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_pickle_payload_in_place_of_weights_is_refused_unexecuted(checkpoint, tmp_path):
    from gmc_rl.data import file_sha256

    marker = tmp_path / "code-ran"
    broken = copy_of(checkpoint, tmp_path)
    (broken / "model.safetensors").write_bytes(_malicious_pickle(marker))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_gmc(broken)
    config = json.loads((broken / "config.json").read_text())  # an attacker can update the hash too
    config["weights_sha256"] = file_sha256(broken / "model.safetensors")
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_gmc(broken)
    assert not marker.exists()


def _malicious_pickle(marker: Path) -> bytes:
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    return pickle.dumps(Payload())


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_gmc(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        make_latent_env(PAIR_ID, tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------------------------
# Configs.


def test_unknown_yaml_key_lists_the_valid_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("name: typo\npretrain:\n  epochs: 3\n  batch_sise: 64\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "'pretrain.batch_sise'" in message
    assert "['epochs', 'batch_size', 'lr', 'temperature'" in message and "Did you mean 'batch_size'?" in message
    path.write_text("seed: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'seed'.*'seeds'.*Did you mean 'seeds'"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("pretrain:\n  epochs: ten\n", ["'pretrain.epochs'", "must be an integer, got 'ten'"]),
        ("pretrain:\n  lr: .inf\n", ["'pretrain.lr'", "finite"]),
        ("evaluate:\n  conditions: image\n", ["'evaluate.conditions'", "must be a list"]),
        ("pretrain: [1, 2]\n", ["'pretrain'", "must be a mapping"]),
        ("seeds: [0, 0]\n", ["'seeds'", "twice"]),
        ("seeds: [-1]\n", ["'seeds[0]'", "[0, 2**32)"]),
        ("pretrain: {epochs: 3\n", ["not valid YAML"]),
        ("- a list\n", ["must be a mapping, got list"]),
    ],
)
def test_mistyped_config_values(text, fragments, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("collect", "steps", 0),
        ("collect", "steps", -100),
        ("collect", "n_envs", 0),
        ("pretrain", "epochs", 0),
        ("pretrain", "epochs", -1),
        ("pretrain", "batch_size", 0),
        ("pretrain", "batch_size", 1),
        ("pretrain", "lr", 0.0),
        ("pretrain", "checkpoint_every", 0),
        ("agent", "total_timesteps", 0),
        ("agent", "total_timesteps", -5),
        ("agent", "n_envs", 0),
        ("evaluate", "episodes", 0),
        ("evaluate", "n_envs", -2),
    ],
)
def test_zero_or_negative_counts(section, key, value):
    with pytest.raises(ConfigError, match=f"config key '{section}.{key}'") as error:
        from_dict(ExperimentConfig, {section: {key: value}})
    assert str(value) in str(error.value)
    classes = {"collect": CollectConfig, "pretrain": PretrainConfig, "agent": AgentConfig, "evaluate": EvaluateConfig}
    cls = classes[section]
    with pytest.raises(ConfigError, match=f"'{section}.{key}'"):  # the Python API checks the same
        cls(**{key: value})


@pytest.mark.parametrize("temperature", [0.0, -0.3, float("inf"), float("nan")])
def test_temperature_must_be_positive_and_finite(temperature):
    with pytest.raises(ConfigError, match="'pretrain.temperature'"):
        PretrainConfig(temperature=temperature)
    with pytest.raises(ConfigError, match="'pretrain.temperature'"):
        from_dict(ExperimentConfig, {"pretrain": {"temperature": temperature}})


def test_values_of_the_wrong_type_in_the_python_api():
    with pytest.raises(ConfigError, match="'pretrain.epochs': must be an integer, got '3'"):
        PretrainConfig(epochs="3")
    with pytest.raises(ConfigError, match="'agent.hyperparams': must be a mapping"):
        AgentConfig(hyperparams=["learning_rate", 0.001])
    assert PretrainConfig(epochs=np.int64(3)).epochs == 3  # numpy integers are fine


def test_batch_size_larger_than_the_dataset(dataset, tmp_path):
    n_train = len(load_dataset(dataset).train["rewards"])
    with pytest.raises(ConfigError) as error:
        pretrain(pair_config(batch_size=1000), dataset, tmp_path / "gmc", progress=False)
    message = str(error.value)
    assert "'pretrain.batch_size'" in message and "1000" in message and f"the {n_train} samples" in message
    assert files_in(tmp_path / "gmc") == {}


@pytest.mark.parametrize("p", [1.5, -0.1, float("nan")])
def test_dropout_probability_outside_zero_one(p):
    with pytest.raises(ConfigError, match="dropout probability p must be a number in"):
        ModalityDropout(gym.make(PAIR_ID), p=p)


def test_dropout_condition_outside_its_range():
    with pytest.raises(ConfigError, match=r"condition 'dropout:1.5': the dropout probability must be in \[0, 0.5\]"):
        parse_condition("dropout:1.5", ["image", "vec"])
    with pytest.raises(ConfigError, match="dropout probability p=0.9 is too high with keep_one=True"):
        ModalityDropout(gym.make(PAIR_ID), p=0.9)


def test_algorithm_that_cannot_drive_the_action_space(tmp_path):
    from gmc_rl.agents import train_agent

    config = ExperimentConfig(agent=AgentConfig(algo="dqn", total_timesteps=10))
    with pytest.raises(ConfigError, match="'dqn' needs a Discrete action space") as error:
        train_agent(config, "state", 0, tmp_path / "agent", progress_bar=False)
    assert "Box" in str(error.value)
    assert files_in(tmp_path / "agent") == {}


# ----------------------------------------------------------------------------------------------------------------
# Output directories.


def test_output_directory_holding_a_run_with_another_config(dataset, tmp_path):
    out = tmp_path / "gmc"
    pretrain(pair_config(), dataset, out, progress=False)
    before = files_in(out)
    with pytest.raises(ConfigError) as error:
        pretrain(pair_config(lr=5e-3), dataset, out, progress=False)
    message = str(error.value)
    assert str(out) in message and "pretrain.lr: 0.001 -> 0.005" in message and "not overwritten" in message
    assert files_in(out) == before

    data_before = files_in(dataset)
    other = pair_config()
    other.collect.steps = 80
    with pytest.raises(DatasetError, match=r"collected with different settings.*'steps': 60.*'steps': 80"):
        collect(other, dataset, progress=False)
    assert files_in(dataset) == data_before


def test_pipeline_run_directory_with_another_config(tmp_path):
    from gmc_rl.pipeline import prepare_run_dir

    run = prepare_run_dir(ExperimentConfig(), tmp_path / "run")
    before = files_in(run)
    with pytest.raises(ConfigError, match=r"changed keys:\n  pretrain.epochs: 40 -> 7") as error:
        prepare_run_dir(ExperimentConfig(pretrain=PretrainConfig(epochs=7)), run)
    assert "--update" in str(error.value)
    assert files_in(run) == before


def _writable(directory: Path) -> bool:
    try:
        (directory / ".probe").write_bytes(b"")
    except OSError:
        return False
    (directory / ".probe").unlink()
    return True


@contextlib.contextmanager
def unwritable_directory(base: Path):
    """An existing directory in which creating a file really fails, and how that was achieved.

    Permissions are tried first; as root (CI) they are ignored, so the immutable attribute (``chattr +i``) comes
    next; where that is unavailable too (e.g. tmpfs, or no CAP_LINUX_IMMUTABLE), the last resort is a path below
    a regular file, where creating anything fails as well. The test is never skipped.
    """
    directory = base / "readonly"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        if not _writable(directory):
            yield directory, "chmod 555"
            return
        if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(directory)],
                                                     capture_output=True).returncode == 0:
            try:
                if not _writable(directory):
                    yield directory, "chattr +i"
                    return
            finally:
                subprocess.run(["chattr", "-i", str(directory)], capture_output=True)
        blocker = base / "blocker"
        blocker.write_text("a regular file")
        yield blocker / "readonly", "path below a regular file"
    finally:
        directory.chmod(0o755)


def test_read_only_output_directory(dataset, tmp_path):
    with unwritable_directory(tmp_path) as (readonly, how):
        assert not readonly.is_dir() or not _writable(readonly), how
        cases = {
            "collect into it": (lambda: collect(pair_config(), readonly, progress=False), "not writable"),
            "collect below it": (lambda: collect(pair_config(), readonly / "data", progress=False), "cannot create"),
            "pretrain into it": (lambda: pretrain(pair_config(), dataset, readonly / "gmc", progress=False),
                                 "cannot create"),
        }
        for name, (call, fragment) in cases.items():
            with pytest.raises(PermissionError) as error:
                call()
            message = str(error.value)
            assert str(readonly) in message, (name, how)
            if how != "path below a regular file":
                assert fragment in message, (name, how)
        if readonly.is_dir():
            assert os.listdir(readonly) == []


def test_output_path_below_a_regular_file(dataset, tmp_path):
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match=f"{blocker} is a regular file, not a directory"):
        collect(pair_config(), blocker / "data", progress=False)
    with pytest.raises(PermissionError, match=f"{blocker} is a regular file, not a directory"):
        pretrain(pair_config(), dataset, blocker / "gmc", progress=False)
    assert blocker.read_text() == "not a directory"


# ----------------------------------------------------------------------------------------------------------------
# The command line shows these errors as one clear line, not a traceback.


def test_cli_reports_bad_input_as_one_line(dataset, tmp_path, capsys):
    from gmc_rl.cli import main

    assert main(["pretrain", "--data", str(dataset), "--out", str(tmp_path / "gmc"), "--epochs", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gmc-rl pretrain: error: config key 'pretrain.epochs': must be positive, got 0")
    assert "Traceback" not in err
    assert main(["collect", "--env", "gmc_rl/PendulumSond-v0", "--out", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gmc-rl collect: error: ") and "'gmc_rl/PendulumSond-v0'" in err
    assert "'gmc_rl/CartPoleSensors-v0'" in err and "Did you mean 'gmc_rl/PendulumSound-v0'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "gmc").exists()
    # what the flag parser itself refuses (a type, an unknown key of an inline or file section, a missing value, an
    # unknown flag) is one line too, naming the key
    section = tmp_path / "section.yaml"
    section.write_text("epochs: many\n")
    base = ["pretrain", "--data", str(dataset), "--out", str(tmp_path / "gmc")]
    for flags, words in ((["--pretrain.epochs", "abc"], "config key 'pretrain.epochs': expected int, got abc"),
                         (["--pretrain", '{"epochz": 3}'], "does not accept option 'epochz'"),
                         (["--pretrain", '{"epochs": "abc"}'], "config key 'pretrain.epochs': expected int"),
                         (["--pretrain", str(section)], "config key 'pretrain.epochs': expected int, got many"),
                         (["--epochs"], "argument --epochs: expected one argument"),
                         (["--epochz", "3"], "unrecognized arguments: --epochz 3")):
        with pytest.raises(SystemExit) as exit_info:  # argparse's way out, as `gmc-rl` exits
            main([*base, *flags])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("gmc-rl pretrain: error: ") and words in err, (flags, err)
        assert err.count("\n") == 1 and "usage:" not in err, (flags, err)
    assert not (tmp_path / "gmc").exists()


@pytest.mark.parametrize("hyperparams, message", [
    ({"gama": 0.9}, r"'gama' is not an argument of SAC \(sac\).*Did you mean 'gamma'"),
    ({"policy_kwargs": {"activation_fn": "os.system"}}, "unknown activation 'os.system'"),
    ({"policy_kwargs": "dict(net_arch=[8])"}, "strings like .* are not evaluated"),
    ({"action_noise": {"kind": "nosuch"}}, "action_noise"),
])
def test_hyperparameters_the_algorithm_refuses_stop_the_pipeline_before_anything_is_written(tmp_path, hyperparams,
                                                                                            message):
    """Row 49: before, these were refused only when the first agent trained, after collection and pretraining."""
    from helpers import tiny_config

    from gmc_rl.pipeline import run_pipeline

    config = tiny_config("gmc_rl/PendulumSound-v0", ["gmc", "state"], agent={"hyperparams": hyperparams})
    with pytest.raises(ConfigError, match=message):
        run_pipeline(config, tmp_path / "run", progress=False, log=lambda line: None)
    assert not (tmp_path / "run").exists()
    only_raw = tiny_config("gmc_rl/PendulumSound-v0", ["gmc"], agent={"method_hyperparams": {"gmc": hyperparams}})
    with pytest.raises(ConfigError, match=message):  # a method's own hyperparameters too
        run_pipeline(only_raw, tmp_path / "run2", progress=False, log=lambda line: None)
    assert not (tmp_path / "run2").exists()
