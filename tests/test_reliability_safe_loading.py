"""Loading never runs code hidden in a file: crafted pickles in place of every kind of file gmc-rl reads.

Each payload, if unpickled, would create a marker file. Every test asserts that the load is refused with a clear
gmc-rl error (or, where the pickled part is simply never read, that loading works) and that the marker was never
created. A static audit then checks that the code base has no unsafe load call left (torch.load without
weights_only=True, np.load without allow_pickle=False, pickle/yaml.load, SB3's pickle-based loaders).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import PAIR_ID, SMALL_MODEL, copy_of, pair_config

from gmc_rl.checkpoint import load_gmc, load_training_state
from gmc_rl.collect import collect
from gmc_rl.config import AgentConfig, CollectConfig, ExperimentConfig, load_config
from gmc_rl.data import file_sha256, load_dataset
from gmc_rl.errors import CheckpointError, ConfigError, DatasetError
from gmc_rl.pretrain import pretrain

ROOT = Path(__file__).resolve().parents[1]


class Payload:
    """Unpickling this runs ``exec``, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def plain_pickle(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def torch_pickle(marker: Path) -> bytes:
    """The payload inside a regular ``torch.save`` file (zip format), next to an innocent tensor."""
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a pickled payload was executed"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("safe_loading")


@pytest.fixture(scope="module")
def gmc_run(workdir) -> Path:
    """A finished (tiny) pretraining run: checkpoint + last/trainer_state.pt."""
    data = collect(pair_config(), workdir / "data", progress=False)
    return pretrain(pair_config(), data, workdir / "gmc", progress=False)


@pytest.fixture(scope="module")
def agent_dir(workdir) -> Path:
    """A tiny finished SAC agent on the true state of PendulumSound, with a resumable checkpoint and replay buffer."""
    from gmc_rl.agents import train_agent

    config = ExperimentConfig(agent=AgentConfig(
        algo="sac", total_timesteps=64, eval_freq=0, checkpoint_freq=32, device="cpu",
        hyperparams={"learning_starts": 1000, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}}))
    return train_agent(config, "state", 0, workdir / "agent", progress_bar=False)


def rewrite_zip(path: Path, replace: dict[str, bytes]) -> None:
    """Rewrite the zip at ``path`` with some entries replaced."""
    with zipfile.ZipFile(path) as source:
        entries = {name: source.read(name) for name in source.namelist()}
    entries.update(replace)
    with zipfile.ZipFile(path, "w") as target:
        for name, data in entries.items():
            target.writestr(name, data)


def pickled_data_entry(path: Path, marker: Path, keys: tuple[str, ...]) -> bytes:
    """The ``data`` entry of an SB3 zip with the pickled (":serialized:") values of ``keys`` replaced by the payload."""
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    for key in keys:
        data[key] = {**data[key], ":serialized:": base64.b64encode(plain_pickle(marker)).decode()}
    return json.dumps(data).encode()


# ----------------------------------------------------------------------------------------------------------------
# Model weights.


@pytest.mark.parametrize("make_payload", [plain_pickle, torch_pickle], ids=["pickle", "torch.save"])
def test_gmc_weights_replaced_by_a_pickle(make_payload, gmc_run, tmp_path, marker):
    broken = copy_of(gmc_run, tmp_path)
    (broken / "model.safetensors").write_bytes(make_payload(marker))
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_gmc(broken)
    config = json.loads((broken / "config.json").read_text())
    config["weights_sha256"] = file_sha256(broken / "model.safetensors")  # a careful attacker fixes the hash
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_gmc(broken)


