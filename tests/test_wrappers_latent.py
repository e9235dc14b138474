"""GMCLatent, VecGMCLatent and make_latent_env on real GMC models (randomly initialised: these tests check the
encoding semantics and plumbing, not representation quality)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from helpers import ToyEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from gmc_rl.checkpoint import save_gmc
from gmc_rl.config import ModelConfig
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError, SensorValueError
from gmc_rl.model import GMCModel
from gmc_rl.wrappers import (
    LATENT_ENV_ID,
    GaussianNoise,
    GMCLatent,
    ModalityDropout,
    NonFiniteGuard,
    StuckSensor,
    VecGMCLatent,
    make_latent_env,
    make_sensor_env,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*different from the unwrapped version"),
    pytest.mark.filterwarnings("ignore:.*symmetric and normalized space"),
]

SMALL = ModelConfig(latent_dim=6, common_dim=16, head_hidden=16, conv_channels=[4, 8], mlp_hidden=[16])
ACTION = np.array([0.3], dtype=np.float32)


def toy_model(joints: bool = False, seed: int = 0) -> GMCModel:
    torch.manual_seed(seed)
    return GMCModel.from_space(ToyEnv(joints=joints).observation_space, SMALL)


def batch(obs: dict) -> dict:
    return {key: np.asarray(value)[None] for key, value in obs.items()}


def test_complete_observation_uses_the_joint_encoder():
    model = toy_model()
    raw_env, env = ToyEnv(), GMCLatent(ToyEnv(), model)
    assert env.observation_space == spaces.Box(-1, 1, (6,), np.float32)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    raw, _ = raw_env.reset(seed=0)
    z, _ = env.reset(seed=0)
    assert z.dtype == np.float32 and z.shape == (6,)
    with torch.no_grad():
        joint = model.joint_latent(batch(raw))[0].numpy()
        per_modality = model.modality_latents(batch(raw))
    np.testing.assert_allclose(z, joint, atol=1e-6)
    assert np.linalg.norm(z) == pytest.approx(1.0, abs=1e-5)
    mean = torch.stack(list(per_modality.values())).mean(0)[0].numpy()
    assert not np.allclose(z, mean, atol=1e-3)  # the joint path is not the mean path


def test_subset_latent_is_the_mean_of_the_single_modality_latents():
    model = toy_model(joints=True)
    env = GMCLatent(ModalityDropout(ToyEnv(joints=True), drop=["image"]), model)
    raw_env = ToyEnv(joints=True)
    z, _ = env.reset(seed=3)
    raw, _ = raw_env.reset(seed=3)
    for _ in range(3):
        with torch.no_grad():
            sound = model.encode(batch(raw), ["sound"])[0].numpy()
            joints = model.encode(batch(raw), ["joints"])[0].numpy()
        np.testing.assert_allclose(z, (sound + joints) / 2, atol=1e-6)
        z, *_ = env.step(ACTION)
        raw, *_ = raw_env.step(ACTION)
    # one modality present: exactly its own latent; the zero-filled image is never read.
    env = GMCLatent(ModalityDropout(ToyEnv(), drop=["image"]), toy_model())
    z, _ = env.reset(seed=1)
    raw, _ = ToyEnv().reset(seed=1)
    with torch.no_grad():
        np.testing.assert_allclose(z, env.model.modality_latents(batch(raw), ["sound"])["sound"][0].numpy(), atol=1e-6)


def test_encoder_restricted_to_some_modalities():
    model = toy_model()
    env = GMCLatent(ToyEnv(), model, modalities=["image"])
    z, _ = env.reset(seed=0)
    raw, _ = ToyEnv().reset(seed=0)
    with torch.no_grad():
        np.testing.assert_allclose(z, model.encode(batch(raw), ["image"])[0].numpy(), atol=1e-6)
    masked = GMCLatent(ModalityDropout(ToyEnv(), drop=["image"]), model, modalities=["image"])
    with pytest.raises(ModalityError, match=r"every modality is missing.*only uses \['image'\]"):
        masked.reset(seed=0)


def test_loads_a_checkpoint_directory(tmp_path):
    model = toy_model()
    save_gmc(model, tmp_path / "gmc", {"env_id": "toy"})
    from_path = GMCLatent(ToyEnv(), tmp_path / "gmc")
    from_model = GMCLatent(ToyEnv(), model)
    np.testing.assert_allclose(from_path.reset(seed=0)[0], from_model.reset(seed=0)[0], atol=1e-6)
    assert not from_path.model.training


@pytest.mark.parametrize("make", [
    lambda: GMCLatent(ToyEnv(), toy_model()),
    lambda: GMCLatent(ModalityDropout(ToyEnv(), p=0.3, per="step", seed=0), toy_model()),
    lambda: GMCLatent(ModalityDropout(StuckSensor(GaussianNoise(ToyEnv(), "sound", 0.2), "image", 0.1), p=0.4),
                      toy_model()),
    lambda: GMCLatent(ModalityDropout(NonFiniteGuard(ToyEnv(nan_at={2: "sound"}), "drop"), p=0.3, per="step"),
                      toy_model()),
])
def test_check_env_passes_on_latent_stacks(make):
    gym_check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=False)


def test_mismatched_checkpoint_and_bad_arguments_are_clear_errors():
    with pytest.raises(CheckpointError, match=r"modalities \['joints'\] are expected but missing"):
        GMCLatent(ToyEnv(), toy_model(joints=True))
    other = GMCModel.from_space(
        spaces.Dict({"image": spaces.Box(0, 255, (2, 16, 16), np.uint8), "sound": spaces.Box(-1, 1, (3,), np.float32)}),
        SMALL,
    )
    with pytest.raises(CheckpointError, match=r"modality 'image': expected shape \(2, 16, 16\), got \(2, 8, 8\)"):
        GMCLatent(ToyEnv(), other)
    with pytest.raises(CheckpointError, match=r"does not match.*'image'"):
        VecGMCLatent(DummyVecEnv([ToyEnv]), other)
    with pytest.raises(ModalityError, match=r"unknown modality 'sond'.*Did you mean 'sound'"):
        GMCLatent(ToyEnv(), toy_model(), modalities=["sond"])
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        GMCLatent(ToyEnv(), "/nonexistent/gmc")
    env = GMCLatent(ModalityDropout(ToyEnv(), drop=["image", "sound"], allow_all=True), toy_model())
    with pytest.raises(ModalityError, match="every modality is missing"):
        env.reset(seed=0)
    env = GMCLatent(ToyEnv(nan_at={1: "sound"}), toy_model())
    env.reset(seed=0)
    with pytest.raises(SensorValueError, match="'sound'"):
        env.step(ACTION)


def lockstep(make_inner, n_envs: int, steps: int, vec_cls, model: GMCModel, seed: int = 10):
    """Step a VecGMCLatent and n single GMCLatent envs with the same seeds/actions; return both latents + terminals."""
    venv = VecGMCLatent(vec_cls([lambda i=i: make_inner(i) for i in range(n_envs)]), model)
    singles = [GMCLatent(make_inner(i), model) for i in range(n_envs)]
    venv.seed(seed)
    vec_z = [venv.reset()]
    single_z = [np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])]
    terminals = []
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (n_envs, 1)).astype(np.float32)
        z, _, dones, infos = venv.step(actions)
        row = []
        for i, env in enumerate(singles):
            obs, _, terminated, truncated, _ = env.step(actions[i])
            if terminated or truncated:
                assert dones[i]
                terminals.append((infos[i]["terminal_observation"], obs))
                obs, _ = env.reset()
            row.append(obs)
        vec_z.append(z)
        single_z.append(np.stack(row))
    venv.close()
    return np.array(vec_z), np.array(single_z), terminals


def test_vec_wrapper_matches_single_env_wrapper_dummy():
    model = toy_model(joints=True)

    def make_inner(i):
        return ModalityDropout(ToyEnv(joints=True, horizon=7), p=0.4, per="step", seed=i)

    vec_z, single_z, terminals = lockstep(make_inner, 4, 20, DummyVecEnv, model)
    assert vec_z.shape == (21, 4, 6) and vec_z.dtype == np.float32
    np.testing.assert_allclose(vec_z, single_z, atol=1e-5)
    assert len(terminals) == 8
    for vec_terminal, single_terminal in terminals:
        assert vec_terminal.shape == (6,)
        np.testing.assert_allclose(vec_terminal, single_terminal, atol=1e-5)


def test_vec_wrapper_matches_single_env_wrapper_subproc():
    model = toy_model()

    def make_inner(i):
        return ModalityDropout(ToyEnv(horizon=5), p=0.3, per="episode", seed=i)

    def subproc(fns):
        return SubprocVecEnv(fns, start_method="fork")

    vec_z, single_z, terminals = lockstep(make_inner, 3, 12, subproc, model)
    np.testing.assert_allclose(vec_z, single_z, atol=1e-5)
    assert len(terminals) == 6
    for vec_terminal, single_terminal in terminals:
        np.testing.assert_allclose(vec_terminal, single_terminal, atol=1e-5)


def test_vec_wrapper_does_one_forward_pass_per_availability_pattern():
    model = toy_model()
    calls = []
    original = model.encode

    def counting_encode(obs, modalities=None):
        calls.append((len(next(iter(obs.values()))), None if modalities is None else tuple(modalities)))
        return original(obs, modalities)

    model.encode = counting_encode
    venv = VecGMCLatent(DummyVecEnv([lambda: ToyEnv(horizon=3)] * 8), model)
    venv.reset()
    venv.step(np.zeros((8, 1), np.float32))
    assert calls == [(8, None), (8, None)]  # all complete: one joint pass for the 8 envs
    calls.clear()
    venv.step(np.zeros((8, 1), np.float32))
    venv.step(np.zeros((8, 1), np.float32))  # episodes end: 8 observations + 8 terminal observations
    assert calls == [(8, None), (16, None)]
    fixed = [lambda: ModalityDropout(ToyEnv(), drop=["image"]), lambda: ModalityDropout(ToyEnv())] * 4
    venv = VecGMCLatent(DummyVecEnv(fixed), model)
    calls.clear()
    venv.reset()
    assert sorted(calls, key=str) == sorted([(4, None), (4, ("sound",))], key=str)


def test_vec_wrapper_trains_with_sb3():
    from stable_baselines3 import SAC

    venv = VecGMCLatent(DummyVecEnv([lambda: ModalityDropout(ToyEnv(), p=0.3, per="step")] * 2), toy_model())
    agent = SAC("MlpPolicy", venv, learning_starts=10, batch_size=8, buffer_size=100, seed=0, device="cpu")
    agent.learn(30)
    action, _ = agent.predict(venv.reset(), deterministic=True)
    assert action.shape == (2, 1)


@pytest.fixture(scope="module")
def pendulum_checkpoint(tmp_path_factory):
    import gmc_rl  # noqa: F401  (registers the gmc_rl ids)

    env = gym.make("gmc_rl/PendulumSound-v0")
    torch.manual_seed(0)
    model = GMCModel.from_space(env.observation_space, ModelConfig())
    return save_gmc(model, tmp_path_factory.mktemp("ckpt") / "gmc", {"env_id": "gmc_rl/PendulumSound-v0"})


def test_make_latent_env_builds_the_stack(pendulum_checkpoint):
    env = make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, p=0.3, per="step", seed=0)
    assert env.observation_space == spaces.Box(-1, 1, (10,), np.float32)
    assert isinstance(env.env, ModalityDropout) and isinstance(env.env.env, NonFiniteGuard)
    gym_check_env(env, skip_render_check=True)
    plain = make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, env_kwargs={}, modalities=["sound"])
    assert isinstance(plain.env, NonFiniteGuard) and plain.modalities == ["sound"]
    z, info = plain.reset(seed=0)
    assert z.shape == (10,) and "state" in info


def test_latent_env_id_for_rl_zoo(pendulum_checkpoint):
    env = gym.make(LATENT_ENV_ID, env_id="gmc_rl/PendulumSound-v0", checkpoint=str(pendulum_checkpoint), p=0.2)
    z, _ = env.reset(seed=0)
    assert env.observation_space.contains(z)
    for _ in range(3):
        z, reward, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(z) and np.isfinite(reward)
    sb3_check_env(env, warn=False)


def test_make_latent_env_errors(pendulum_checkpoint):
    with pytest.raises(ConfigError, match=r"'gmc_rl/PendulumSond-v0' is not registered.*PendulumSound-v0"):
        make_latent_env("gmc_rl/PendulumSond-v0", pendulum_checkpoint)
    with pytest.raises(ConfigError, match=r"unknown keyword argument\(s\) \['dorp'\].*Did you mean 'drop'"):
        make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, dorp=["image"])
    with pytest.raises(ConfigError, match="always exposes the availability mask"):
        make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, p=0.3, expose_mask=False)
    with pytest.raises(ConfigError, match="dropout probability"):
        make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, p=3)
    toy_ckpt = save_gmc(toy_model(), pendulum_checkpoint.parent / "toy", {})
    with pytest.raises(CheckpointError, match=r"modality 'image': expected shape \(2, 8, 8\), got \(2, 60, 60\)"):
        make_latent_env("gmc_rl/PendulumSound-v0", toy_ckpt)


def test_make_sensor_env_is_the_per_env_part_of_a_latent_vec_env(pendulum_checkpoint):
    raw = make_sensor_env("gmc_rl/PendulumSound-v0", p=0.3, per="step", expose_mask=False)
    assert raw.observation_space == gym.make("gmc_rl/PendulumSound-v0").observation_space
    fns = [lambda i=i: make_sensor_env("gmc_rl/PendulumSound-v0", p=0.3, per="step", seed=i) for i in range(3)]
    venv = VecGMCLatent(DummyVecEnv(fns), pendulum_checkpoint)
    venv.seed(0)
    z = venv.reset()
    single = make_latent_env("gmc_rl/PendulumSound-v0", pendulum_checkpoint, p=0.3, per="step", seed=2)
    np.testing.assert_allclose(z[2], single.reset(seed=2)[0], atol=1e-5)
    with pytest.raises(ConfigError, match=r"unknown keyword argument\(s\) \['pre'\].*Did you mean 'per'"):
        make_sensor_env("gmc_rl/PendulumSound-v0", pre="step")
