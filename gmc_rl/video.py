"""Videos of one evaluation episode: the rendered frame with the condition, present sensors, step and return.

:func:`record_episode` runs one episode on a single-env VecEnv whose envs render ``rgb_array`` frames and writes
it with :func:`write_video`:

- MP4 with imageio-ffmpeg installed (``pip install "gmc-rl[video]"``): H.264 in yuv420p with even frame sizes and
  the index at the front (``+faststart``): what browsers (and web dashboards that embed videos) and common
  players play.
- MP4 without it: OpenCV's MPEG-4 part 2 (``mp4v``), which desktop players play but browsers do not; a one-time
  warning says so. If OpenCV cannot encode MP4 either, a GIF is written next to the requested path instead.
- GIF when asked for (``.gif``), through imageio.

Every file is encoded into a staging directory next to the destination under its real name (the encoder picks
the container from the file's suffix, so ``clip.mp4`` stays ``clip.mp4`` while it is written), read back, and
renamed onto the destination only if it has every frame. An encoder that writes an empty file or no frames is a
:class:`VideoError`, never a returned path.

gmc-rl replaces only videos it wrote: every video carries :data:`VIDEO_TAG` (an MP4 in a trailing ``free`` box,
which players skip; a GIF as its comment), and a file already at the destination without it (a user's own file)
is refused with a :class:`~gmc_rl.errors.ConfigError` before anything is encoded (:func:`check_video_destinations`).
"""

from __future__ import annotations

import os
import shutil
import struct
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gmc_rl.errors import ConfigError
from gmc_rl.io import REGULAR_FILE, make_staging_dir, path_kind

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


class VideoError(RuntimeError):
    """A video could not be written: the encoder failed, or the file it wrote is empty or lacks frames."""


_warned: set[str] = set()
"""Kinds of fallback already warned about in this process (each warning is given once)."""


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _has_imageio_ffmpeg() -> bool:
    """Whether imageio-ffmpeg (the H.264 writer, with its own FFmpeg binary) can be imported."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def _check_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``frames`` into ``(T, H, W, 3)`` uint8, or raise a ConfigError naming the first bad frame."""
    if len(frames) == 0:
        raise ConfigError("no frames to write")
    first = np.shape(frames[0])
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ConfigError(
                f"video frame {i} must be an RGB uint8 array of shape (H, W, 3), got {frame.dtype} {frame.shape}"
            )
        if frame.shape != first:
            raise ConfigError(f"video frames must all have the same shape: frame 0 is {first}, frame {i} {frame.shape}")
    return np.stack([np.asarray(frame) for frame in frames])


def _even_sized(stack: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by repeating the last row / column: yuv420p and most codecs need even sizes."""
    pad_h, pad_w = stack.shape[1] % 2, stack.shape[2] % 2
    if pad_h or pad_w:
        stack = np.pad(stack, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return stack


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames that can be decoded from the video at ``path`` (0 for an empty or unreadable file).

    MP4 files are decoded with OpenCV (whose FFmpeg reads H.264 and MPEG-4 part 2), GIFs with imageio.
    """
    import cv2
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    if path.suffix.lower() == ".gif":
        try:
            return int(iio.imread(path, index=None).shape[0])
        except (OSError, ValueError):
            return 0
    capture = cv2.VideoCapture(str(path))
    try:
        count = 0
        while capture.isOpened() and capture.read()[0]:
            count += 1
        return count
    finally:
        capture.release()


def _write_h264(stack: np.ndarray, path: Path, fps: float) -> None:
    """H.264 MP4 (yuv420p, ``+faststart``) through imageio-ffmpeg's FFmpeg; ``stack`` must have even sizes."""
    import imageio_ffmpeg

    height, width = stack.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=6,  # x264's crf 20: captions stay sharp, files stay small
        macro_block_size=2,  # the sizes are already even: never rescale the frames
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],
    )
    try:
        writer.send(None)  # start FFmpeg
        for frame in stack:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def _write_mp4v(stack: np.ndarray, path: Path, fps: float) -> bool:
    """MPEG-4 part 2 (mp4v) MP4 through OpenCV's FFmpeg; False if OpenCV cannot open an MP4 writer here."""
    import cv2

    fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]  # missing from OpenCV's type stubs
    writer = cv2.VideoWriter(str(path), fourcc, fps, (stack.shape[2], stack.shape[1]))
    try:
        if not writer.isOpened():
            return False
        for frame in stack:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))  # OpenCV wants BGR
    finally:
        writer.release()
    return True


def _write_gif(stack: np.ndarray, path: Path, fps: float) -> None:
    """Animated GIF through imageio (``stack`` already thinned to the GIF's frame rate)."""
    import imageio.v3 as iio

    iio.imwrite(path, stack, extension=".gif", duration=int(1000 / fps), loop=0, comment=VIDEO_TAG)


VIDEO_TAG = b"written by gmc-rl (gmc_rl.video)"
"""What marks a video as gmc-rl's: an MP4 ends with a top-level ``free`` box holding it (players skip such boxes),
a GIF carries it as its comment."""

_MP4_TAG_BOX = struct.pack(">I", 8 + len(VIDEO_TAG)) + b"free" + VIDEO_TAG


