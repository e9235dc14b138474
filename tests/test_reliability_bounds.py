"""Bounds on what a user passes: sizes that cannot fit, YAML that expands or is ambiguous, SB3 hyperparameters.

Each test is a row of the bad-inputs table in docs/reliability.md (rows 41-49). Sizes that cannot fit are refused
before anything is allocated or written, with the limit in the message; the limits live in gmc_rl.config (the
envs' own in gmc_rl.envs.checks).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

from gmc_rl.agents.registry import _SET_ELSEWHERE, build_algorithm, resolve_hyperparams
from gmc_rl.checkpoint import load_gmc, save_gmc
from gmc_rl.collect import check_dataset_size, collect
from gmc_rl.config import (
    HYPERPARAM_CHECKS,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_MODEL_PARAMETERS,
    OFF_POLICY,
    AgentConfig,
    CollectConfig,
    ExperimentConfig,
    ModelConfig,
    PretrainConfig,
    default_config_path,
    from_dict,
    load_config,
    load_yaml,
    to_dict,
)
from gmc_rl.data import load_dataset
from gmc_rl.envs.checks import MAX_IMAGE_SIZE, MAX_N_STACK
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.modalities import ModalitySpec, modality_specs
from gmc_rl.model import GMCModel, parameter_count
from gmc_rl.mvae import MVAEModel, load_mvae, save_mvae
from gmc_rl.mvae.model import parameter_count as mvae_parameter_count

ROOT = Path(__file__).resolve().parents[1]
SMALL_MODEL = ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])
PENDULUM = "gmc_rl/PendulumSound-v0"


def huge_image_specs() -> dict[str, ModalitySpec]:
    """An image of 60000 x 60000 pixels and a vector: far too many features for the first linear layer."""
    return {"image": ModalitySpec("image", (1, 60000, 60000), "uint8", "image", 0.0, 255.0),
            "vec": ModalitySpec("vec", (3,), "float32", "vector", -1.0, 1.0)}


# ----------------------------------------------------------------------------------------------------------------
# Row 41: the built-in envs bound the sizes of their sensors.


@pytest.mark.parametrize(
    ("env_id", "kwargs", "fragment"),
    [
        (PENDULUM, {"image_size": 100_000}, "image_size must be an integer in [16, 512], got 100000"),
        ("gmc_rl/AcrobotSensors-v0", {"image_size": 513}, "image_size must be an integer in [24, 512], got 513"),
        ("gmc_rl/CartPoleSensors-v0", {"image_height": 10**9}, "image_height must be an integer in [20, 512]"),
        (PENDULUM, {"n_stack": 33}, "n_stack must be an integer in [1, 32], got 33"),
        ("gmc_rl/CartPoleSensors-v0", {"n_stack": 10**6}, "n_stack must be an integer in [1, 32]"),
    ],
)
def test_builtin_envs_refuse_sizes_above_their_limits(env_id, kwargs, fragment):
    with pytest.raises(ValueError) as error:
        gym.make(env_id, **kwargs)
    assert fragment in str(error.value)


def test_builtin_envs_accept_their_largest_sizes():
    env = gym.make(PENDULUM, image_size=MAX_IMAGE_SIZE, n_stack=MAX_N_STACK)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (MAX_N_STACK, MAX_IMAGE_SIZE, MAX_IMAGE_SIZE)
    assert gym.make("gmc_rl/CartPoleSensors-v0", image_height=MAX_IMAGE_SIZE).observation_space["image"].shape == (
        2, MAX_IMAGE_SIZE, 3 * MAX_IMAGE_SIZE)


def test_collect_reports_a_refused_env_kwarg_as_a_config_error_and_writes_nothing(tmp_path):
    config = ExperimentConfig(env_id=PENDULUM, env_kwargs={"image_size": 100_000}, collect=CollectConfig(steps=100))
    with pytest.raises(ConfigError, match=r"config key 'env_kwargs': .*image_size must be an integer in \[16, 512\]"):
        collect(config, tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------------------------------------------------
# Row 42: config values that size an allocation have upper limits.


@pytest.mark.parametrize(
    ("data", "key", "limit"),
    [
        ({"collect": {"steps": 10**12}}, "collect.steps", "100000000 (MAX_COLLECT_STEPS)"),
        ({"collect": {"n_envs": 10**6}}, "collect.n_envs", "[1, 256] (MAX_ENVS)"),
        ({"agent": {"n_envs": 1000}}, "agent.n_envs", "[1, 256] (MAX_ENVS)"),
        ({"evaluate": {"n_envs": 257}}, "evaluate.n_envs", "[1, 256] (MAX_ENVS)"),
        ({"pretrain": {"batch_size": 10**6}}, "pretrain.batch_size", "8192 (MAX_PRETRAIN_BATCH)"),
        ({"pretrain": {"model": {"latent_dim": 10**9}}}, "pretrain.model.latent_dim", "4096 (MAX_LAYER_WIDTH)"),
        ({"pretrain": {"model": {"conv_channels": [32, 10**6]}}}, "pretrain.model.conv_channels",
         "4096 (MAX_LAYER_WIDTH)"),
        ({"pretrain": {"model": {"mlp_hidden": [8] * 17}}}, "pretrain.model.mlp_hidden", "16 layers (MAX_LAYERS)"),
        ({"evaluate": {"episodes": 10**9}}, "evaluate.episodes", "1000000 (MAX_EPISODES)"),
        ({"agent": {"eval_episodes": 10**9}}, "agent.eval_episodes", "1000000 (MAX_EPISODES)"),
        ({"evaluate": {"diagnostic_episodes": 10**4, "diagnostic_horizon": 1000}}, "evaluate.diagnostic_episodes",
         "100000 (MAX_DIAGNOSTIC_STEPS)"),
        ({"agent": {"hyperparams": {"buffer_size": 10**12}}}, "agent.hyperparams.buffer_size", "[1, 100000000]"),
        ({"agent": {"hyperparams": {"policy_kwargs": {"net_arch": [256, 10**7]}}}},
         "agent.hyperparams.policy_kwargs.net_arch", "[1, 4096] (MAX_LAYER_WIDTH)"),
        ({"agent": {"hyperparams": {"policy_kwargs": {"n_critics": 10**6}}}},
         "agent.hyperparams.policy_kwargs.n_critics", "[1, 16] (MAX_LAYERS)"),
        ({"agent": {"algo": "ppo",
                    "hyperparams": {"policy_kwargs": {"features_extractor_kwargs": {"cnn_output_dim": 10**9}}}}},
         "agent.hyperparams.policy_kwargs.features_extractor_kwargs.cnn_output_dim", "[1, 4096] (MAX_LAYER_WIDTH)"),
    ],
)
def test_config_values_that_cannot_fit_are_refused_with_the_limit(data, key, limit):
    with pytest.raises(ConfigError) as error:
        from_dict(ExperimentConfig, data)
    assert f"config key '{key}'" in str(error.value) and limit in str(error.value)


# ----------------------------------------------------------------------------------------------------------------
# Row 43: a dataset that cannot be held in memory.


def test_collect_refuses_a_dataset_larger_than_memory_and_writes_nothing(tmp_path):
    config = ExperimentConfig(env_id=PENDULUM, collect=CollectConfig(steps=100_000_000))  # ~700 GB of images
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        collect(config, tmp_path / "data", progress=False)
    message = str(error.value)
    assert time.perf_counter() - started < 30  # refused from the estimate, not after filling memory
    assert message.startswith("config key 'collect.steps': the dataset (100,000,000 transitions of 7.1 KiB) needs "
                              "about 6")
    assert "cap MAX_DATA_BYTES: 64.0 GiB" in message and "memory available now: " in message
    assert "lower collect.steps to at most " in message
    assert not (tmp_path / "data").exists()


def test_dataset_size_estimate_equals_the_collected_arrays(tmp_path):
    """The estimate's bytes per transition are those of the arrays collection fills."""
    config = ExperimentConfig(env_id=PENDULUM, env_kwargs={"image_size": 16},
                              collect=CollectConfig(steps=40, n_envs=2, val_fraction=0.25))
    dataset = load_dataset(collect(config, tmp_path / "data", progress=False))
    per_step = dataset.nbytes // 40
    big = ExperimentConfig(env_id=PENDULUM, env_kwargs={"image_size": 16},
                           collect=CollectConfig(steps=100_000_000))
    with pytest.raises(ConfigError, match=rf"transitions of {per_step} B\)"):
        check_dataset_size(big)


