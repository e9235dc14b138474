"""agent.vec_env: the training envs in this process (dummy) or in worker processes (subproc), the same agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from gmc_rl.cli import main
from gmc_rl.config import AgentConfig, ExperimentConfig, agent_identity, from_dict
from gmc_rl.errors import ConfigError

CARTPOLE = "gmc_rl/CartPoleSensors-v0"


def test_subproc_envs_step_like_dummy_envs():
    from gmc_rl.agents.observations import make_method_vec_env

    dummy = make_method_vec_env("state", CARTPOLE, {}, "complete", n_envs=2, seed=3)
    subproc = make_method_vec_env("state", CARTPOLE, {}, "complete", n_envs=2, seed=3, vec_env="subproc")
    try:
        assert isinstance(dummy, DummyVecEnv) and isinstance(subproc, SubprocVecEnv)
        np.testing.assert_array_equal(dummy.reset(), subproc.reset())
        rng = np.random.default_rng(0)
        for _ in range(60):  # past the first episode ends (auto-reset)
            actions = rng.integers(0, 2, size=2)
            a, b = dummy.step(actions), subproc.step(actions)
            for x, y in zip(a[:3], b[:3]):
                np.testing.assert_array_equal(x, y)
    finally:
        dummy.close()
        subproc.close()
    one = make_method_vec_env("state", CARTPOLE, {}, "complete", n_envs=1, vec_env="subproc")
    assert isinstance(one, DummyVecEnv)  # one env: no worker process to pay for
    one.close()
    with pytest.raises(ConfigError, match="vec_env must be 'dummy' or 'subproc'"):
        make_method_vec_env("state", CARTPOLE, {}, "complete", n_envs=2, vec_env="threads")


def test_the_agent_is_the_same_with_either(tmp_path):
    from gmc_rl.agents import load_agent, train_agent

    weights = {}
    for kind in ("dummy", "subproc"):
        config = from_dict(ExperimentConfig, {"env_id": CARTPOLE, "agent": {
            "algo": "ppo", "total_timesteps": 128, "n_envs": 2, "vec_env": kind, "eval_freq": 0,
            "checkpoint_freq": 0, "device": "cpu", "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}}})
        path = train_agent(config, "state", 0, tmp_path / kind, progress_bar=False)
        weights[kind] = load_agent(path).model.policy.state_dict()
    assert weights["dummy"].keys() == weights["subproc"].keys()
    for name, tensor in weights["dummy"].items():
        assert torch.equal(tensor, weights["subproc"][name]), name


def test_vec_env_changes_no_agents_identity_and_is_checked(capsys):
    assert agent_identity(AgentConfig(vec_env="subproc", n_envs=4), "gmc") == agent_identity(AgentConfig(n_envs=4),
                                                                                              "gmc")
    assert AgentConfig().vec_env == "dummy"
    with pytest.raises(ConfigError, match="'agent.vec_env': must be one of \\['dummy', 'subproc'\\].*'subproc'"):
        AgentConfig(vec_env="subprocess")
    assert main(["train", "--agent.vec_env", "subproc", "--print_config"]) == 0
    assert "vec_env: subproc" in capsys.readouterr().out
