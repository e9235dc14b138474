"""gmc_rl.agents.registry: SB3 algorithms by name from rl-zoo3-style hyperparameters."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import CombinedExtractor
from torch import nn

from gmc_rl.agents.extractors import CompactCNN, MultimodalExtractor, SmallCNN
from gmc_rl.agents.registry import (
    ALGORITHMS,
    DecayingActionNoise,
    build_algorithm,
    make_action_noise,
    resolve_hyperparams,
)
from gmc_rl.errors import ConfigError

SMALL = {"policy_kwargs": {"net_arch": [16]}}


@pytest.fixture(scope="module")
def pendulum():
    env = gym.make("Pendulum-v1")
    yield env
    env.close()


@pytest.fixture(scope="module")
def cartpole():
    env = gym.make("CartPole-v1")
    yield env
    env.close()


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg", "ppo", "a2c"])
def test_continuous_algorithms_build(algo, pendulum):
    model = build_algorithm(algo, pendulum, SMALL, seed=0, tensorboard_log=None, device="cpu")
    assert type(model) is ALGORITHMS[algo]
    assert model.seed == 0
    assert type(model.policy).__name__ in ("SACPolicy", "TD3Policy", "ActorCriticPolicy")


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c"])
def test_discrete_algorithms_build(algo, cartpole):
    model = build_algorithm(algo, cartpole, SMALL, seed=1, tensorboard_log=None, device="cpu")
    assert type(model) is ALGORITHMS[algo]


def test_dqn_refused_on_continuous_actions(pendulum):
    with pytest.raises(ConfigError, match="dqn.*Discrete action space.*Box"):
        build_algorithm("dqn", pendulum, {}, seed=0, tensorboard_log=None, device="cpu")


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_continuous_only_algorithms_refused_on_discrete_actions(algo, cartpole):
    with pytest.raises(ConfigError, match=f"{algo}.*continuous Box action space"):
        build_algorithm(algo, cartpole, {}, seed=0, tensorboard_log=None, device="cpu")


def test_unknown_algorithm_suggests(pendulum):
    with pytest.raises(ConfigError, match="unknown algorithm 'sca'.*Did you mean 'sac'"):
        build_algorithm("sca", pendulum, {}, seed=0, tensorboard_log=None)


class _DictEnv(gym.Env):
    """A minimal env with a Dict observation (image + vector), to check the policy choice."""

    observation_space = spaces.Dict({
        "image": spaces.Box(0, 255, (2, 40, 40), np.uint8),
        "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32),
    })
    action_space = spaces.Box(-2, 2, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_dict_observations_get_multi_input_policy():
    model = build_algorithm("ppo", _DictEnv(), {"n_steps": 16, "batch_size": 16}, seed=0, tensorboard_log=None,
                            device="cpu")
    assert isinstance(model.policy, MultiInputActorCriticPolicy)
    assert isinstance(model.policy.features_extractor, CombinedExtractor)
    assert "NatureCNN" in type(model.policy.features_extractor.extractors["image"]).__name__


def test_small_images_get_a_small_cnn():
    class Small(_DictEnv):
        observation_space = spaces.Dict({"image": spaces.Box(0, 255, (2, 20, 20), np.uint8),
                                         "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})

    model = build_algorithm("ppo", Small(), {"n_steps": 16, "batch_size": 16}, seed=0, tensorboard_log=None,
                            device="cpu")
    extractor = model.policy.features_extractor
    assert isinstance(extractor, MultimodalExtractor)
    assert isinstance(extractor.extractors["image"], SmallCNN) and extractor.features_dim == 256 + 12
    model.learn(32)  # forward and backward passes work on 20x20 images


def test_named_extractor_with_a_shared_compact_cnn_trains():
    """The raw agent's cheaper network: one CompactCNN shared by SAC's actor and critic, named in the config."""
    env = gym.make("gmc_rl/PendulumSound-v0")
    kwargs = {"features_extractor_class": "multimodal", "features_extractor_kwargs": {"cnn": "compact"},
              "share_features_extractor": True, "net_arch": [32, 32]}
    model = build_algorithm("sac", env, {"buffer_size": 200, "batch_size": 8, "learning_starts": 8,
                                         "policy_kwargs": kwargs}, seed=0, tensorboard_log=None, device="cpu")
    extractor = model.policy.actor.features_extractor
    assert extractor is model.policy.critic.features_extractor
    assert isinstance(extractor, MultimodalExtractor) and isinstance(extractor.extractors["image"], CompactCNN)
    assert extractor.features_dim == 256 + 12
    before = [p.detach().clone() for p in extractor.parameters()]
    model.learn(24)
    assert any(not (a == b.detach()).all() for a, b in zip(before, extractor.parameters()))  # the critic trains it
    env.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"features_extractor_class": "multimodl"}, "unknown extractor 'multimodl'; valid: ['multimodal']. Did you mean"),
    ({"features_extractor_class": "torch.nn.Identity"}, "unknown extractor 'torch.nn.Identity'"),
    ({"features_extractor_class": "multimodal", "features_extractor_kwargs": {"cnn": "compct"}},
     "unknown cnn 'compct'; valid: ['auto', 'nature', 'small', 'compact']. Did you mean 'compact'?"),
])
def test_extractor_names_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_algorithm("sac", gym.make("gmc_rl/PendulumSound-v0"), {"buffer_size": 100, "policy_kwargs": kwargs},
                        seed=0, tensorboard_log=None, device="cpu")


def test_compact_cnn_refuses_images_too_small_for_it():
    class Tiny(_DictEnv):
        observation_space = spaces.Dict({"image": spaces.Box(0, 255, (1, 8, 8), np.uint8)})

    with pytest.raises(ConfigError, match="needs images of at least 16x16 pixels, but 'image' is 8x8"):
        build_algorithm("ppo", Tiny(), {"n_steps": 16, "batch_size": 16, "policy_kwargs": {
            "features_extractor_class": "multimodal", "features_extractor_kwargs": {"cnn": "compact"}}},
            seed=0, tensorboard_log=None, device="cpu")


def test_box_observations_get_mlp_policy(pendulum):
    model = build_algorithm("ppo", pendulum, {"n_steps": 16, "batch_size": 16}, seed=0, tensorboard_log=None,
                            device="cpu")
    assert type(model.policy).__name__ == "ActorCriticPolicy"
    assert type(model.policy.features_extractor).__name__ == "FlattenExtractor"


def test_unknown_hyperparameter_lists_valid_ones(pendulum):
    with pytest.raises(ConfigError, match="'learnin_rate' is not an argument of SAC.*Did you mean 'learning_rate'"):
        resolve_hyperparams("sac", {"learnin_rate": 1e-3}, pendulum.action_space)
    with pytest.raises(ConfigError, match="'buffer_size' is not an argument of PPO"):
        resolve_hyperparams("ppo", {"buffer_size": 100}, pendulum.action_space)


def test_rl_zoo_keys_point_to_their_config_key(pendulum):
    with pytest.raises(ConfigError, match="n_timesteps.*agent.total_timesteps"):
        resolve_hyperparams("sac", {"n_timesteps": 1000}, pendulum.action_space)
    with pytest.raises(ConfigError, match="seed.*agent seed"):
        resolve_hyperparams("sac", {"seed": 3}, pendulum.action_space)


def test_policy_kwargs_and_schedules(pendulum):
    params = resolve_hyperparams("sac", {
        "policy_kwargs": {"net_arch": [8, 8], "activation_fn": "tanh"},
        "learning_rate": "lin_0.001",
        "train_freq": [1, "episode"],
    }, pendulum.action_space)
    assert params["policy_kwargs"]["activation_fn"] is nn.Tanh
    assert params["learning_rate"](1.0) == pytest.approx(1e-3)
    assert params["learning_rate"](0.5) == pytest.approx(5e-4)
    assert params["train_freq"] == (1, "episode")
    model = build_algorithm("sac", pendulum, {"policy_kwargs": {"net_arch": [8], "activation_fn": "relu"}},
                            seed=0, tensorboard_log=None, device="cpu")
    assert any(isinstance(m, nn.ReLU) for m in model.policy.actor.modules())


def test_bad_hyperparameter_values(pendulum):
    with pytest.raises(ConfigError, match="strings like .* are not evaluated"):
        resolve_hyperparams("sac", {"policy_kwargs": "dict(net_arch=[64])"}, pendulum.action_space)
    with pytest.raises(ConfigError, match="unknown activation 'relux'"):
        resolve_hyperparams("sac", {"policy_kwargs": {"activation_fn": "relux"}}, pendulum.action_space)
    with pytest.raises(ConfigError, match="learning_rate must be a number or 'lin_<number>'"):
        resolve_hyperparams("sac", {"learning_rate": "fast"}, pendulum.action_space)
    with pytest.raises(ConfigError, match="agent.hyperparams must be a mapping"):
        resolve_hyperparams("sac", [1, 2], pendulum.action_space)


def test_action_noise_from_config(pendulum):
    noise = make_action_noise({"type": "ornstein_uhlenbeck", "sigma": 0.2, "theta": 0.1}, pendulum.action_space)
    assert isinstance(noise, OrnsteinUhlenbeckActionNoise)
    np.testing.assert_allclose(noise._sigma, [0.2])
    normal = make_action_noise({"type": "normal", "sigma": [0.3]}, pendulum.action_space)
    assert isinstance(normal, NormalActionNoise)
    model = build_algorithm("td3", pendulum, {"action_noise": {"type": "normal", "sigma": 0.1}, **SMALL},
                            seed=0, tensorboard_log=None, device="cpu")
    assert isinstance(model.action_noise, NormalActionNoise)


def test_decaying_noise_scale_goes_to_final():
    base = NormalActionNoise(mean=np.zeros(1), sigma=np.ones(1))
    noise = DecayingActionNoise(base, decay_steps=10, final_scale=0.0)
    assert noise.scale == 1.0
    for _ in range(10):
        noise()
    assert noise.scale == 0.0
    assert np.all(noise() == 0.0)


def test_bad_action_noise(pendulum, cartpole):
    with pytest.raises(ConfigError, match="action_noise.type must be one of"):
        make_action_noise({"type": "pink", "sigma": 0.1}, pendulum.action_space)
    with pytest.raises(ConfigError, match="unknown keys \\['theta'\\]"):
        make_action_noise({"type": "normal", "sigma": 0.1, "theta": 0.1}, pendulum.action_space)
    with pytest.raises(ConfigError, match="sigma must be a finite number or a list of 1"):
        make_action_noise({"type": "normal", "sigma": [0.1, 0.2]}, pendulum.action_space)
    with pytest.raises(ConfigError, match="needs a continuous Box action space"):
        make_action_noise({"type": "normal", "sigma": 0.1}, cartpole.action_space)
    with pytest.raises(ConfigError, match="decay_steps must be a positive integer"):
        make_action_noise({"type": "normal", "sigma": 0.1, "decay_steps": 0}, pendulum.action_space)


@pytest.mark.parametrize("spec, message", [
    ({"type": "normal", "decay_steps": True}, "decay_steps must be a positive integer"),
    ({"type": "normal", "decay_steps": 10, "final_scale": float("nan")}, "final_scale must be a finite number >= 0"),
    ({"type": "normal", "decay_steps": 10, "final_scale": -0.5}, "final_scale must be a finite number >= 0"),
    ({"type": "normal", "decay_steps": 10, "final_scale": "0.1"}, "final_scale must be a finite number >= 0"),
    ({"type": "ornstein_uhlenbeck", "theta": float("inf")}, "theta must be a finite number >= 0"),
    ({"type": "ornstein_uhlenbeck", "theta": "0.15"}, "theta must be a finite number >= 0"),
    ({"type": "ornstein_uhlenbeck", "dt": 0}, "dt must be a finite number > 0"),
    ({"type": "ornstein_uhlenbeck", "dt": True}, "dt must be a finite number > 0"),
])
def test_bad_noise_schedule_and_process_settings_are_refused_by_name(pendulum, spec, message):
    """The decaying and plain OU noises check their numbers as the annealed noise does (one shared check)."""
    with pytest.raises(ConfigError, match=f"action_noise.{message}"):
        make_action_noise({"sigma": 0.1, **spec}, pendulum.action_space)