# ----------------------------------------------------------------------------------------------------------------
# Row 44: models whose parameter count cannot fit, from a config, a dataset's shapes or a checkpoint.


@pytest.mark.parametrize("cls", [GMCModel, MVAEModel])
def test_too_large_models_are_refused_before_a_layer_is_built(cls):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        cls(huge_image_specs(), ModelConfig())
    assert time.perf_counter() - started < 5
    assert f"than {MAX_MODEL_PARAMETERS:,} (MAX_MODEL_PARAMETERS)" in str(error.value)
    assert "more conv_channels layers" in str(error.value)


@pytest.mark.parametrize(("cls", "count"), [(GMCModel, parameter_count), (MVAEModel, mvae_parameter_count)])
@pytest.mark.parametrize("env_id", [PENDULUM, "gmc_rl/CartPoleSensors-v0"])
def test_parameter_counts_equal_the_built_models(cls, count, env_id):
    specs = modality_specs(gym.make(env_id).observation_space)
    for config in (ModelConfig(), ModelConfig(conv_channels=[8, 16, 8], mlp_hidden=[5], latent_dim=3)):
        model = cls(specs, config)
        assert count(specs, config) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("save", "load", "cls"), [(save_gmc, load_gmc, GMCModel), (save_mvae, load_mvae, MVAEModel)])