def test_mvae_weights_replaced_by_a_pickle(tmp_path, marker):
    from gmc_rl.mvae import load_mvae, save_mvae
    from gmc_rl.mvae.model import MVAEModel

    space = gym.make(PAIR_ID).observation_space
    model = MVAEModel.from_space(space, SMALL_MODEL)
    path = save_mvae(model, tmp_path / "mvae", {"note": "random weights"})
    (path / "model.safetensors").write_bytes(torch_pickle(marker))
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = file_sha256(path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_mvae(path)


# ----------------------------------------------------------------------------------------------------------------
# Resume states.


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("make_payload", [plain_pickle, torch_pickle], ids=["pickle", "torch.save"])
def test_pretraining_resume_state_replaced_by_a_pickle(make_payload, gmc_run, tmp_path, marker):
    broken = copy_of(gmc_run, tmp_path)
    (broken / "last" / "trainer_state.pt").write_bytes(make_payload(marker))
    with pytest.raises(CheckpointError,
                       match="cannot load training state .*trainer_state.pt.*Weights only load failed"):
        load_training_state(broken / "last")
    with pytest.raises(CheckpointError, match="trainer_state.pt"):
        pretrain(pair_config(epochs=2), gmc_run.parent / "data", broken, resume=True, progress=False)


def test_agent_weights_replaced_by_a_pickle(agent_dir, tmp_path, marker):
    from gmc_rl.agents import load_agent

    broken = copy_of(agent_dir, tmp_path)
    rewrite_zip(broken / "agent.zip", {"policy.pth": torch_pickle(marker)})
    with pytest.raises(CheckpointError, match="agent.zip .*Weights only load failed"):
        load_agent(broken)
    (broken / "agent.zip").write_bytes(plain_pickle(marker))  # not even a zip
    with pytest.raises(CheckpointError, match="agent.zip"):
        load_agent(broken)


def test_agent_zip_data_entry_is_never_unpickled(agent_dir, tmp_path, marker):
    from gmc_rl.agents import load_agent

    broken = copy_of(agent_dir, tmp_path)
    data = pickled_data_entry(broken / "agent.zip", marker,
                              ("policy_class", "observation_space", "action_space", "lr_schedule"))
    rewrite_zip(broken / "agent.zip", {"data": data})
    agent = load_agent(broken)  # the algorithm is rebuilt from agent.json; only the weights are read
    original = load_agent(agent_dir)
    obs = np.zeros((1, *agent.model.observation_space.shape), np.float32)
    assert np.array_equal(agent.predict(obs), original.predict(obs))


def test_agent_resume_checkpoint_with_pickles(agent_dir, tmp_path, marker):
    from gmc_rl.agents import train_agent
    from gmc_rl.agents.agent_dir import read_agent_json
    from gmc_rl.config import from_dict

    config = from_dict(ExperimentConfig, read_agent_json(agent_dir)["config"])
    config.agent.total_timesteps = 96
    latest = json.loads((agent_dir / "checkpoints" / "latest.json").read_text())

    broken = copy_of(agent_dir, tmp_path / "model")
    rewrite_zip(broken / "checkpoints" / latest["path"] / "model.zip", {"policy.pth": torch_pickle(marker)})
    with pytest.raises(CheckpointError, match="model.zip"):
        train_agent(config, "state", 0, broken, resume=True, progress_bar=False)

    broken = copy_of(agent_dir, tmp_path / "buffer")
    buffer = broken / "checkpoints" / latest["path"] / "replay_buffer.npz"
    with np.load(buffer) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["rewards"] = np.array([Payload(marker)], dtype=object)
    np.savez(buffer, **arrays)  # np.savez pickles object arrays
    with pytest.raises(CheckpointError, match="replay_buffer.npz: array .* holds Python objects .* never unpickles"):
        train_agent(config, "state", 0, broken, resume=True, progress_bar=False)


# ----------------------------------------------------------------------------------------------------------------
# Behaviour-policy zips, datasets and configs.


def test_behaviour_policy_zip_with_pickled_entries(tmp_path, marker):
    from stable_baselines3 import PPO

    env_id = "gmc_rl/PendulumSound-v0"
    model = PPO("MultiInputPolicy", gym.make(env_id), n_steps=16, batch_size=16, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8], "activation_fn": torch.nn.ReLU})
    model.save(tmp_path / "ppo.zip")
    config = ExperimentConfig(collect=CollectConfig(steps=20, n_envs=1, val_fraction=0.2,
                                                    policy=str(tmp_path / "ppo.zip")))
    clean = load_dataset(collect(config, tmp_path / "clean", progress=False))

    keys = ("policy_class", "observation_space", "action_space", "lr_schedule", "clip_range", "rollout_buffer_class",
            "policy_kwargs")
    rewrite_zip(tmp_path / "ppo.zip", {"data": pickled_data_entry(tmp_path / "ppo.zip", marker, keys)})
    crafted = load_dataset(collect(config, tmp_path / "crafted", progress=False))
    # the payloads were replaced, not run, and the policy still acts the same (its weights are untouched)
    assert np.array_equal(clean.train["actions"], crafted.train["actions"])


