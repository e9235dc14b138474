"""The latent env id ``gmc_rl/GMCLatent-v0`` made the way other code makes envs from ids: ``gym.make`` with a
``render_mode``, Gymnasium's ``check_env`` (which remakes the env once per declared render mode), SB3's
``make_vec_env`` (which passes ``render_mode="rgb_array"`` by default) and SB3's video recorder (rl-zoo3's
``record_video``)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from gmc_rl.checkpoint import save_gmc
from gmc_rl.config import ModelConfig
from gmc_rl.errors import ConfigError
from gmc_rl.model import GMCModel
from gmc_rl.wrappers import LATENT_ENV_ID, make_latent_env

PENDULUM = "gmc_rl/PendulumSound-v0"
CARTPOLE = "gmc_rl/CartPoleSensors-v0"
SMALL = ModelConfig(latent_dim=6, common_dim=16, head_hidden=16, conv_channels=[4, 8], mlp_hidden=[16])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """A small, untrained GMC checkpoint per env id (the tests check plumbing, not representation quality)."""
    import gmc_rl  # noqa: F401  (registers the gmc_rl ids)

    out = {}
    for env_id in (PENDULUM, CARTPOLE):
        torch.manual_seed(0)
        model = GMCModel.from_space(gym.make(env_id).observation_space, SMALL)
        directory = tmp_path_factory.mktemp("ckpt") / "gmc"
        out[env_id] = str(save_gmc(model, directory, {"env_id": env_id}))
    return out


def test_latent_id_renders_the_underlying_envs_frame(checkpoints):
    env = gym.make(LATENT_ENV_ID, env_id=PENDULUM, checkpoint=checkpoints[PENDULUM], render_mode="rgb_array",
                   p=0.3, per="step")
    raw = gym.make(PENDULUM, render_mode="rgb_array")
    assert env.render_mode == "rgb_array" and env.metadata["render_modes"] == ["rgb_array"]
    env.reset(seed=4)
    raw.reset(seed=4)
    for action in (1.0, -0.5, 2.0):
        env.step(np.array([action], np.float32))
        raw.step(np.array([action], np.float32))
    frame, expected = env.render(), raw.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape == expected.shape
    np.testing.assert_array_equal(frame, expected)  # the same pendulum, drawn by the env itself


def test_latent_id_accepts_render_mode_none_and_rejects_a_conflict(checkpoints):
    env = gym.make(LATENT_ENV_ID, env_id=PENDULUM, checkpoint=checkpoints[PENDULUM], render_mode=None)
    env.reset(seed=0)
    assert env.render_mode is None
    with pytest.warns(UserWarning, match="without a render_mode"):  # the underlying env's own answer
        assert env.render() is None
    with pytest.raises(ConfigError, match=r"render_mode='rgb_array' conflicts with env_kwargs\['render_mode'\]"):
        make_latent_env(PENDULUM, checkpoints[PENDULUM], env_kwargs={"render_mode": "human"}, render_mode="rgb_array")
    # the same mode given in both places is fine
    same = make_latent_env(PENDULUM, checkpoints[PENDULUM], env_kwargs={"render_mode": "rgb_array"},
                           render_mode="rgb_array")
    assert same.render_mode == "rgb_array"


@pytest.mark.parametrize(
    ("env_id", "kwargs", "allowed"),
    [
        # CartPoleSensors: every Gymnasium warning is an error, apart from the notice that a wrapped env is checked.
        (CARTPOLE, {"render_mode": "rgb_array"}, ()),
        # PendulumSound with per-step dropout (seeding of the dropout generator is checked too); its action space is
        # the pendulum's torque range [-2, 2], which Gymnasium advises to normalise: that advice is about the
        # underlying env, not the latent wrappers.
        (PENDULUM, {"render_mode": None, "p": 0.3, "per": "step"}, (".*symmetric and normalized space",)),
    ],
)
def test_latent_id_passes_gymnasium_check_env(checkpoints, env_id, kwargs, allowed):
    env = gym.make(LATENT_ENV_ID, env_id=env_id, checkpoint=checkpoints[env_id], **kwargs)
    # With a spec and declared render modes, check_env remakes the env in each mode and checks its render();
    # without them it would warn that it skipped that check (an error below).
    assert env.spec is not None and env.metadata["render_modes"] == ["rgb_array"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        for message in allowed:
            warnings.filterwarnings("ignore", message=message)
        gym_check_env(env)


def test_sb3_make_vec_env_builds_the_latent_id(checkpoints):
    env_kwargs = {"env_id": PENDULUM, "checkpoint": checkpoints[PENDULUM], "p": 0.3, "per": "step"}
    venv = make_vec_env(LATENT_ENV_ID, n_envs=2, seed=0, vec_env_cls=DummyVecEnv, env_kwargs=env_kwargs)
    obs = venv.reset()
    assert obs.shape == (2, SMALL.latent_dim) and obs.dtype == np.float32
    assert venv.render_mode == "rgb_array"  # make_vec_env's default, now accepted instead of a ConfigError
    frames = venv.get_images()
    assert len(frames) == 2 and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)

    # Seeded the same way, a second vector env gives the same latents: the per-step dropout follows the seeds.
    again = make_vec_env(LATENT_ENV_ID, n_envs=2, seed=0, vec_env_cls=DummyVecEnv,
                         env_kwargs={**env_kwargs, "render_mode": None})
    assert again.render_mode is None
    np.testing.assert_array_equal(again.reset(), obs)
    actions = np.array([[1.0], [-1.0]], np.float32)
    for _ in range(5):
        first, second = venv.step(actions)[0], again.step(actions)[0]
        np.testing.assert_array_equal(first, second)


def test_sb3_video_recorder_records_the_latent_id(checkpoints, tmp_path):
    """What rl-zoo3's ``record_video`` does: make_vec_env with render_mode="rgb_array", then VecVideoRecorder."""
    pytest.importorskip("moviepy")
    import cv2
    from stable_baselines3.common.vec_env import VecVideoRecorder

    env_kwargs = {"env_id": CARTPOLE, "checkpoint": checkpoints[CARTPOLE], "render_mode": "rgb_array"}
    venv = make_vec_env(LATENT_ENV_ID, n_envs=1, seed=0, env_kwargs=env_kwargs)
    venv = VecVideoRecorder(venv, str(tmp_path), record_video_trigger=lambda step: step == 0, video_length=8,
                            name_prefix="latent")
    venv.reset()
    for _ in range(8):
        venv.step(np.array([0]))
    venv.close()
    (video,) = tmp_path.glob("latent*.mp4")
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count >= 8