def test_checkpoint_config_with_absurd_sizes_is_refused(save, load, cls, tmp_path):
    space = spaces.Dict({"image": spaces.Box(0, 255, (1, 8, 8), np.uint8), "vec": spaces.Box(-1, 1, (3,), np.float32)})
    directory = save(cls.from_space(space, SMALL_MODEL), tmp_path / "model", {"env_id": "test"})
    original = json.loads((directory / "config.json").read_text())

    config = json.loads(json.dumps(original))
    config["model"]["latent_dim"] = 10**9
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"describes no valid .*latent_dim.*4096 \(MAX_LAYER_WIDTH\)"):
        load(directory)

    config = json.loads(json.dumps(original))
    config["specs"][0]["shape"] = [1, 60000, 60000]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"describes no valid .*MAX_MODEL_PARAMETERS"):
        load(directory)


@pytest.mark.parametrize(("latent_dim", "size"), [(4096, 1_000_000), (4096, 65_537), (300, 1_000_000)])
def test_checkpoint_reference_latents_are_bounded_in_bytes_before_allocation(tmp_path, monkeypatch, latent_dim, size):
    """Each size within its own cap, their product 16 GiB: refused before ``torch.zeros`` runs (it used to run first,
    and the allocator's raw RuntimeError was the answer)."""
    space = spaces.Dict({"image": spaces.Box(0, 255, (1, 8, 8), np.uint8), "vec": spaces.Box(-1, 1, (3,), np.float32)})
    directory = save_gmc(GMCModel.from_space(space, SMALL_MODEL), tmp_path / "model", {"env_id": "test"})
    config = json.loads((directory / "config.json").read_text())
    config["model"]["latent_dim"] = latent_dim
    config["reference_latents"] = {"size": size, "neighbours": 5}
    (directory / "config.json").write_text(json.dumps(config))
    allocated = []
    zeros = torch.zeros
    monkeypatch.setattr(torch, "zeros", lambda *shape, **kwargs: allocated.append(shape) or zeros(*shape, **kwargs))
    message = (rf"describes no valid GMC model: .*'reference_latents.size': {size:,} reference latents of size "
               rf"{latent_dim} need .* \(MAX_REFERENCE_BYTES\)")
    with pytest.raises(CheckpointError, match=message):
        load_gmc(directory)
    assert (size, latent_dim) not in allocated