def test_dataset_with_a_pickled_object_array(gmc_run, tmp_path, marker):
    broken = copy_of(gmc_run.parent / "data", tmp_path)
    with np.load(broken / "train.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["vec"] = np.array([Payload(marker)], dtype=object)
    np.savez(broken / "train.npz", **arrays)
    with pytest.raises(DatasetError, match="train.npz: array 'vec' holds Python objects .* never unpickles"):
        load_dataset(broken)


def test_yaml_config_with_python_tags(tmp_path, marker):
    from gmc_rl.pipeline import read_run_config

    text = f"name: !!python/object/apply:exec [\"open({str(marker)!r}, 'w').close()\"]\n"
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="could not determine a constructor for the tag"):
        load_config(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match="could not determine a constructor for the tag"):
        read_run_config(tmp_path)  # a pipeline run directory's stored config


# ----------------------------------------------------------------------------------------------------------------
# Static audit of the code base.

SB3_ALGORITHMS = {"SAC", "PPO", "A2C", "TD3", "DDPG", "DQN", "HER"}
FORBIDDEN = {
    ("pickle", "load"), ("pickle", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"), ("dill", "load"),
    ("dill", "loads"), ("marshal", "loads"), ("joblib", "load"), ("shelve", "open"), ("yaml", "load"),
    ("yaml", "full_load"), ("yaml", "unsafe_load"), ("yaml", "load_all"), ("yaml", "unsafe_load_all"),
}


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def unsafe_loads(source: str) -> list[str]:
    """Unsafe load calls in a module's source (line: problem)."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Attribute, ast.Name)):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        where = f"line {node.lineno}"
        if (owner, name) == ("torch", "load") and _keyword(node, "weights_only") is not True:
            problems.append(f"{where}: torch.load without weights_only=True")
        elif owner in ("np", "numpy") and name == "load" and _keyword(node, "allow_pickle") is not False:
            problems.append(f"{where}: np.load without allow_pickle=False")
        elif (owner, name) in FORBIDDEN or name in ("eval", "exec") and isinstance(func, ast.Name):
            problems.append(f"{where}: {owner + '.' if owner else ''}{name} can run code from data")
        elif name == "load" and isinstance(func, ast.Attribute) and _keyword(node, "custom_objects") is None \
                and (owner in SB3_ALGORITHMS or "stable_baselines3" in ast.unparse(func.value)):
            problems.append(f"{where}: SB3 .load unpickles the zip's data entry (use gmc_rl.io.load_sb3_zip)")
        elif name == "load_from_zip_file" and _keyword(node, "load_data") is not False:
            problems.append(f"{where}: load_from_zip_file must pass load_data=False")
        elif isinstance(func, ast.Attribute) and name == "load_replay_buffer":
            problems.append(f"{where}: SB3's load_replay_buffer unpickles "
                            "(use gmc_rl.agents.checkpoints.load_replay_buffer)")
    return problems


def test_audit_finds_unsafe_loads_in_a_sample():
    sample = (
        "import torch, numpy as np, pickle, yaml\n"
        "torch.load(p)\nnp.load(p)\npickle.loads(b)\nyaml.load(t)\nSAC.load(p)\nmodel.load_replay_buffer(p)\n"
        "torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\nyaml.safe_load(t)\n"
        "SAC.load(p, custom_objects={})\n"
        "getattr(stable_baselines3, name.upper()).load(path, device='cpu')\n"
    )
    found = [problem.split(":")[0] for problem in unsafe_loads(sample)]
    assert found == [f"line {i}" for i in (2, 3, 4, 5, 6, 7, 12)]


def test_code_base_has_no_unsafe_load_calls():
    folders = ("gmc_rl", "agents", "envs", "experiments", "benchmarks")
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 30
    problems = {str(p.relative_to(ROOT)): unsafe_loads(p.read_text(encoding="utf-8")) for p in files}
    assert {path: found for path, found in problems.items() if found} == {}
