"""Loading what others wrote, by what is inside it: env ids that would import code, unhashed or non-finite weights,
JSON files of the wrong shape, the permissions of written files, unhashed dataset metadata and unavailable devices.

Each test is a row of the catalogue in docs/reliability.md. Files are damaged the way a person or a crafted
artifact would damage them (keys removed, values of another type, weights edited with the hash recomputed), and
every refusal must be the project's error naming the file and the key (or the tensor), never a raw KeyError,
TypeError, RecursionError, nor code run from the artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from helpers import PAIR_ID, SMALL_MODEL, pair_config
from safetensors.torch import load_file, save_file

from gmc_rl.checkpoint import load_gmc, load_training_state, resolve_device, save_gmc, save_training_state
from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.config import AgentConfig, ExperimentConfig, config_hash
from gmc_rl.data import file_sha256, load_dataset
from gmc_rl.errors import CheckpointError, ConfigError, DatasetError
from gmc_rl.model import GMCModel

DEEP = "[" * 100_000 + "]" * 100_000
"""Valid JSON nested 100,000 levels deep: Python's parser stops with a RecursionError."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifact_contents")


@pytest.fixture(scope="module")
def agent_dir(workdir) -> Path:
    """A tiny finished SAC agent on the true state of PendulumSound."""
    from gmc_rl.agents import train_agent

    config = ExperimentConfig(agent=AgentConfig(
        algo="sac", total_timesteps=64, eval_freq=0, checkpoint_freq=32, device="cpu",
        hyperparams={"learning_starts": 1000, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}}))
    return train_agent(config, "state", 0, workdir / "agent", progress_bar=False)


@pytest.fixture(scope="module")
def checkpoint(workdir) -> Path:
    model = GMCModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    return save_gmc(model, workdir / "gmc", {"env_id": PAIR_ID})


@pytest.fixture(scope="module")
def mvae_checkpoint(workdir) -> Path:
    from gmc_rl.mvae import save_mvae
    from gmc_rl.mvae.model import MVAEModel

    model = MVAEModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    return save_mvae(model, workdir / "mvae", {"note": "random weights"})


