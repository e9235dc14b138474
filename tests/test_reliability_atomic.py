"""Atomic writes: every file gmc-rl produces is either complete or absent, even if the process dies mid-write.

``gmc_rl.io.atomic_path`` writes to a temporary file in the destination's directory, fsyncs it, and renames it over
the destination. These tests check that contract directly (a failing writer, a failing rename, the fsync order,
SIGKILL during a stream of writes), and then that a whole pipeline run produces every file through that rename
(TensorBoard's append-only event logs are the one documented exception).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import PAIR_ID, SMALL_MODEL

from gmc_rl.config import ExperimentConfig, from_dict, to_dict
from gmc_rl.io import atomic_path, write_json_atomic, write_text_atomic
from gmc_rl.locking import LOCK_FILE

ROOT = Path(__file__).resolve().parents[1]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text('{"version": 2, "rows": [1, 2')  # half written
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"version": 1}
    assert leftovers(tmp_path) == []
    with pytest.raises(TypeError):  # not JSON-serialisable: nothing is written at all
        write_json_atomic(tmp_path / "new.json", {"bad": object()})
    assert not (tmp_path / "new.json").exists() and leftovers(tmp_path) == []


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "model.json"
    write_text_atomic(target, "old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic(target, "new")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_content_is_fsynced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text_atomic(tmp_path / "a.txt", "data")
    assert events == ["fsync file", "rename", "fsync dir"]


WRITER = """
import sys
from gmc_rl.io import write_json_atomic
path, i = sys.argv[1], 1
write_json_atomic(path, {"i": i, "payload": [i] * 200_000})
print("ready", flush=True)  # one complete file exists; from now on every moment is mid-rewrite or between two
while True:
    i += 1
    write_json_atomic(path, {"i": i, "payload": [i] * 200_000})
"""


def test_sigkill_during_a_stream_of_writes_never_leaves_a_torn_file(tmp_path):
    """Kill a process that rewrites a ~1 MB JSON file in a loop, at random moments: the file always parses."""
    target = tmp_path / "state.json"
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, env=env)
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.05, 0.5)))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        assert process.returncode == -signal.SIGKILL
        data = json.loads(target.read_text())  # complete, never torn
        assert data["payload"] == [data["i"]] * 200_000
    # a SIGKILL can leave a stray temporary (never a torn result); the next writer is unaffected by it
    assert all(name.startswith(".tmp-state.json.") for name in leftovers(tmp_path))


def test_every_file_of_a_pipeline_run_is_renamed_into_place(tmp_path, monkeypatch):
    """A whole (tiny) pipeline run; each file it leaves must have been produced by a rename (or inside a renamed
    directory), except TensorBoard's append-only event files."""
    from gmc_rl.pipeline import run_pipeline

    renamed: list[Path] = []
    real_replace = os.replace

    def spy(src, dst, *args, **kwargs):
        renamed.append(Path(dst).resolve())
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    config = from_dict(ExperimentConfig, {
        "name": "atomic", "env_id": PAIR_ID, "methods": ["gmc", "mvae"], "seeds": [0],
        "collect": {"steps": 80, "n_envs": 2, "val_fraction": 0.25},
        "pretrain": {"epochs": 1, "batch_size": 8, "device": "cpu", "model": to_dict(SMALL_MODEL)},
        "agent": {"algo": "sac", "total_timesteps": 40, "eval_freq": 40, "eval_episodes": 1, "checkpoint_freq": 20,
                  "device": "cpu", "hyperparams": {"learning_starts": 30, "batch_size": 8, "buffer_size": 100,
                                                   "policy_kwargs": {"net_arch": [8]}}},
        "evaluate": {"conditions": ["complete", "image"], "episodes": 2, "n_envs": 1},
    })
    run = tmp_path / "run"
    run_pipeline(config, run, progress=False, log=lambda message: None)

    renamed_dirs = [path for path in renamed if path.is_dir()]
    files = [p.resolve() for p in run.rglob("*") if p.is_file()]
    not_atomic = sorted(
        str(p.relative_to(run.resolve())) for p in files
        if p not in renamed and not any(d in p.parents for d in renamed_dirs)
    )
    # Besides TensorBoard's event files, only the directory locks are opened in place: empty files whose lock,
    # not their content, matters (gmc_rl.locking).
    locks = [name for name in not_atomic if Path(name).name == LOCK_FILE]
    assert all((run / name).stat().st_size == 0 for name in locks)
    assert all("/tb/" in f"/{name}" and ".tfevents." in name for name in not_atomic if name not in locks), not_atomic
    produced = {str(p.relative_to(run.resolve())) for p in files}
    for expected in ("config.yaml", "data/train.npz", "data/metadata.json", "gmc/model.safetensors",
                     "gmc/last/trainer_state.pt", "mvae/model.safetensors", "agents/gmc-seed0/agent.zip",
                     "agents/gmc-seed0/encoder/model.safetensors", "agents/gmc-seed0/eval/evaluations.json",
                     "eval/results.json", "eval/results.md", "eval/results.png", "stages/report.json"):
        assert expected in produced, expected
    assert not [p for p in run.rglob(".tmp-*")]


def test_video_is_written_atomically(tmp_path, monkeypatch):
    from gmc_rl.video import write_video

    renamed: list[Path] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (renamed.append(Path(d)), real_replace(s, d))[1])
    frames = [np.full((32, 48, 3), 20 * i, np.uint8) for i in range(8)]
    path = write_video(frames, tmp_path / "episode.mp4", fps=10)
    assert path in renamed and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_atomic_files_get_the_ordinary_umask_mode(tmp_path):
    """Results are not private: an atomically written file has the mode a plain open() would give it."""
    import os

    from gmc_rl.io import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "result.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o644
