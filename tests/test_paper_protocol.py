"""The GMC authors' protocol (issue 26): the annealed OU noise against hand-computed values, DDPG with an actor
learning rate of its own, experiments/pendulum_sound_paper.yaml loading and training, the evaluation action limit,
and GMC agents evaluated under both single-sensor rules (the paper's plain mean beside the projection)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import sample_batch, space_m2, tiny_pendulum_experiment

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import build_algorithm, load_agent, train_agent
from gmc_rl.agents.noise import AnnealedOrnsteinUhlenbeckNoise, continue_noise_schedule
from gmc_rl.agents.registry import make_action_noise
from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.config import EvaluateConfig, ExperimentConfig, ModelConfig, from_dict, load_config, to_dict
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.evaluate import clipped_predictor
from gmc_rl.model import GMCModel
from gmc_rl.pipeline import evaluate_agent
from gmc_rl.pretrain import pretrain
from gmc_rl.results import read_evaluation_record, record_rows

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "experiments" / "pendulum_sound_paper.yaml"
ENV = "gmc_rl/PendulumSound-v0"


# -- the noise ---------------------------------------------------------------------------------------------------

def test_sigma_schedule_hand_computed():
    noise = AnnealedOrnsteinUhlenbeckNoise(np.zeros(1), np.full(1, 0.2), theta=0.15, dt=1.0, decay_steps=100_000)
    # 0.2 (1 - t / 100000), then 0: the authors' schedule
    for t, expected in [(0, 0.2), (25_000, 0.15), (50_000, 0.1), (99_999, 0.000002), (100_000, 0.0), (150_000, 0.0)]:
        assert noise.sigma_at(t)[0] == pytest.approx(expected, abs=1e-12)
    half = AnnealedOrnsteinUhlenbeckNoise(np.zeros(1), np.full(1, 0.2), decay_steps=10, final_scale=0.5)
    assert half.sigma_at(5)[0] == pytest.approx(0.15) and half.sigma_at(20)[0] == pytest.approx(0.1)


def test_process_hand_computed_with_warmup_and_no_reset():
    noise = AnnealedOrnsteinUhlenbeckNoise(np.array([0.5]), np.array([0.2]), theta=0.15, dt=1.0, decay_steps=10,
                                           start=2)
    np.random.seed(3)
    draws = np.random.normal(size=4)
    np.random.seed(3)
    assert noise()[0] == 0.0 and noise()[0] == 0.0  # the warm-up: zeros, no draw taken
    x = 0.5  # the process starts at its mean
    for t, draw in zip(range(2, 6), draws):
        x = x + 0.15 * (0.5 - x) * 1.0 + 0.2 * (1 - t / 10) * draw
        assert noise()[0] == pytest.approx(x, abs=1e-12)
        noise.reset()  # the authors' process runs on across episodes
    assert noise.calls == 6
    resetting = AnnealedOrnsteinUhlenbeckNoise(np.array([0.5]), np.array([0.2]), decay_steps=10,
                                               reset_each_episode=True)
    resetting()
    resetting.reset()
    assert resetting.state[0] == 0.5


def test_env_units_divide_by_the_half_width():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    noise = make_action_noise({"type": "annealed_ornstein_uhlenbeck", "sigma": 0.2, "mean": 0.4, "units": "env",
                               "decay_steps": 100}, space)
    assert noise.sigma[0] == pytest.approx(0.1) and noise.mean[0] == pytest.approx(0.2)
    scaled = make_action_noise({"type": "normal", "sigma": 0.2}, space)
    assert scaled._sigma[0] == pytest.approx(0.2)  # units: scaled (the default) leaves the value as given
    torque = make_action_noise({"type": "normal", "sigma": 0.2, "units": "env"}, space)
    assert torque._sigma[0] == pytest.approx(0.1)


@pytest.mark.parametrize("spec, message", [
    ({"type": "annealed_ornstein_uhlenbeck", "sigma": 0.2}, "decay_steps"),
    ({"type": "annealed_ornstein_uhlenbeck", "decay_steps": 10, "start": -1}, "start"),
    ({"type": "annealed_ornstein_uhlenbeck", "decay_steps": 10, "dt": 0}, "dt"),
    ({"type": "annealed_ornstein_uhlenbeck", "decay_steps": 10, "reset_each_episode": "no"}, "reset_each_episode"),
    ({"type": "ornstein_uhlenbeck", "start": 5}, "unknown keys ['start']"),
    ({"type": "normal", "units": "torque"}, "units"),
])
def test_bad_noise_settings_are_refused(spec, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make_action_noise(spec, gym.spaces.Box(-2.0, 2.0, (1,), np.float32))


# -- DDPG with two learning rates -----------------------------------------------------------------------------------

def _parameters(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_one_adam_step_moves_actor_and_critic_by_their_own_rates():
    """Adam's first step moves each weight by about lr (sign of its gradient): 1e-4 for the actor, 1e-3 for the
    critic, though SB3 resets both optimizers to learning_rate before every step."""
    noise = {"type": "annealed_ornstein_uhlenbeck", "sigma": 0.2, "units": "env", "decay_steps": 100, "start": 20}
    model = build_algorithm("ddpg", gym.make("Pendulum-v1"),
                            {"learning_rate": 1e-3, "actor_learning_rate": 1e-4, "learning_starts": 20,
                             "batch_size": 8, "policy_kwargs": {"net_arch": [8]}, "action_noise": noise},
                            seed=0, tensorboard_log=None, device="cpu")
    assert type(model).__module__ == "gmc_rl.agents.ddpg"
    model.learn(20)  # warm-up only: no update, no noise yet
    assert model.action_noise.calls == 20 and np.all(model.action_noise.state == 0)
    actor, critic = _parameters(model.actor), _parameters(model.critic)
    model.learn(1, reset_num_timesteps=False)  # one gradient step
    actor_step = max(float((a - b).abs().max()) for a, b in zip(_parameters(model.actor), actor))
    critic_step = max(float((a - b).abs().max()) for a, b in zip(_parameters(model.critic), critic))
    assert 0.5e-4 < actor_step <= 1.001e-4
    assert 0.5e-3 < critic_step <= 1.001e-3
    assert model.actor.optimizer.param_groups[0]["lr"] == 1e-4
    assert model.critic.optimizer.param_groups[0]["lr"] == 1e-3
    assert model.action_noise.calls == 21 and np.any(model.action_noise.state != 0)


def test_ddpg_without_actor_rate_is_sb3s():
    model = build_algorithm("ddpg", gym.make("Pendulum-v1"),
                            {"learning_rate": 5e-4, "policy_kwargs": {"net_arch": [8]}},
                            seed=0, tensorboard_log=None, device="cpu")
    assert model.actor_learning_rate is None
    assert model.actor.optimizer.param_groups[0]["lr"] == 5e-4 == model.critic.optimizer.param_groups[0]["lr"]
    with pytest.raises(ConfigError, match="actor_learning_rate"):
        build_algorithm("ddpg", gym.make("Pendulum-v1"), {"actor_learning_rate": -1.0}, seed=0,
                        tensorboard_log=None, device="cpu")
    with pytest.raises(ConfigError, match="actor_learning_rate"):  # only ddpg has it
        build_algorithm("td3", gym.make("Pendulum-v1"), {"actor_learning_rate": 1e-4}, seed=0,
                        tensorboard_log=None, device="cpu")


# -- the paper config ---------------------------------------------------------------------------------------------

def test_paper_config_holds_the_authors_settings():
    config = load_config(PAPER)
    params = config.agent.hyperparams
    assert config.agent.algo == "ddpg" and config.agent.total_timesteps == 150_000 and config.agent.n_envs == 1
    assert (params["learning_rate"], params["actor_learning_rate"]) == (1e-3, 1e-4)
    assert params["learning_starts"] == 25_000 and params["buffer_size"] == 25_000 and params["batch_size"] == 128
    assert (params["gamma"], params["tau"]) == (0.99, 0.001)
    noise = make_action_noise(params["action_noise"], gym.make(ENV).action_space)
    assert isinstance(noise, AnnealedOrnsteinUhlenbeckNoise)
    assert (noise.theta, noise.dt, noise.start, noise.decay_steps) == (0.15, 1.0, 25_000, 100_000)
    assert noise.sigma[0] == pytest.approx(0.1)  # 0.2 torque on the +-2 torque range, in SB3's [-1, 1] actions
    assert noise.sigma_at(100_000)[0] == 0.0 and not noise.reset_each_episode
    assert config.methods == ["gmc", "mvae", "muse"] and config.seeds == [0, 1, 2]
    assert config.evaluate.encoding_rules == ["mean"] and config.evaluate.action_limit == 0.0
    assert config.evaluate.conditions == ["complete", "image", "sound"] and config.evaluate.episodes == 100


def test_paper_config_trains_a_few_steps(tmp_path):
    data = to_dict(load_config(PAPER))
    agent = data["agent"]
    agent.update(total_timesteps=60, eval_freq=30, eval_episodes=1, checkpoint_freq=30, device="cpu")
    agent["hyperparams"].update(learning_starts=30, buffer_size=100, batch_size=16)
    agent["hyperparams"]["action_noise"].update(start=30, decay_steps=50)
    config = from_dict(ExperimentConfig, data)
    out = train_agent(config, "state", 0, tmp_path / "state", progress_bar=False)
    loaded = load_agent(out)
    assert loaded.algo == "ddpg" and loaded.info["num_timesteps"] == 60
    assert loaded.model.actor.optimizer.param_groups[0]["lr"] == 1e-4


# -- evaluation action range --------------------------------------------------------------------------------------

def test_action_limit_clips_and_is_checked():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    predict = clipped_predictor(lambda obs: np.array([[-1.7], [0.4], [2.0]]), space, 1.0)
    np.testing.assert_array_equal(predict(None), [[-1.0], [0.4], [1.0]])
    with pytest.raises(ConfigError, match="Box"):
        clipped_predictor(lambda obs: obs, gym.spaces.Discrete(2), 1.0)
    with pytest.raises(ConfigError, match="no action"):
        clipped_predictor(lambda obs: obs, gym.spaces.Box(2.0, 3.0, (1,)), 1.0)
    with pytest.raises(ConfigError, match="action_limit"):
        EvaluateConfig(action_limit=-1.0)


# -- the single-sensor rules ----------------------------------------------------------------------------------------

def test_encoding_rule_switches_between_projection_and_plain_mean():
    torch.manual_seed(0)
    model = GMCModel.from_space(space_m2(), ModelConfig())
    obs = sample_batch(space_m2(), 6)
    with torch.no_grad():
        plain = model.modality_latents(obs, ["sound"])["sound"]
        assert model.single_sensor_rule == "mean" and torch.equal(model.encode(obs, ["sound"]), plain)
        with pytest.raises(ModalityError, match="projection"):
            with model.encoding_rule("projection"):
                pass
        model.set_reference_latents(torch.eye(10)[:6], 1)
        projected = model.encode(obs, ["sound"])
        assert model.single_sensor_rule == "projection" and torch.equal(projected, model.project(plain))
        assert not torch.allclose(projected, plain)
        complete = model.encode(obs)
        with model.encoding_rule("mean"):
            assert model.single_sensor_rule == "mean"
            assert torch.equal(model.encode(obs, ["sound"]), plain)
            assert torch.equal(model.encode(obs), complete)  # the joint path under every rule
        assert torch.equal(model.encode(obs, ["sound"]), projected)  # restored after the block
        with pytest.raises(ModalityError, match="unknown encoding rule"):
            with model.encoding_rule("median"):
                pass


def experiment() -> ExperimentConfig:
    """The tiny PendulumSound experiment with reference latents stored (the projection rule is the subject here)."""
    data = to_dict(tiny_pendulum_experiment())
    data["pretrain"]["reference_latents"] = 200
    return from_dict(ExperimentConfig, data)


@pytest.fixture(scope="module")
def gmc_agent(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    data = collect(experiment(), root / "data", progress=False)
    encoder = pretrain(experiment(), data, root / "gmc", progress=False)
    return train_agent(experiment(), "gmc", 0, root / "agent", encoder_dir=encoder, progress_bar=False)


def test_evaluate_agent_reports_both_rules_on_the_same_agent(gmc_agent):
    agent = load_agent(gmc_agent)
    assert agent.encoder.single_sensor_rule == "projection"  # pretraining stored reference latents
    conditions = ["complete", "image", "sound"]
    record = evaluate_agent(agent, conditions, 2, [0], 2, progress=False, encoding_rules=["mean", "projection"])
    own, mean, projection = record["evaluation"], record["rules"]["mean"], record["rules"]["projection"]
    assert mean["complete"] == own["complete"] == projection["complete"]
    for condition in ("image", "sound"):  # the checkpoint's own rule is the projection: the same episodes
        assert projection[condition]["per_seed"][0]["returns"] == own[condition]["per_seed"][0]["returns"]
    assert any(mean[c]["per_seed"][0]["returns"] != own[c]["per_seed"][0]["returns"] for c in ("image", "sound"))
    assert agent.encoder.single_sensor_rule == "projection"  # the agent's encoder is left as it was
    assert [row for row, _ in record_rows(record)] == ["gmc", "gmc-mean", "gmc-projection"]


def test_evaluate_command_adds_the_mean_row(gmc_agent, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--agent", str(gmc_agent), "--out", str(out), "--seeds", "0", "--no-progress",
                 "--evaluate.episodes", "2", "--evaluate.n_envs", "2", "--evaluate.conditions", "[complete,sound]",
                 "--evaluate.encoding_rules", "[mean]", "--evaluate.action_limit", "1.0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == ["gmc", "gmc-mean"]
    assert results["settings"]["encoding_rules"] == ["mean"] and results["settings"]["action_limit"] == 1.0
    table = results["results"]
    assert table["gmc-mean"]["complete"] == table["gmc"]["complete"]
    assert "| gmc-mean |" in (out / "results.md").read_text()


def test_evaluation_record_with_rules_is_checked(tmp_path, gmc_agent):
    record = evaluate_agent(load_agent(gmc_agent), ["complete"], 1, [0], 1, progress=False, encoding_rules=["mean"])
    path = tmp_path / "gmc-seed0.json"
    path.write_text(json.dumps(record))
    assert read_evaluation_record(path)["rules"]["mean"]["complete"] == record["evaluation"]["complete"]
    broken = copy.deepcopy(record)
    broken["rules"]["mean"] = [1, 2]
    path.write_text(json.dumps(broken))
    with pytest.raises(ConfigError, match="rules.mean"):
        read_evaluation_record(path)


def test_resumed_training_continues_the_noise_schedule(tmp_path):
    """A run resumed from its step-30 checkpoint starts with the annealed noise at call 30, not at call 0."""
    from stable_baselines3.common.callbacks import BaseCallback

    class NoiseCalls(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.at_start: list[int] = []

        def _on_training_start(self) -> None:
            self.at_start.append(self.model.action_noise.calls)

        def _on_step(self) -> bool:
            return True

    data = to_dict(load_config(PAPER))
    agent = data["agent"]
    agent.update(total_timesteps=30, eval_freq=0, checkpoint_freq=30, device="cpu")
    agent["hyperparams"].update(learning_starts=10, buffer_size=100, batch_size=8)
    agent["hyperparams"]["action_noise"].update(start=10, decay_steps=50)
    out = tmp_path / "state"
    first = NoiseCalls()
    train_agent(from_dict(ExperimentConfig, data), "state", 0, out, progress_bar=False, callbacks=[first])
    agent["total_timesteps"] = 60
    resumed = NoiseCalls()
    train_agent(from_dict(ExperimentConfig, data), "state", 0, out, resume=True, progress_bar=False,
                callbacks=[resumed])
    assert first.at_start == [0] and resumed.at_start == [30]

    noise = AnnealedOrnsteinUhlenbeckNoise(np.zeros(1), np.ones(1), decay_steps=10)
    continue_noise_schedule(noise, 5)
    assert noise.calls == 5 and noise.sigma_at(noise.calls)[0] == pytest.approx(0.5)
    continue_noise_schedule(None, 5)  # no noise: nothing to do