@pytest.fixture(scope="module")
def dataset(workdir) -> Path:
    return collect(pair_config(), workdir / "data", progress=False)


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def edit_json(path: Path, edit) -> None:
    """Apply ``edit`` to the parsed JSON file at ``path`` and write it back."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def set_env_id(agent: Path, env_id: str) -> None:
    """Give an agent another env id everywhere agent.json names it (so it agrees with itself)."""
    def edit(info: dict) -> None:
        info["env_id"] = info["config"]["env_id"] = info["identity"]["env_id"] = env_id
        info["config_hash"] = config_hash(info["config"])

    edit_json(agent / "agent.json", edit)


def unavailable_cuda() -> str:
    """A CUDA device this machine does not have: "cuda" without CUDA, else one past the last GPU."""
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


# ----------------------------------------------------------------------------------------------------------------
# Env ids: files that travel with an artifact never make gmc-rl import anything.


@pytest.mark.parametrize("module", ["payload_contents", "this"])
def test_agent_env_id_naming_a_module_is_refused_without_importing_it(module, agent_dir, tmp_path, monkeypatch,
                                                                      capsys):
    from gmc_rl.agents import load_agent
    from gmc_rl.agents.agent_dir import read_agent_json

    marker = tmp_path / "code-ran"
    agent = copy_of(agent_dir, tmp_path)
    (agent / "payload_contents.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    set_env_id(agent, f"{module}:gmc_rl/PendulumSound-v0")
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.chdir(agent)  # loaded from its own folder, where payload_contents.py would be importable
    monkeypatch.syspath_prepend(str(agent))
    for load in (load_agent, read_agent_json):  # read_agent_json: also `gmc-rl train --resume`
        with pytest.raises(ConfigError, match=f"names module '{module}', which is not imported.*with --import "
                                              f"{module} .*import {module} before loading"):
            load(agent)
    assert main(["evaluate", "--agent", str(agent), "--episodes", "1", "--no-progress"]) == 2
    assert f"names module '{module}', which is not imported" in capsys.readouterr().err
    assert module not in sys.modules
    assert not marker.exists(), "the payload next to agent.json was imported"


def test_agent_env_id_of_an_already_imported_module_loads(agent_dir, tmp_path):
    from gmc_rl.agents import load_agent

    agent = copy_of(agent_dir, tmp_path)
    set_env_id(agent, "gmc_rl:gmc_rl/PendulumSound-v0")  # gmc_rl is imported: nothing new runs
    assert load_agent(agent).env_id == "gmc_rl:gmc_rl/PendulumSound-v0"


def test_config_ids_import_the_users_module_and_artifact_ids_do_not(tmp_path, monkeypatch):
    from gmc_rl.env_ids import check_env_id

    (tmp_path / "my_envs_contents.py").write_text(
        "import gymnasium as gym\n"
        "gym.register('contents/Pair-v0', entry_point='helpers:PairEnv', max_episode_steps=5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_envs_contents", raising=False)
    env_id = "my_envs_contents:contents/Pair-v0"
    with pytest.raises(ConfigError, match="agent.json: env_id 'my_envs_contents:contents/Pair-v0' names module"):
        check_env_id(env_id, allow_import=False, source="agent.json")
    assert "my_envs_contents" not in sys.modules
    try:
        check_env_id(env_id, allow_import=True)  # the user's config names it: imported, and it registers the env
        assert "my_envs_contents" in sys.modules and "contents/Pair-v0" in gym.registry
        check_env_id(env_id, allow_import=False, source="agent.json")  # now imported by the user: accepted
    finally:
        gym.registry.pop("contents/Pair-v0", None)


def test_one_env_id_check_for_configs_and_collection():
    import gmc_rl.config
    import gmc_rl.rollout
    from gmc_rl.agents import observations
    from gmc_rl.env_ids import check_env_id

    assert not hasattr(gmc_rl.config, "check_env_id")
    # collection makes its envs in gmc_rl.rollout (make_env_fns)
    assert gmc_rl.rollout.check_env_id is check_env_id and observations.check_env_id is check_env_id
    with pytest.raises(TypeError, match="allow_import"):
        check_env_id("gmc_rl/PendulumSound-v0")  # the caller must say where the id comes from


@pytest.mark.parametrize(("edit", "fragments"), [
    (lambda info: info.update(env_id="gmc_rl/CartPoleSensors-v0"),
     ["key 'env_id' is 'gmc_rl/CartPoleSensors-v0' but 'config.env_id' is 'gmc_rl/PendulumSound-v0'"]),
    (lambda info: info.update(algo="td3"), ["key 'algo' is 'td3' but 'config.agent.algo' is 'sac'"]),
    (lambda info: info.update(seed=7), ["key 'seed' is 7 but 'identity.seed' is 0"]),
    (lambda info: info["config"]["agent"].update(total_timesteps=10), ["does not match its 'config_hash'"]),
], ids=["env_id", "algo", "seed", "config"])
def test_agent_json_that_contradicts_itself_is_refused(edit, fragments, agent_dir, tmp_path):
    from gmc_rl.agents import load_agent

    agent = copy_of(agent_dir, tmp_path)
    edit_json(agent / "agent.json", edit)
    with pytest.raises(CheckpointError) as error:
        load_agent(agent)
    for fragment in ["agent.json", *fragments]:
        assert fragment in str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Weights: the hash is required, and non-finite weights are refused even with a matching hash.


def _remove_hash(config: dict) -> None:
    del config["weights_sha256"]


@pytest.mark.parametrize("kind", ["gmc", "mvae"])
def test_checkpoint_without_the_weights_hash_is_refused(kind, checkpoint, mvae_checkpoint, tmp_path):
    from gmc_rl.mvae import load_mvae

    load = load_gmc if kind == "gmc" else load_mvae
    broken = copy_of(checkpoint if kind == "gmc" else mvae_checkpoint, tmp_path)
    edit_json(broken / "config.json", _remove_hash)
    with pytest.raises(CheckpointError, match=r"config.json lacks the required key 'weights_sha256'"):
        load(broken)


@pytest.mark.parametrize("kind", ["gmc", "mvae"])
def test_nan_weights_with_a_recomputed_hash_are_refused(kind, checkpoint, mvae_checkpoint, tmp_path):
    from gmc_rl.mvae import load_mvae
    from gmc_rl.wrappers import make_latent_env

    load = load_gmc if kind == "gmc" else load_mvae
    broken = copy_of(checkpoint if kind == "gmc" else mvae_checkpoint, tmp_path)
    weights = broken / "model.safetensors"
    tensors = load_file(str(weights))
    name = next(key for key, value in tensors.items() if value.is_floating_point() and value.numel() > 1)
    tensors[name].view(-1)[0] = float("nan")  # one value
    save_file(tensors, str(weights))
    edit_json(broken / "config.json", lambda config: config.update(weights_sha256=file_sha256(weights)))
    with pytest.raises(CheckpointError, match=rf"model.safetensors: tensor '{name}' holds 1 non-finite value"):
        load(broken)
    if kind == "gmc":  # the latent env does not come up emitting NaN latents
        with pytest.raises(CheckpointError, match=f"tensor '{name}'"):
            make_latent_env(PAIR_ID, broken)


def test_training_state_without_model_or_with_nan_weights_is_refused(checkpoint, tmp_path):
    weights = load_gmc(checkpoint).state_dict()
    save_training_state(tmp_path / "last", {"epoch": 2, "optimizer": {}, "history": []})
    with pytest.raises(CheckpointError, match="trainer_state.pt lacks the required key 'model'"):
        load_training_state(tmp_path / "last")
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights = {**weights, name: torch.full_like(weights[name], float("inf"))}
    save_training_state(tmp_path / "last", {"epoch": 2, "model": weights})
    with pytest.raises(CheckpointError, match=rf"trainer_state.pt \(entry 'model'\): tensor '{name}' holds"):
        load_training_state(tmp_path / "last")
    save_training_state(tmp_path / "last", {"epoch": "2", "model": weights})
    with pytest.raises(CheckpointError, match="trainer_state.pt: key 'epoch' must be an integer, got a string '2'"):
        load_training_state(tmp_path / "last")


# ----------------------------------------------------------------------------------------------------------------
# JSON files of the wrong shape: the project's error naming the file and the key.


def test_agent_json_of_the_wrong_shape(agent_dir, tmp_path):
    from gmc_rl.agents import load_agent

    cases = {
        "env_kwargs": ([1, 2], "key 'env_kwargs' must be an object, got an array [1, 2]"),
        "seed": ("0", "key 'seed' must be an integer, got a string '0'"),
        "config": (None, "key 'config' must be an object, got null"),
        "status": ("done", "key 'status' must be 'training' or 'complete'"),
    }
    for key, (value, fragment) in cases.items():
        agent = copy_of(agent_dir, tmp_path / key)
        edit_json(agent / "agent.json", lambda info, key=key, value=value: info.update({key: value}))
        with pytest.raises(CheckpointError, match="agent.json") as error:
            load_agent(agent)
        assert fragment in str(error.value), key
    agent = copy_of(agent_dir, tmp_path / "list")
    (agent / "agent.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="agent.json must be a JSON object, got an array"):
        load_agent(agent)


def test_checkpoint_config_of_the_wrong_shape(checkpoint, tmp_path):
    cases = {
        "provenance": ([["env_id", PAIR_ID]], "key 'provenance' must be an object, got an array"),
        "specs": ({"image": {}}, "key 'specs' must be an array, got an object"),
        "weights_sha256": ("not-a-hash", "key 'weights_sha256' must be 64 lower-case hex digits"),
        "modalities": ("image", "key 'modalities' must be an array, got a string"),
    }
    for key, (value, fragment) in cases.items():
        broken = copy_of(checkpoint, tmp_path / key)
        edit_json(broken / "config.json", lambda config, key=key, value=value: config.update({key: value}))
        with pytest.raises(CheckpointError, match="config.json") as error:
            load_gmc(broken)
        assert fragment in str(error.value), key


def _json_readers(text, agent_dir, checkpoint, dataset, tmp_path):
    """Every reader of gmc-rl's JSON files, each given a copy of its file holding ``text``: a list of (the call
    that reads it, the error it must raise, the file's name)."""
    from gmc_rl.agents import load_agent
    from gmc_rl.results import load_results, read_evaluation_record

    agent = copy_of(agent_dir, tmp_path / "agent")
    (agent / "agent.json").write_text(text)
    gmc = copy_of(checkpoint, tmp_path / "gmc")
    (gmc / "config.json").write_text(text)
    data = copy_of(dataset, tmp_path / "data")
    (data / "metadata.json").write_text(text)
    (tmp_path / "results.json").write_text(text)
    (tmp_path / "run.json").write_text(text)
    return [(lambda: load_agent(agent), CheckpointError, "agent.json"),
            (lambda: load_gmc(gmc), CheckpointError, "config.json"),
            (lambda: load_dataset(data), DatasetError, "metadata.json"),
            (lambda: load_results(tmp_path), ValueError, "results.json"),
            (lambda: read_evaluation_record(tmp_path / "run.json"), ConfigError, "run.json")]