def test_pretraining_config_bounds_the_reference_latents_in_bytes():
    with pytest.raises(ConfigError, match=r"config key 'pretrain.reference_latents': 1,000,000 reference latents of "
                                          r"size 4096 need 15.3 GiB, more than 1.0 GiB \(MAX_REFERENCE_BYTES\); "
                                          r"keep at most 65,536 of size 4096"):
        PretrainConfig(reference_latents=1_000_000, model=ModelConfig(latent_dim=4096))
    assert PretrainConfig(reference_latents=65_536, model=ModelConfig(latent_dim=4096)).reference_latents == 65_536
    assert PretrainConfig(reference_latents=1_000_000, model=ModelConfig(latent_dim=10)).reference_latents == 1_000_000
    with pytest.raises(ConfigError, match=r"'pretrain.reference_latents': must be in \[0, 1000000\]"):
        PretrainConfig(reference_latents=1_000_001)


# ----------------------------------------------------------------------------------------------------------------
# Row 45: an agent whose replay or rollout buffer cannot fit.


@pytest.mark.parametrize(("algo", "hyperparams", "key"), [
    ("sac", {"buffer_size": 100_000_000}, "buffer_size"),
    ("ppo", {"n_steps": 1_000_000}, "n_steps"),
])
def test_agent_buffer_larger_than_memory_is_refused_before_allocation(algo, hyperparams, key):
    env = gym.make(PENDULUM)  # raw Dict observations of 7 KB
    with pytest.raises(ConfigError) as error:
        build_algorithm(algo, env, hyperparams, seed=0, tensorboard_log=None, device="cpu")
    message = str(error.value)
    assert message.startswith(f"config key 'agent.hyperparams.{key}': the ")
    assert "memory of this machine: " in message and "cap MAX_DATA_BYTES" in message
    assert f"lower {key} to at most " in message


# ----------------------------------------------------------------------------------------------------------------
# Rows 46-48: the strict YAML loader.


