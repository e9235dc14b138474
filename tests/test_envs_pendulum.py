"""PendulumSound-v0: Gymnasium's dynamics reused, image geometry, sound physics in the env, stacking, arguments."""

import math

import gymnasium as gym
import numpy as np
import pytest

import gmc_rl.envs  # noqa: F401  (registers the ids)
from gmc_rl.envs.pendulum_sound import PendulumSoundEnv

ENV_ID = "gmc_rl/PendulumSound-v0"


def test_spaces_and_episode_length_match_the_paper():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 300
    assert env.observation_space["image"].shape == (2, 60, 60)
    assert env.observation_space["image"].dtype == np.uint8
    assert env.observation_space["sound"].shape == (2, 3, 2)
    assert env.observation_space["sound"].dtype == np.float32
    assert env.action_space == gym.make("Pendulum-v1").action_space
    assert env.unwrapped.state_space == gym.make("Pendulum-v1").observation_space
    assert env.get_wrapper_attr("state_space").dtype == np.float32


def test_dynamics_and_reward_are_gymnasiums_pendulum():
    ours, ref = gym.make(ENV_ID), gym.make("Pendulum-v1", max_episode_steps=300)
    _, info = ours.reset(seed=7)
    ref_obs, _ = ref.reset(seed=7)
    np.testing.assert_array_equal(info["state"], ref_obs)
    ours.action_space.seed(3)
    for _ in range(100):
        action = ours.action_space.sample()
        _, reward, term, trunc, info = ours.step(action)
        ref_obs, ref_reward, ref_term, ref_trunc, _ = ref.step(action)
        np.testing.assert_array_equal(info["state"], ref_obs)
        assert reward == pytest.approx(float(ref_reward), abs=0)
        assert (term, trunc) == (ref_term, ref_trunc)


def test_info_holds_the_true_state():
    env = PendulumSoundEnv()
    _, info = env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1.0], np.float32))
        theta = info["angle"]
        assert -math.pi <= theta < math.pi
        expected = [math.cos(theta), math.sin(theta), info["angular_velocity"]]
        np.testing.assert_allclose(info["state"], expected, atol=1e-6)
        assert info["state"].dtype == np.float32 and env.state_space.contains(info["state"])


def _image_angle(frame: np.ndarray) -> float:
    """Angle (0 up, counter-clockwise) of the rod from the centroid of its pixels around the image centre."""
    rows, cols = np.nonzero(frame)
    weights = frame[rows, cols].astype(np.float64)
    centre = (frame.shape[0] - 1) / 2
    dx = np.average(cols, weights=weights) - centre  # world x grows with the column
    dy = centre - np.average(rows, weights=weights)  # world y grows upwards, rows downwards
    return math.atan2(-dx, dy)  # the tip is at (-sin theta, cos theta)