def test_deeply_nested_json_is_refused_by_every_reader(agent_dir, checkpoint, dataset, tmp_path):
    from gmc_rl.io import read_sb3_data

    for call, error_class, name in _json_readers(DEEP, agent_dir, checkpoint, dataset, tmp_path):
        with pytest.raises(error_class, match=f"{name} is nested too deeply"):
            call()
    with zipfile.ZipFile(tmp_path / "policy.zip", "w") as archive:  # a behaviour policy given to collect.policy
        archive.writestr("data", DEEP)
    with pytest.raises(ValueError, match="policy.zip is not a Stable-Baselines3 model .zip .*nested too deeply"):
        read_sb3_data(tmp_path / "policy.zip")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_refused_by_every_reader(agent_dir, checkpoint, dataset, tmp_path, constant):
    """Python's json module reads NaN and +-Infinity, which JSON does not have and gmc-rl never writes: every
    reader of gmc-rl's JSON files refuses them, naming the file (the same readers as the nesting test above)."""
    text = '{"format": %s}' % constant
    for call, error_class, name in _json_readers(text, agent_dir, checkpoint, dataset, tmp_path):
        with pytest.raises(error_class, match=f"{name} holds {constant}, which is not JSON"):
            call()


def test_agent_checkpoint_index_of_the_wrong_shape(agent_dir, tmp_path):
    from gmc_rl.agents.checkpoints import latest_checkpoint

    agent = copy_of(agent_dir, tmp_path)
    latest = agent / "checkpoints" / "latest.json"
    good = json.loads(latest.read_text())
    for edit, fragment in [({"num_timesteps": "32"}, "key 'num_timesteps' must be an integer"),
                           ({"path": "../../elsewhere/step_32"}, "key 'path' must name a checkpoint folder"),
                           ({"replay_buffer": "yes"}, "key 'replay_buffer' must be true or false")]:
        latest.write_text(json.dumps({**good, **edit}))
        with pytest.raises(CheckpointError, match="latest.json") as error:
            latest_checkpoint(agent / "checkpoints")
        assert fragment in str(error.value)
    latest.write_text(json.dumps({"path": good["path"]}))
    with pytest.raises(CheckpointError, match="latest.json lacks the required key 'num_timesteps'"):
        latest_checkpoint(agent / "checkpoints")


