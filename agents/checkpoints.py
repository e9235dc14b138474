"""Resumable training checkpoints: model weights, optimiser state and replay buffer, saved atomically.

Layout under ``<agent dir>/checkpoints/``::

    latest.json             {"num_timesteps": N, "path": "step_N", ...}  (written last: the commit point)
    step_N/model.zip        SB3 zip (weights + optimisers; its pickled "data" entry is never read back)
    step_N/replay_buffer.npz the filled part of the replay buffer (off-policy algorithms), np.savez

Every file is written atomically and ``latest.json`` only points at a checkpoint once all of its files exist, so a
run killed at any moment resumes from the last complete checkpoint. Older checkpoints are deleted after a newer one
is committed, and only folders gmc-rl wrote (named exactly ``step_<digits>``, holding only checkpoint files). The
replay buffer is stored as plain arrays (loaded with ``allow_pickle=False``), not with SB3's pickle-based
``save_replay_buffer``.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback

from gmc_rl.agents.agent_dir import load_model_weights, save_model_atomic
from gmc_rl.data import npz_headers
from gmc_rl.errors import CheckpointError, DatasetError
from gmc_rl.io import atomic_path, read_json_object, write_json_atomic

LATEST = "latest.json"
MODEL = "model.zip"
BUFFER = "replay_buffer.npz"
CHECKPOINT_FOLDER = re.compile(r"step_\d+")
"""The exact name of a checkpoint folder (``step_<num_timesteps>``); no other folder is read or deleted."""

_SCALARS = ("actions", "rewards", "dones", "timeouts")

LATEST_FIELDS = {"num_timesteps": int, "path": str}
"""Keys ``latest.json`` must hold, with their JSON types."""
LATEST_OPTIONAL = {"episode_num": int, "n_updates": int, "replay_buffer": bool}
"""Keys ``latest.json`` may hold (:func:`save_checkpoint` writes them all)."""


_NO_RESUME_WAY = ("put an intact copy back (from a backup of the agent) to resume, or train a new agent into "
                  "another --out")
"""What to do when a checkpoint's replay buffer cannot be read: nothing else can resume the run as it was."""


def _buffer_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """The filled rows of every array of an SB3 (Dict)ReplayBuffer, keyed for ``np.savez``."""
    n = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {"pos": np.asarray(buffer.pos), "full": np.asarray(buffer.full)}
    return arrays | {key: array[:n] for key, array in _buffer_targets(buffer)}


def save_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Write the filled part of ``buffer`` to ``path`` (``.npz``) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            # numpy's stub types **kwds as possibly holding its allow_pickle flag; the keys are buffer field names.
            np.savez(handle, **_buffer_arrays(buffer))  # type: ignore[arg-type]


def _buffer_targets(buffer: ReplayBuffer) -> list[tuple[str, np.ndarray]]:
    """(name in the file, the buffer's array) of every array :func:`save_replay_buffer` writes, ``pos`` and
    ``full`` aside."""
    targets: list[tuple[str, np.ndarray]] = []
    for field in ("observations", "next_observations"):
        value = getattr(buffer, field)  # None with optimize_memory_usage: next observations live in `observations`
        if isinstance(value, dict):
            targets += [(f"{field}__{key}", array) for key, array in value.items()]
        elif value is not None:
            targets.append((field, value))
    return targets + [(field, getattr(buffer, field)) for field in _SCALARS]