@pytest.mark.parametrize("image_size", [60, 84])
def test_image_rod_points_along_the_angle(image_size):
    env = PendulumSoundEnv(image_size=image_size)
    obs, info = env.reset(seed=1)
    env.action_space.seed(1)
    errors = []
    for _ in range(200):
        obs, _, _, _, info = env.step(env.action_space.sample())
        frame = obs["image"][-1]
        error = (_image_angle(frame) - info["angle"] + math.pi) % (2 * math.pi) - math.pi
        errors.append(abs(math.degrees(error)))
        assert frame[(image_size - 1) // 2, (image_size - 1) // 2] > 0  # the rod starts at the pivot
    assert max(errors) < 3.0, f"largest centroid angle error {max(errors):.2f} deg"


def test_image_is_white_rod_on_black_inside_the_paper_view():
    env = PendulumSoundEnv()
    env.reset(seed=0, options={"x_init": 0.0, "y_init": 0.0})  # exactly upright, at rest
    frame = env.latest_frames()["image"]
    assert frame.max() == 255 and frame.min() == 0
    rows, cols = np.nonzero(frame > 127)
    # rod of length 1 at 60 / 2.64 px per unit: the tip is ~22.7 px above the centre (29.5)
    assert rows.min() == pytest.approx(29.5 - 100 / 4.4, abs=2.0)
    assert rows.max() <= 31 and abs(cols.mean() - 29.5) < 0.5


def test_sound_at_rest_hears_the_emitted_frequency():
    env = PendulumSoundEnv()
    obs, info = env.reset(seed=0, options={"x_init": 0.0, "y_init": 0.0})
    assert info["angular_velocity"] == 0.0
    rest = env.receivers.scale_frequency(440.0)
    np.testing.assert_allclose(obs["sound"][-1, :, 0], rest, atol=1e-6)


def test_sound_doppler_follows_the_tip_motion():
    env = PendulumSoundEnv()  # receivers LEFT_BOTTOM, RIGHT_BOTTOM, MIDDLE_TOP
    env.reset(seed=0, options={"x_init": 0.0, "y_init": 0.0})
    obs, _, _, _, info = env.step(np.array([2.0], np.float32))  # counter-clockwise: the tip moves left
    assert info["angular_velocity"] > 0
    rest = env.receivers.scale_frequency(440.0)
    left, right, top = obs["sound"][-1, :, 0]
    assert left > rest  # approaching LEFT_BOTTOM
    assert right < rest  # receding from RIGHT_BOTTOM
    assert abs(top - rest) < abs(left - rest)  # MIDDLE_TOP is almost perpendicular to the motion


def test_sound_amplitude_is_largest_at_the_nearest_receiver():
    env = PendulumSoundEnv()
    obs, _ = env.reset(seed=0, options={"x_init": 0.0, "y_init": 0.0})  # tip at (0, 1), next to MIDDLE_TOP
    amp = obs["sound"][-1, :, 1]
    assert amp[2] == pytest.approx(1.0)  # d = 1.2 is MIDDLE_TOP's smallest possible distance
    assert amp[0] == pytest.approx(amp[1]) and amp[0] < amp[2]


def test_frames_are_stacked_oldest_first():
    env = PendulumSoundEnv(n_stack=3)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (3, 60, 60) and obs["sound"].shape == (3, 3, 2)
    for key in ("image", "sound"):
        assert all(np.array_equal(obs[key][0], obs[key][i]) for i in range(3))
    previous = obs
    for _ in range(5):
        obs, *_ = env.step(np.array([2.0], np.float32))
        for key in ("image", "sound"):
            np.testing.assert_array_equal(obs[key][:-1], previous[key][1:])
        assert not np.array_equal(obs["image"][-1], obs["image"][-2])
        previous = obs
    obs["image"][:] = 7  # observations are copies: mutating one does not touch the env's stack
    assert not np.array_equal(env.step(np.array([0.0], np.float32))[0]["image"][-2], obs["image"][-1])


def test_rgb_array_render_is_a_colour_frame():
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([1.0], np.float32))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.shape[0] >= 300
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 10  # drawn content in several colours


def test_render_without_mode_returns_none():
    env = PendulumSoundEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.render() is None


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"receivers": ["LEFT_BOTTOM", "UPSIDE_DOWN"]}, "receivers"),
        ({"receivers": "LEFT_BOTTOM"}, "receivers"),
        ({"receivers": []}, "receivers"),
        ({"n_stack": 0}, "n_stack"),
        ({"n_stack": 1.5}, "n_stack"),
        ({"image_size": 8}, "image_size"),
        ({"sound_speed": 8.0}, "sound_speed"),
        ({"sound_speed": -1.0}, "sound_speed"),
        ({"frequency": 0.0}, "frequency"),
        ({"render_mode": "human"}, "render_mode"),
        ({"g": float("nan")}, "g"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        PendulumSoundEnv(**kwargs)
    if argument != "render_mode":  # gym.make turns "human" into its own HumanRendering wrapper around rgb_array
        with pytest.raises(ValueError, match=f"^{argument}"):
            gym.make(ENV_ID, **kwargs)


def test_other_receivers_and_sizes():
    env = gym.make(ENV_ID, receivers=["LEFT_TOP", "RIGHT_MIDDLE"], image_size=32, n_stack=1, sound_speed=30.0)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (1, 32, 32) and obs["sound"].shape == (1, 2, 2)
    assert env.observation_space.contains(obs)
