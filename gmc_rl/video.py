"""Videos of one evaluation episode: the rendered frame with the condition, present sensors, step and return.

:func:`record_episode` runs one episode on a single-env VecEnv whose envs render ``rgb_array`` frames and writes
an MP4 (through imageio's FFmpeg or PyAV plugin, when one is installed) or else an animated GIF.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gmc_rl.errors import ConfigError
from gmc_rl.io import atomic_path

MIN_HEIGHT = 240
"""Frames smaller than this are enlarged (nearest neighbour) so that the caption stays readable."""


def annotate(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """Return ``frame`` (H, W, 3 uint8) enlarged to at least :data:`MIN_HEIGHT` with ``lines`` written below it."""
    import cv2

    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ConfigError(f"render() must return an RGB frame of shape (H, W, 3), got shape {frame.shape}")
    frame = np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8)
    scale = max(1, int(np.ceil(MIN_HEIGHT / frame.shape[0])))
    if scale > 1:
        frame = cv2.resize(frame, (frame.shape[1] * scale, frame.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    width = max(frame.shape[1], 320)
    line_height = 18
    canvas = np.zeros((frame.shape[0] + line_height * len(lines) + 6, width, 3), dtype=np.uint8)
    canvas[: frame.shape[0], : frame.shape[1]] = frame
    for i, text in enumerate(lines):
        y = frame.shape[0] + line_height * (i + 1)
        cv2.putText(canvas, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    # Video codecs want even sizes.
    return canvas[: canvas.shape[0] // 2 * 2, : canvas.shape[1] // 2 * 2]


def _has_imageio_video_plugin() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(name) is not None for name in ("imageio_ffmpeg", "av"))


def _write_mp4_opencv(stack: np.ndarray, path: Path, fps: int) -> bool:
    """MP4 (MPEG-4 part 2) through OpenCV's bundled FFmpeg; False if OpenCV cannot encode it here."""
    import cv2

    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # OpenCV picks the container from the extension
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (stack.shape[2], stack.shape[1]))
    try:
        if not writer.isOpened():
            return False
        for frame in stack:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # OpenCV wants BGR
        writer.release()
        if not tmp.is_file() or tmp.stat().st_size == 0:
            return False
        os.replace(tmp, path)
        return True
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 30) -> Path:
    """Write ``frames`` (equal-sized RGB uint8 arrays) to ``path`` (.mp4 or .gif) atomically; return the path written.

    An MP4 is written by imageio's FFmpeg or PyAV plugin when one is installed, else by OpenCV; if neither can
    encode it, a GIF is written next to it instead (at most 15 frames per second, to keep it small and quick).
    """
    import imageio.v3 as iio

    path = Path(path)
    if not frames:
        raise ConfigError("no frames to write")
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ConfigError(f"video path {path} must end in .mp4 or .gif")
    stack = np.stack(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        if _has_imageio_video_plugin():
            try:
                with atomic_path(path) as tmp:
                    iio.imwrite(tmp, stack, extension=".mp4", fps=fps)
                return path
            except (OSError, ImportError, ValueError, RuntimeError):
                pass
        if _write_mp4_opencv(stack, path, fps):
            return path
        path = path.with_suffix(".gif")
    step = max(1, int(round(fps / 15)))
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack[::step], extension=".gif", duration=int(1000 * step / fps), loop=0)
    return path


def record_episode(
    venv: Any,
    predict: Callable[[Any], Any],
    path: str | os.PathLike,
    *,
    title: str = "",
    seed: int | None = None,
    fps: int = 30,
    max_steps: int = 10_000,
) -> Path:
    """Run one episode of ``venv`` (env 0; deterministic ``predict``) and write the rendered frames to ``path``.

    The envs of ``venv`` must have been made with ``render_mode="rgb_array"``. Each frame is captioned with
    ``title``, the modalities present (``info["available_modalities"]`` when the sensor wrappers report it), the
    step and the return so far. Returns the path written (``.gif`` when no MP4 writer is installed).
    """
    if seed is not None:
        venv.seed(int(seed))
    obs = venv.reset()
    frames: list[np.ndarray] = []
    reset_infos = getattr(venv, "reset_infos", None) or [{}]
    total, present = 0.0, reset_infos[0].get("available_modalities")
    for step in range(max_steps):
        frame = venv.get_images()[0]
        if frame is None:
            raise ConfigError("the environment returned no frame: make it with render_mode='rgb_array' for --video")
        shown = "all" if present is None else ("+".join(present) or "none")
        frames.append(annotate(frame, [title, f"present: {shown}", f"step {step}   return {total:.1f}"]))
        obs, rewards, dones, infos = venv.step(predict(obs))
        total += float(np.asarray(rewards).reshape(-1)[0])
        present = infos[0].get("available_modalities", present)
        if bool(np.asarray(dones).reshape(-1)[0]):
            break
    return write_video(frames, path, fps=fps)
