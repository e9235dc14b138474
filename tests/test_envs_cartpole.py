"""CartPoleSensors-v0: Gymnasium's CartPole reused; camera, two-source sound and noisy joints reveal the state."""

import math

import gymnasium as gym
import numpy as np
import pytest

import gmc_rl.envs  # noqa: F401  (registers the ids)
from gmc_rl.envs.cartpole_sensors import SENSOR_RANGE, CartPoleSensorsEnv

ENV_ID = "gmc_rl/CartPoleSensors-v0"
AT_REST = {"low": 0.0, "high": 0.0}  # CartPole reset option: the state starts exactly at zero


def test_spaces_and_registration():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 500
    assert env.action_space == gym.spaces.Discrete(2)
    assert set(env.observation_space.spaces) == {"image", "sound", "joints"}
    assert env.observation_space["image"].shape == (2, 40, 120)
    assert env.observation_space["sound"].shape == (2, 2, 3, 2)
    assert env.observation_space["joints"].shape == (2, 4)
    assert env.unwrapped.state_space == gym.make("CartPole-v1").observation_space


def test_dynamics_reward_and_termination_are_gymnasiums_cartpole():
    ours, ref = gym.make(ENV_ID), gym.make("CartPole-v1")
    _, info = ours.reset(seed=11)
    ref_obs, _ = ref.reset(seed=11)
    np.testing.assert_array_equal(info["state"], ref_obs)
    ours.action_space.seed(0)
    for _ in range(300):
        action = ours.action_space.sample()
        _, reward, term, trunc, info = ours.step(action)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(action)
        np.testing.assert_array_equal(info["state"], ref_obs)
        assert (reward, term, trunc) == (ref_reward, ref_term, ref_trunc)
        if term or trunc:
            break
    assert term  # random pushes drop the pole well before 300 steps


def test_image_shows_the_cart_at_x_and_the_pole_along_theta():
    env = CartPoleSensorsEnv()
    env.reset(seed=2)
    env.action_space.seed(2)
    cam = env.camera
    for _ in range(40):
        obs, _, term, _, info = env.step(env.action_space.sample())
        x, theta = float(info["state"][0]), float(info["state"][2])
        frame = obs["image"][-1].astype(np.float64)
        cart_rows = slice(int(cam.pixel(0, 0.05)[1]) + 1, int(cam.pixel(0, -0.15)[1]))
        cart = (frame[cart_rows] > 100) & (frame[cart_rows] < 200)  # the grey cart body, not the white pole
        assert abs(np.nonzero(cart)[1].mean() - cam.pixel(x, 0)[0]) < 1.0
        # the pole: white pixels above the cart, direction from the pivot
        top = int(cam.pixel(0, 0.25)[1])
        rows, cols = np.nonzero(frame[:top] > 200)
        pivot_col, pivot_row = cam.pixel(x, 0.0)
        measured = math.atan2(cols.mean() - pivot_col, pivot_row - rows.mean())
        assert abs(math.degrees(measured - theta)) < 4.0
        if term:
            break


def test_sound_hears_rest_then_doppler_of_the_cart():
    env = CartPoleSensorsEnv()
    obs, _ = env.reset(seed=0, options=AT_REST)
    for k, source in enumerate(("cart", "tip")):
        rest = env.sources[source].scale_frequency(env.sources[source].frequency)
        np.testing.assert_allclose(obs["sound"][-1, k, :, 0], rest, atol=1e-6)
    obs, *_ = env.step(1)  # push right: the cart moves towards RIGHT_BOTTOM, away from LEFT_BOTTOM
    cart = obs["sound"][-1, 0, :, 0]
    rest = env.sources["cart"].scale_frequency(220.0)
    assert cart[1] > rest > cart[0]


def test_sound_amplitude_follows_the_cart():
    env = CartPoleSensorsEnv()
    env.reset(seed=0, options=AT_REST)
    amplitudes = []
    for _ in range(30):
        obs, _, term, _, _ = env.step(1)
        amplitudes.append(obs["sound"][-1, 0, :, 1])  # cart source, per receiver
        if term:
            break
    amplitudes = np.array(amplitudes[1:])  # the cart moves from the second push on
    assert len(amplitudes) >= 5
    assert np.all(np.diff(amplitudes[:, 1]) > 0)  # nearer and nearer to RIGHT_BOTTOM
    assert np.all(np.diff(amplitudes[:, 0]) < 0)  # farther from LEFT_BOTTOM


def test_joints_are_the_state_plus_seeded_noise():
    exact = CartPoleSensorsEnv(joint_noise=0.0)
    obs, info = exact.reset(seed=5)
    np.testing.assert_allclose(obs["joints"][-1], info["state"], atol=1e-6)

    noisy = CartPoleSensorsEnv(joint_noise=0.05)
    errors = []
    for seed in range(200):
        obs, info = noisy.reset(seed=seed)
        errors.append((obs["joints"][-1] - info["state"]) / SENSOR_RANGE)
    errors = np.array(errors)
    assert np.all(np.abs(errors.mean(axis=0)) < 0.015)
    np.testing.assert_allclose(errors.std(axis=0), 0.05, rtol=0.25)
    again, _ = noisy.reset(seed=199)
    np.testing.assert_array_equal(again["joints"], obs["joints"])  # same seed, same noise


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"receivers": ["MIDDLE_TOP", "SOMEWHERE"]}, "receivers"),
        ({"n_stack": 0}, "n_stack"),
        ({"image_height": 10}, "image_height"),
        ({"joint_noise": -0.1}, "joint_noise"),
        ({"sound_speed": 6.0}, "sound_speed"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        CartPoleSensorsEnv(**kwargs)