def test_evaluation_records_and_results_of_the_wrong_shape(tmp_path):
    from gmc_rl.evaluate import summarize
    from gmc_rl.results import build_results, load_results, read_evaluation_record, write_results

    summary = summarize([({"seed": 0}, [1.0, 2.0], [10, 10])])
    record = {"agent": "agents/gmc-seed0", "method": "gmc", "env_id": PAIR_ID, "seeds": [0],
              "evaluation": {"complete": summary}}
    path = tmp_path / "gmc-seed0.json"
    path.write_text(json.dumps(record))
    assert read_evaluation_record(path)["method"] == "gmc"
    path.write_text(json.dumps({key: value for key, value in record.items() if key != "method"}))
    with pytest.raises(ConfigError, match="gmc-seed0.json lacks the required key 'method'"):
        read_evaluation_record(path)
    broken = json.loads(json.dumps(record))
    del broken["evaluation"]["complete"]["per_seed"][0]["returns"]
    path.write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match=r"lacks the required key 'evaluation.complete.per_seed\[0\].returns'"):
        read_evaluation_record(path)

    write_results(build_results({"gmc": {"complete": summary}}, env_id=PAIR_ID), tmp_path / "eval", plot=False)
    edit_json(tmp_path / "eval" / "results.json", lambda data: data.update(results=[1]))
    with pytest.raises(ConfigError, match="results.json: key 'results' must be an object, got an array"):
        load_results(tmp_path / "eval")


