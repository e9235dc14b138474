"""Tests of episode videos (gmc_rl.video)."""

from __future__ import annotations

import sys
import warnings

import cv2
import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from gmc_rl import video
from gmc_rl.errors import ConfigError
from gmc_rl.video import VideoError, annotate, record_episode, write_video


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
    with pytest.raises(ConfigError, match=r"same shape: frame 0 is \(4, 4, 3\), frame 1 \(4, 6, 3\)"):
        write_video([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], tmp_path / "x.mp4")
    with pytest.raises(ConfigError, match=r"frame 0 must be an RGB uint8 array.*float64 \(4, 4, 3\)"):
        write_video([np.zeros((4, 4, 3))], tmp_path / "x.mp4")
    with pytest.raises(ConfigError, match="fps must be a positive number"):
        write_video([np.zeros((4, 4, 3), np.uint8)], tmp_path / "x.mp4", fps=0)
    assert not list(tmp_path.iterdir())


def ramp(count: int, height: int = 31, width: int = 47) -> list[np.ndarray]:
    """``count`` grey frames of brightness 20, 40, ... (odd sizes: the MP4 writer must make them even)."""
    return [np.full((height, width, 3), 20 * (i + 1), np.uint8) for i in range(count)]


def read_back(path) -> list[np.ndarray]:
    """Every frame of a written video, decoded independently of gmc_rl.video (OpenCV for MP4, imageio for GIF)."""
    if path.suffix == ".gif":
        return list(iio.imread(path, index=None))
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    capture.release()
    return frames


def fourcc(path) -> str:
    capture = cv2.VideoCapture(str(path))
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    capture.release()
    return code.to_bytes(4, "little").decode("ascii", "replace").lower()


@pytest.mark.parametrize("count", [1, 3, 8])
def test_written_video_has_every_frame(tmp_path, count):
    """Runs with whatever encoder is installed (H.264, OpenCV's mp4v, or the GIF fallback): short clips too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the one-time fallback notice, when it applies
        path = write_video(ramp(count), tmp_path / "clip.mp4", fps=10)
    assert path.stat().st_size > 0
    frames = read_back(path)
    assert len(frames) == count
    if path.suffix == ".mp4":
        assert frames[0].shape == (32, 48, 3)  # padded to even sizes, not scaled
    for i, frame in enumerate(frames):  # the right frames in the right order (lossy codecs: within a few levels)
        assert abs(float(frame.mean()) - 20 * (i + 1)) < 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no staging left behind


def test_mp4_is_h264_with_imageio_ffmpeg(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    path = write_video(ramp(5), tmp_path / "clip.mp4", fps=10)
    assert path == tmp_path / "clip.mp4"
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    decoded = sum(1 for _ in reader)
    reader.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["size"] == (48, 32)
    assert decoded == 5
    assert fourcc(path) in ("avc1", "h264")
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")  # index first: streams in a browser


def test_mp4_without_imageio_ffmpeg_falls_back_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed: importing it fails
    monkeypatch.setattr(video, "_warned", set())
    with pytest.warns(RuntimeWarning, match=r"imageio-ffmpeg is not installed.*pip install 'gmc-rl\[video\]'"):
        first = write_video(ramp(4), tmp_path / "a.mp4", fps=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the notice is given once per process
        second = write_video(ramp(4), tmp_path / "b.mp4", fps=10)
    for path in (first, second):
        assert len(read_back(path)) == 4
        if path.suffix == ".mp4":
            assert fourcc(path) in ("fmp4", "mp4v")  # OpenCV's MPEG-4 part 2


def test_an_empty_or_short_video_is_an_error_not_a_result(tmp_path):
    """The check every written video passes before it is renamed onto its destination (gmc_rl.video._publish)."""
    how = "H.264 through imageio-ffmpeg"
    staged = tmp_path / "staged.mp4"
    staged.write_bytes(b"")
    with pytest.raises(VideoError, match=r"out\.mp4 \(H\.264 through imageio-ffmpeg\) produced 0 bytes with 0 "):
        video._publish(staged, tmp_path / "out.mp4", 6, how)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        written = write_video(ramp(6), tmp_path / "six.mp4", fps=10)
    staged.write_bytes(written.read_bytes()[: written.stat().st_size // 3])  # cut off, as by a crashed encoder
    with pytest.raises(VideoError, match=r"readable frame\(s\) of 6 written; the video was not saved"):
        video._publish(staged, tmp_path / "out.mp4", 6, how)
    assert not (tmp_path / "out.mp4").exists()


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
