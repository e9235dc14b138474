"""Tests of episode videos (gmc_rl.video)."""

from __future__ import annotations

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from gmc_rl.errors import ConfigError
from gmc_rl.video import annotate, record_episode, write_video


class DotEnv(gym.Env):
    """A dot moving right for 12 steps; renders a small colour frame."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {"available_modalities": ["a"]}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t / 12, np.float32), -1.0, self.t >= 12, False, {"available_modalities": ["a"]}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        frame = np.zeros((40, 60, 3), np.uint8)
        frame[18:22, 4 * self.t: 4 * self.t + 4] = (255, 0, 0)
        return frame


def test_annotate_enlarges_and_adds_caption():
    frame = np.zeros((40, 60, 3), np.uint8)
    out = annotate(frame, ["line one", "line two"])
    assert out.dtype == np.uint8 and out.shape[0] > 240 and out.shape[1] >= 320
    assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0
    assert out[250:, :].max() > 0  # caption text drawn below the frame
    with pytest.raises(ConfigError, match="RGB frame"):
        annotate(np.zeros((4, 4, 7), np.uint8), [])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video(tmp_path, suffix):
    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(8)]
    path = write_video(frames, tmp_path / f"clip{suffix}", fps=10)
    assert path.exists() and path.stat().st_size > 0
    assert path.suffix in (".mp4", ".gif")  # an MP4 may fall back to a GIF without any encoder
    if path.suffix == ".gif":
        assert iio.imread(path, index=None).shape[1:] == (32, 48, 3)
    assert not list(tmp_path.glob(".tmp-*"))


def test_write_video_rejects_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="no frames"):
        write_video([], tmp_path / "x.gif")
    with pytest.raises(ConfigError, match="must end in"):
        write_video([np.zeros((4, 4, 3), np.uint8)], tmp_path / "x.avi")


def test_record_episode_one_frame_per_step(tmp_path):
    venv = DummyVecEnv([lambda: DotEnv(render_mode="rgb_array")])
    path = record_episode(venv, lambda obs: np.zeros((1, 1), np.float32), tmp_path / "ep.gif", title="t", seed=0,
                          fps=15)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 12  # frames before each of the 12 steps


def test_record_episode_needs_rgb_frames(tmp_path):
    venv = DummyVecEnv([lambda: DotEnv(render_mode=None)])
    with pytest.raises(ConfigError, match="rgb_array"):
        record_episode(venv, lambda obs: np.zeros((1, 1), np.float32), tmp_path / "ep.gif")