def _tag(staged: Path) -> None:
    """Mark the MP4 just encoded at ``staged`` as gmc-rl's (GIFs get their comment when written)."""
    if staged.suffix.lower() == ".mp4" and staged.is_file():
        with open(staged, "ab") as handle:
            handle.write(_MP4_TAG_BOX)


def is_own_video(path: str | os.PathLike) -> bool:
    """Whether the regular file at ``path`` is a video gmc-rl wrote (it carries :data:`VIDEO_TAG`)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            with Image.open(path) as image:
                return image.info.get("comment") == VIDEO_TAG
        size = path.stat().st_size
        if size < len(_MP4_TAG_BOX):
            return False
        with open(path, "rb") as handle:
            handle.seek(size - len(_MP4_TAG_BOX))
            return handle.read() == _MP4_TAG_BOX
    except Exception:  # noqa: BLE001  (unreadable or not an image: not a video gmc-rl wrote)
        return False


def video_not_own(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` must not be replaced by a video (None: nothing there, or a video gmc-rl wrote,
    :func:`is_own_video`)."""
    path = Path(path)
    kind = path_kind(path)
    if kind is None:
        return None
    if kind != REGULAR_FILE:
        return f"{path} is {kind}"
    if not is_own_video(path):
        return f"{path} was not written by gmc-rl (it lacks the tag gmc-rl writes into its videos)"
    return None


def check_video_destinations(paths: Sequence[str | os.PathLike]) -> None:
    """Refuse to write videos to ``paths`` when any of them holds a file gmc-rl did not write (:func:`video_not_own`).

    Raises:
        ConfigError: naming every such file.
    """
    reasons = [reason for reason in map(video_not_own, paths) if reason]
    if reasons:
        raise ConfigError("; ".join(reasons) + ": gmc-rl replaces only videos it wrote; move these files away "
                          "(or choose another output folder) and rerun")


def _publish(staged: Path, destination: Path, expected_frames: int, how: str) -> Path:
    """Check the staged video (non-empty, ``expected_frames`` decodable frames), tag it as gmc-rl's (:func:`_tag`),
    then rename it onto ``destination``.

    Raises:
        VideoError: the file is missing or empty, or fewer frames than written can be read back.
        ConfigError: a file gmc-rl did not write appeared at ``destination`` while the video was encoded.
    """
    size = staged.stat().st_size if staged.is_file() else 0
    frames = count_frames(staged) if size else 0
    if size == 0 or frames != expected_frames:
        raise VideoError(
            f"writing {destination} ({how}) produced {size} bytes with {frames} readable frame(s) of "
            f"{expected_frames} written; the video was not saved"
        )
    _tag(staged)
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    check_video_destinations([destination])  # anything that appeared while encoding
    os.replace(staged, destination)
    return destination


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 30) -> Path:
    """Write ``frames`` (equal-sized RGB uint8 arrays) to ``path`` (.mp4 or .gif) atomically; return the path written.

    An MP4 is H.264 (yuv420p; an odd height or width is padded by one row / column) when imageio-ffmpeg is
    installed, else MPEG-4 part 2 through OpenCV (with a one-time warning); if OpenCV cannot encode it either, a
    GIF is written next to it instead (``path`` with ``.gif``; at most 15 frames per second, to keep it small).
    The destination appears only once the whole video is written and read back with every frame. A file already
    there is replaced only if gmc-rl wrote it (it carries :data:`VIDEO_TAG`).

    Raises:
        ConfigError: no frames, frames of different shapes or not RGB uint8, a suffix other than .mp4 / .gif,
            ``fps`` not a positive number, or a file at the destination that gmc-rl did not write.
        VideoError: the encoder failed, or wrote an empty file or fewer frames than given.
    """
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".gif"):
        raise ConfigError(f"video path {path} must end in .mp4 or .gif")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not 0 < fps < float("inf"):
        raise ConfigError(f"fps must be a positive number of frames per second, got {fps!r}")
    stack = _check_frames(frames)
    fps = float(fps)
    check_video_destinations([path])
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(path)
    try:
        if path.suffix.lower() == ".mp4":
            staged = staging / path.name
            stack = _even_sized(stack)
            if _has_imageio_ffmpeg():
                try:
                    _write_h264(stack, staged, fps)
                except (OSError, RuntimeError, ValueError) as exc:
                    raise VideoError(f"H.264 encoding of {path} with imageio-ffmpeg failed: {exc}") from exc
                return _publish(staged, path, len(stack), "H.264 through imageio-ffmpeg")
            _warn_once(
                "mp4v",
                "imageio-ffmpeg is not installed, so MP4 videos are written with OpenCV's MPEG-4 part 2 (mp4v) codec, "
                "which most browsers do not play; install it for H.264: pip install 'gmc-rl[video]'",
            )
            if _write_mp4v(stack, staged, fps):
                return _publish(staged, path, len(stack), "mp4v through OpenCV")
            _warn_once(
                "gif",
                f"OpenCV cannot encode MP4 here and imageio-ffmpeg is not installed: writing GIF videos instead "
                f"(first: {path.with_suffix('.gif')}); install it for MP4: pip install 'gmc-rl[video]'",
            )
            path = path.with_suffix(".gif")
            check_video_destinations([path])
        step = max(1, int(round(fps / 15)))
        staged = staging / path.name
        _write_gif(stack[::step], staged, fps / step)
        return _publish(staged, path, len(stack[::step]), "GIF through imageio")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