def load_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Fill ``buffer`` from a file written by :func:`save_replay_buffer` (shapes must match).

    The arrays it holds and their shapes are read from the ``.npy`` headers first (:func:`gmc_rl.data.npz_headers`),
    so an archive that claims arrays this buffer cannot hold, or holds others, is refused before anything is
    unpacked (a crafted header could otherwise make numpy allocate terabytes). Float arrays holding NaN or inf are
    refused, naming the array: SB3 would train on them until torch fails on NaN weights."""
    targets = _buffer_targets(buffer)
    try:
        headers = npz_headers(path)
    except DatasetError as exc:  # its message names the file
        raise CheckpointError(f"replay buffer: {exc}; {_NO_RESUME_WAY}") from None
    expected = [key for key, _ in targets] + ["pos", "full"]
    missing = [key for key in expected if key not in headers]
    if missing:
        raise CheckpointError(f"replay buffer {path} lacks array {missing[0]!r}")
    extra = sorted(set(headers) - set(expected))
    if extra or headers["pos"][0] != () or headers["full"][0] != ():
        why = f"holds arrays {extra} that a replay buffer does not have" if extra else "has a pos or full that is " \
              "not a single number"
        raise CheckpointError(f"replay buffer {path} {why}; it is not a file gmc-rl wrote: train the agent again")
    try:
        with np.load(path, allow_pickle=False) as data:
            pos, full = int(data["pos"]), bool(data["full"])
            n = buffer.buffer_size if full else pos
            if not 0 <= n <= buffer.buffer_size:
                raise CheckpointError(
                    f"replay buffer in {path} holds {n} rows, not between 0 and this buffer's {buffer.buffer_size}; "
                    "resume with the same buffer_size and n_envs"
                )
            for key, target in targets:
                shape = headers[key][0]
                if shape[1:] != target.shape[1:] or shape[0] != n:
                    raise CheckpointError(
                        f"replay buffer {path}: array {key!r} has shape {shape}, expected ({n}, "
                        f"{', '.join(map(str, target.shape[1:]))}); resume with the same env, n_envs and settings"
                    )
                values = data[key]
                if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
                    bad = ~np.isfinite(values)
                    raise CheckpointError(
                        f"replay buffer {path}: array {key!r} holds {int(bad.sum()):,} NaN or infinite values "
                        f"(first in row {int(np.argwhere(bad)[0][0])}); resuming would train on them until the weights "
                        "are NaN: this checkpoint cannot be resumed, train the agent again into another --out"
                    )
                target[:n] = values
            buffer.pos, buffer.full = pos % buffer.buffer_size, full
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot read replay buffer {path}: {exc}") from exc


def save_checkpoint(model: BaseAlgorithm, directory: str | Path, keep: int = 1) -> Path:
    """Save a resumable checkpoint of ``model`` under ``directory`` and commit it in ``latest.json``.

    Returns the checkpoint's folder. Only the ``keep`` most recent checkpoints are kept.
    """
    directory = Path(directory)
    step = int(model.num_timesteps)
    folder = directory / f"step_{step}"
    folder.mkdir(parents=True, exist_ok=True)
    save_model_atomic(model, folder / MODEL)
    buffer = getattr(model, "replay_buffer", None)
    if isinstance(buffer, (ReplayBuffer, DictReplayBuffer)):
        save_replay_buffer(buffer, folder / BUFFER)
    write_json_atomic(
        directory / LATEST,
        {
            "num_timesteps": step,
            "path": folder.name,
            "episode_num": int(getattr(model, "_episode_num", 0)),
            "n_updates": int(getattr(model, "_n_updates", 0)),
            "replay_buffer": (folder / BUFFER).is_file(),
        },
    )
    old = sorted((p for p in own_checkpoint_folders(directory) if p != folder), key=lambda p: int(p.name[5:]))
    for stale in old[: max(len(old) - (keep - 1), 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def own_checkpoint_folders(directory: Path) -> list[Path]:
    """The checkpoint folders of ``directory`` that :func:`save_checkpoint` wrote, and so may delete.

    That is a real folder (not a symlink) named exactly ``step_<digits>`` holding only the files a checkpoint
    consists of (``model.zip``, ``replay_buffer.npz`` and the ``.tmp-*`` leftovers of their atomic writes). A user's
    ``step_100_mybackup/`` or ``step_old/``, and a ``step_300/`` the user put notes in, are never touched.
    """
    owned = {MODEL, BUFFER}
    return [
        path for path in directory.iterdir()
        if CHECKPOINT_FOLDER.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
        and all(entry.name in owned or entry.name.startswith(".tmp-") for entry in path.iterdir())
    ]


def latest_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """The committed ``latest.json`` of ``directory`` (with ``folder`` added), or None if there is none.

    Its keys are checked for their types, and ``path`` must be a ``step_<N>`` folder of ``directory`` (a path
    elsewhere, ``../other_agent/...``, is refused).
    """
    directory = Path(directory)
    file = directory / LATEST
    if not file.is_file():
        return None
    info = read_json_object(file, "checkpoint index", LATEST_FIELDS, CheckpointError, optional=LATEST_OPTIONAL)
    if not CHECKPOINT_FOLDER.fullmatch(info["path"]):
        raise CheckpointError(f"{file}: key 'path' must name a checkpoint folder step_<N> in {directory}, "
                              f"got {info['path']!r}")
    if info["num_timesteps"] < 0:
        raise CheckpointError(f"{file}: key 'num_timesteps' must be >= 0, got {info['num_timesteps']}")
    folder = directory / info["path"]
    if not (folder / MODEL).is_file():
        raise CheckpointError(f"checkpoint index {directory / LATEST} points at {folder}, which has no {MODEL}")
    return {**info, "folder": folder}


def restore_checkpoint(model: BaseAlgorithm, directory: str | Path) -> int:
    """Load the latest checkpoint of ``directory`` into ``model``; return its ``num_timesteps`` (0 if none)."""
    info = latest_checkpoint(directory)
    if info is None:
        return 0
    folder: Path = info["folder"]
    buffer = getattr(model, "replay_buffer", None)
    if info.get("replay_buffer") and buffer is not None and not (folder / BUFFER).is_file():
        raise CheckpointError(
            f"{folder / BUFFER} is missing: the checkpoint index {Path(directory) / LATEST} says checkpoint "
            f"{folder.name} holds the replay buffer, which resuming needs (without it training would go on from an "
            f"empty buffer, unlike the interrupted run); {_NO_RESUME_WAY}")
    load_model_weights(model, folder / MODEL)
    if info.get("replay_buffer") and buffer is not None:
        load_replay_buffer(buffer, folder / BUFFER)
    model.num_timesteps = int(info["num_timesteps"])
    model._episode_num = int(info.get("episode_num", 0))
    model._n_updates = int(info.get("n_updates", 0))
    return model.num_timesteps


class CheckpointCallback(BaseCallback):
    """Save a resumable checkpoint (model + replay buffer) once ``save_freq`` environment steps have passed.

    The checkpoint is taken at the start of the next rollout: there the last transitions are stored, the gradient
    steps that follow them are done and ``num_timesteps`` counts exactly the transitions in the replay buffer, so a
    resumed run continues as the interrupted one would have (for PPO/A2C: right after an update). Unlike SB3's
    ``CheckpointCallback`` it counts steps by ``num_timesteps`` (a resumed run keeps the same schedule), writes
    atomically, stores the replay buffer without pickle and keeps only the latest checkpoint.
    """

    def __init__(self, directory: str | Path, save_freq: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.directory = Path(directory)
        self.save_freq = int(save_freq)
        self._next: int | None = None

    def _schedule(self) -> None:
        self._next = (self.model.num_timesteps // self.save_freq + 1) * self.save_freq if self.save_freq > 0 else None

    def _on_training_start(self) -> None:
        self._schedule()

    def _on_rollout_start(self) -> None:
        if self._next is not None and self.model.num_timesteps >= self._next:
            folder = save_checkpoint(self.model, self.directory)
            if self.verbose:
                print(f"checkpoint saved: {folder}")
            self._schedule()

    def _on_step(self) -> bool:
        return True