# ----------------------------------------------------------------------------------------------------------------
# Permissions: files and directories written atomically get the mode a plain open()/mkdir would give them.


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_weights_and_encoder_copies_get_the_umask_modes(umask, file_mode, dir_mode, tmp_path):
    from gmc_rl.agents.agent_dir import copy_encoder

    model = GMCModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    old = os.umask(umask)
    try:
        gmc = save_gmc(model, tmp_path / "gmc", {})
        save_training_state(gmc / "last", {"epoch": 0, "model": model.state_dict()})
        (tmp_path / "agent").mkdir()
        encoder = copy_encoder(gmc, tmp_path / "agent")
    finally:
        os.umask(old)
    assert encoder.stat().st_mode & 0o777 == dir_mode
    for path in (gmc / "model.safetensors", gmc / "config.json", gmc / "last" / "trainer_state.pt",
                 encoder / "model.safetensors", encoder / "config.json"):
        assert path.stat().st_mode & 0o777 == file_mode, path


# ----------------------------------------------------------------------------------------------------------------
# Dataset metadata: the archives' hashes are required, and the metadata's own hash catches its edits.


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda meta: meta.pop("files"), "metadata.json lacks the required key 'files'"),
    (lambda meta: meta["files"].pop("val.npz"), "metadata.json lacks the required key 'files.val.npz'"),
    (lambda meta: meta["files"]["train.npz"].pop("sha256"),
     "metadata.json lacks the required key 'files.train.npz.sha256'"),
    (lambda meta: meta.pop("metadata_sha256"), "metadata.json lacks the required key 'metadata_sha256'"),
    (lambda meta: meta.update(n_train="40"), "metadata.json: key 'n_train' must be an integer, got a string '40'"),
    (lambda meta: meta.update(normalization=[]), "metadata.json: key 'normalization' must be an object"),
    (lambda meta: meta["normalization"]["vec"]["mean"].__setitem__(0, 5.0),
     "metadata.json does not match the SHA-256 it records (metadata_sha256): the metadata was edited"),
], ids=["no-files", "no-val-hash", "no-train-sha", "no-own-hash", "n_train-string", "normalization-list",
        "edited-normalization"])
def test_dataset_metadata_without_hashes_or_edited_is_refused(edit, fragment, dataset, tmp_path):
    from gmc_rl.pretrain import pretrain

    broken = copy_of(dataset, tmp_path)
    edit_json(broken / "metadata.json", edit)
    with pytest.raises(DatasetError) as error:
        load_dataset(broken)
    assert fragment in str(error.value)
    with pytest.raises(DatasetError):
        pretrain(pair_config(), broken, tmp_path / "gmc", progress=False)
    assert not (tmp_path / "gmc" / "model.safetensors").exists()


def test_collected_metadata_records_its_own_hash(dataset):
    from gmc_rl.data import metadata_digest

    meta = json.loads((dataset / "metadata.json").read_text())
    assert meta["metadata_sha256"] == metadata_digest(meta)
    assert load_dataset(dataset).metadata["metadata_sha256"] == meta["metadata_sha256"]


# ----------------------------------------------------------------------------------------------------------------
# Devices: one resolution; an explicit device this machine lacks is refused everywhere.


def test_auto_picks_cuda_when_present_and_cpu_is_always_there():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="config key 'agent.device': unknown device 'gpu'"):
        resolve_device("gpu", "agent.device")


def test_unavailable_device_is_refused_by_training_loading_and_pretraining(agent_dir, checkpoint, dataset, tmp_path,
                                                                          capsys):
    from gmc_rl.agents import load_agent, train_agent
    from gmc_rl.pretrain import pretrain

    device = unavailable_cuda()
    config = ExperimentConfig(agent=AgentConfig(algo="sac", total_timesteps=64, eval_freq=0, device=device))
    with pytest.raises(ConfigError, match=f"config key 'agent.device': device '{device}' requested but"):
        train_agent(config, "state", 0, tmp_path / "agent", progress_bar=False)
    assert not (tmp_path / "agent").exists()
    assert main(["train", "--method", "state", "--device", device, "--total-timesteps", "64",
                 "--out", str(tmp_path / "cli-agent"), "--no-progress"]) == 2
    assert f"gmc-rl train: error: config key 'agent.device': device '{device}' requested" in capsys.readouterr().err
    assert not (tmp_path / "cli-agent").exists()
    for load in (lambda: load_agent(agent_dir, device=device), lambda: load_gmc(checkpoint, device=device)):
        with pytest.raises(ConfigError, match=f"device '{device}' requested but"):
            load()
    with pytest.raises(ConfigError, match=f"device '{device}' requested but"):
        pretrain(pair_config(device=device), dataset, tmp_path / "gmc", progress=False)
