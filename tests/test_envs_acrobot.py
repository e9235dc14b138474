"""AcrobotSensors-v0: Gymnasium's Acrobot reused; the camera and the two-source sound reveal the arm."""

import math

import gymnasium as gym
import numpy as np
import pytest

import gmc_rl.envs  # noqa: F401  (registers the ids)
from gmc_rl.envs.acrobot_sensors import AcrobotSensorsEnv

ENV_ID = "gmc_rl/AcrobotSensors-v0"


def test_spaces_and_registration():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 500
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space["image"].shape == (2, 60, 60)
    assert env.observation_space["sound"].shape == (2, 2, 3, 2)
    assert env.unwrapped.state_space == gym.make("Acrobot-v1").observation_space


def test_dynamics_and_reward_are_gymnasiums_acrobot():
    ours, ref = gym.make(ENV_ID), gym.make("Acrobot-v1")
    _, info = ours.reset(seed=4)
    ref_obs, _ = ref.reset(seed=4)
    np.testing.assert_array_equal(info["state"], ref_obs)
    ours.action_space.seed(4)
    for _ in range(100):
        action = ours.action_space.sample()
        _, reward, term, trunc, info = ours.step(action)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(action)
        np.testing.assert_array_equal(info["state"], ref_obs)
        assert (reward, term, trunc) == (ref_reward, ref_term, ref_trunc)


def test_image_first_link_points_along_theta1():
    env = AcrobotSensorsEnv()
    env.reset(seed=3)
    env.action_space.seed(3)
    centre = (env.camera.height - 1) / 2
    rows, cols = np.mgrid[: env.camera.height, : env.camera.width]
    radius = np.hypot(cols - centre, rows - centre) / env.camera.pixels_per_unit
    near_pivot = (radius > 0.25) & (radius < 0.8)  # only the first link when the arm is not folded back
    checked = 0
    for _ in range(150):
        obs, _, _, _, info = env.step(env.action_space.sample())
        theta1, theta2 = info["angles"]
        if math.cos(theta2) <= 0:
            continue
        weights = obs["image"][-1] * near_pivot
        dx = (weights * (cols - centre)).sum() / weights.sum()
        dy = (weights * (centre - rows)).sum() / weights.sum()
        error = (math.atan2(dx, -dy) - theta1 + math.pi) % (2 * math.pi) - math.pi  # elbow at (sin t1, -cos t1)
        assert abs(math.degrees(error)) < 4.0
        checked += 1
    assert checked > 30


def test_sound_at_rest_and_tip_doppler():
    env = AcrobotSensorsEnv()
    obs, _ = env.reset(seed=0, options={"low": 0.0, "high": 0.0})  # hanging straight down, at rest
    for k, source in enumerate(("elbow", "tip")):
        rest = env.sources[source].scale_frequency(env.sources[source].frequency)
        np.testing.assert_allclose(obs["sound"][-1, k, :, 0], rest, atol=1e-6)
    # the tip swings: frequencies move away from rest in opposite directions at the two bottom receivers
    obs, *_ = env.step(2)
    obs, *_ = env.step(2)
    tip = obs["sound"][-1, 1, :, 0]
    rest = env.sources["tip"].scale_frequency(880.0)
    _, _, _, velocity = env.kinematics()
    towards_left = velocity[0] < 0
    assert (tip[0] > rest > tip[1]) if towards_left else (tip[1] > rest > tip[0])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"receivers": ["LEFT_LEFT"]}, "receivers"),
        ({"n_stack": -1}, "n_stack"),
        ({"image_size": 12}, "image_size"),
        ({"sound_speed": 50.0}, "sound_speed"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        AcrobotSensorsEnv(**kwargs)