def alias_bomb(levels: int) -> str:
    """A ~500-byte YAML whose nested aliases expand to 9**levels strings under PyYAML's safe_load."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, levels + 1):
        ref = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([ref] * 9)}]")
    return "name: bomb\nenv_kwargs:\n" + "\n".join("  " + line for line in lines) + "\n"


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(8))
    assert path.stat().st_size < 600
    started = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert time.perf_counter() - started < 1
    assert str(error.value) == (f"config file {path}, line 3, column 7: anchors and aliases (&name, *name) are not "
                                "allowed in a config; write the values out")
    path.write_text("name: x\nseeds: &s [1, 2]\n")  # an anchor alone is refused too
    with pytest.raises(ConfigError, match="line 2, column 8: anchors and aliases"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: a\nname: b\n", "line 2, column 1: duplicate key 'name' in one mapping"),
        ("pretrain:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n", "line 4, column 3: duplicate key 'epochs'"),
        ("env_kwargs:\n  1: 2\n", "line 2, column 3: keys must be strings, got 1 (int); quote it"),
        ("env_kwargs:\n  on: 2\n", "keys must be strings, got True (bool); quote it (YAML reads on, off, yes and no"),
        ("env_kwargs:\n  null: 2\n", "keys must be strings, got None (NoneType)"),
        ("env_kwargs:\n  ? [a, b]\n  : 1\n", "keys must be strings, got ['a', 'b'] (list)"),
        ("agent:\n  <<: {algo: ppo}\n", "line 2, column 3: merge keys (<<) are not allowed"),
    ],
)
def test_yaml_duplicate_non_string_and_merge_keys_are_refused(text, message, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"config file {path}, ") and message in str(error.value)


def test_yaml_too_large_or_too_deep_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\n# " + "#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"is larger than 1048576 bytes \(MAX_CONFIG_BYTES\)"):
        load_config(path)
    path = tmp_path / "deep.yaml"
    path.write_text("env_kwargs: " + "[" * 5000 + "]" * 5000 + "\n")  # would be a RecursionError in PyYAML
    with pytest.raises(ConfigError, match=rf"line 1, column \d+: nested deeper than {MAX_CONFIG_DEPTH} levels"):
        load_config(path)


def test_deeply_nested_values_from_json_flags_or_python_are_refused():
    from gmc_rl.cli import build_parser

    nested: dict = {}
    node = nested
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ConfigError, match=r"config key 'env_kwargs': is nested deeper than 20 levels"):
        ExperimentConfig(env_kwargs=nested)
    with pytest.raises(SystemExit) as exit_info:  # a JSON flag that json.loads cannot parse without recursing
        build_parser().parse_args(["collect", "--env-kwargs", "[" * 100_000 + "]" * 100_000])
    assert exit_info.value.code == 2


def test_shipped_and_stored_configs_load_with_the_strict_loader(tmp_path):
    configs = sorted((ROOT / "experiments").rglob("*.yaml"))
    assert default_config_path() in [p.resolve() for p in configs] and len(configs) >= 5
    for path in configs:
        config = load_config(path)
        stored = tmp_path / "config.yaml"  # a pipeline run directory's config.yaml is written by yaml.safe_dump
        stored.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
        assert from_dict(ExperimentConfig, load_yaml(stored)) == config


# ----------------------------------------------------------------------------------------------------------------
# Row 49: SB3 hyperparameter values.


@pytest.mark.parametrize(
    ("algo", "key", "value", "allowed"),
    [
        ("sac", "gamma", 5, "a number in [0, 1]"),
        ("sac", "gamma", "x", "a number in [0, 1]"),
        ("ppo", "gamma", -0.1, "a number in [0, 1]"),
        ("sac", "buffer_size", -1, "an integer in [1, 100000000]"),
        ("dqn", "buffer_size", 1.5, "an integer in [1, 100000000]"),
        ("sac", "batch_size", 0, "an integer in [1, 1000000]"),
        ("ppo", "batch_size", 1, "an integer in [2, 1000000]"),
        ("td3", "tau", 0, "a number in (0, 1]"),
        ("ddpg", "tau", 1.5, "a number in (0, 1]"),
        ("sac", "learning_starts", -1, "an integer >= 0"),
        ("sac", "learning_rate", -0.001, "a finite number > 0 or 'lin_<number > 0>'"),
        ("sac", "learning_rate", "lin_inf", "a finite number > 0 or 'lin_<number > 0>'"),
        ("a2c", "learning_rate", float("nan"), "a finite number > 0"),
        ("sac", "train_freq", 0, "a positive integer, or [positive integer, 'step' or 'episode']"),
        ("td3", "train_freq", [1, "epoch"], "a positive integer, or [positive integer, 'step' or 'episode']"),
        ("sac", "gradient_steps", 0, "an integer >= 1, or -1"),
        ("dqn", "gradient_steps", -2, "an integer >= 1, or -1"),
        ("sac", "ent_coef", "autox", "a finite number >= 0, 'auto' or 'auto_<number > 0>'"),
        ("sac", "ent_coef", "auto_-1", "a finite number >= 0, 'auto' or 'auto_<number > 0>'"),
        ("ppo", "ent_coef", -0.5, "a finite number >= 0"),
        ("ppo", "clip_range", 0, "a finite number > 0 or 'lin_<number > 0>'"),
        ("ppo", "n_steps", 0, "an integer in [1, 1000000]"),
        ("a2c", "n_steps", True, "an integer in [1, 1000000]"),
        ("ppo", "gae_lambda", 1.5, "a number in [0, 1]"),
        ("ppo", "n_epochs", 0, "an integer >= 1"),
        ("ppo", "target_kl", 0, "null or a finite number > 0"),
        ("a2c", "rms_prop_eps", 0, "a finite number > 0"),
        ("dqn", "exploration_fraction", 2, "a number in [0, 1]"),
        ("dqn", "target_update_interval", 0, "an integer >= 1"),
        ("td3", "policy_delay", 0, "an integer >= 1"),
        ("ddpg", "optimize_memory_usage", "yes", "true or false"),
        ("sac", "replay_buffer_class", "HerReplayBuffer", "null (classes cannot be named in a config)"),
    ],
)
def test_hyperparameter_values_outside_their_range_are_refused(algo, key, value, allowed):
    expected = f"config key 'agent.hyperparams.{key}': must be {allowed}"
    with pytest.raises(ConfigError) as error:  # the config, so that nothing is written
        AgentConfig(algo=algo, hyperparams={key: value})
    assert str(error.value).startswith(expected) and str(error.value).endswith(f"for {algo}, got {value!r}")
    action_space = spaces.Discrete(2) if algo == "dqn" else spaces.Box(-1, 1, (1,), np.float32)
    with pytest.raises(ConfigError) as error:  # and the agents layer (agent.json, the Python API)
        resolve_hyperparams(algo, {key: value}, action_space)
    assert str(error.value).startswith(expected)


def test_hyperparameter_values_at_the_edges_of_their_range_are_accepted():
    accepted = {
        "sac": {"gamma": 1.0, "tau": 1, "learning_starts": 0, "gradient_steps": -1, "ent_coef": "auto_0.1",
                "train_freq": [2, "episode"], "learning_rate": "lin_0.001", "target_entropy": -1.0},
        "ppo": {"gamma": 0, "batch_size": 2, "clip_range": "lin_0.2", "clip_range_vf": None, "ent_coef": 0.0,
                "target_kl": 0.01, "policy_kwargs": {"net_arch": {"pi": [64], "vf": [4096]}}},
        "dqn": {"exploration_final_eps": 0.0, "train_freq": 4, "max_grad_norm": 10},
    }
    for algo, hyperparams in accepted.items():
        assert AgentConfig(algo=algo, hyperparams=hyperparams).hyperparams == hyperparams


ALGORITHM_CLASSES = {"sac": SAC, "td3": TD3, "ddpg": DDPG, "ppo": PPO, "a2c": A2C, "dqn": DQN}
CHECKED_ELSEWHERE = {"policy", "policy_kwargs", "action_noise", "env", "_init_setup_model"}
"""Constructor arguments whose values are not in HYPERPARAM_CHECKS: converted and checked by agents.registry
(policy, policy_kwargs, action_noise) or not hyperparameters here (_SET_ELSEWHERE, env)."""


@pytest.mark.parametrize("algo", sorted(ALGORITHM_CLASSES))
def test_every_hyperparameter_of_the_installed_sb3_has_a_value_check(algo):
    arguments = set(inspect.signature(ALGORITHM_CLASSES[algo].__init__).parameters) - {"self"}
    assert arguments - CHECKED_ELSEWHERE - set(_SET_ELSEWHERE) <= set(HYPERPARAM_CHECKS[algo])


def test_one_list_of_off_policy_algorithms_agrees_with_sb3_and_the_hyperparameter_checks():
    """gmc_rl.config.OFF_POLICY is the one list (agents.registry imports it): the algorithms whose SB3 class keeps a
    replay buffer, and those whose HYPERPARAM_CHECKS hold the replay-buffer keys."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from gmc_rl.agents import registry

    assert registry.OFF_POLICY is OFF_POLICY
    assert set(OFF_POLICY) == {algo for algo, cls in ALGORITHM_CLASSES.items() if issubclass(cls, OffPolicyAlgorithm)}
    assert set(OFF_POLICY) == {algo for algo, checks in HYPERPARAM_CHECKS.items() if "buffer_size" in checks}


def test_a_bad_hyperparameter_writes_nothing_and_the_corrected_rerun_trains(tmp_path, capsys):
    from gmc_rl.cli import main

    out = tmp_path / "agent"
    common = ["train", "--method", "state", "--env", PENDULUM, "--total-timesteps", "64", "--eval-freq", "0",
              "--checkpoint-freq", "0", "--device", "cpu", "--out", str(out), "--no-progress"]
    assert main([*common, "--hyperparams", '{"gamma": "x", "learning_starts": 32, "batch_size": 16}']) == 2
    assert capsys.readouterr().err.startswith(
        "gmc-rl train: error: config key 'agent.hyperparams.gamma': must be a number in [0, 1] for sac, got 'x'")
    assert not out.exists()
    assert main([*common, "--hyperparams", '{"gamma": 0.9, "learning_starts": 32, "batch_size": 16}']) == 0
    assert json.loads((out / "agent.json").read_text())["status"] == "complete"
