"""No room to write (a full disk, a quota, the file-size limit): one line naming the file, and a rerun that works.

The commands run in a subprocess under a file-size limit (``RLIMIT_FSIZE``), which makes the kernel refuse a write
past the limit with EFBIG exactly as a full disk refuses one with ENOSPC: every gmc-rl writer meets the same
OSError. Python ignores SIGXFSZ, so the write fails instead of killing the process. Bytecode is not written in those
processes (a truncated ``.pyc`` would break later imports; that is Python's, not gmc-rl's).
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gmc_rl.checkpoint import save_training_state
from gmc_rl.data import load_dataset
from gmc_rl.io import atomic_path, write_error, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "gmc_rl/PendulumSound-v0"
LAUNCHER = "import sys, torch; torch.set_num_threads(1); from gmc_rl.cli import main; sys.exit(main(sys.argv[1:]))"
TINY_MODEL = ["--pretrain.model", "{latent_dim: 4, common_dim: 8, head_hidden: 8, conv_channels: [4, 8], "
              "mlp_hidden: [8]}", "--pretrain.batch_size", "32", "--pretrain.epochs", "1", "--pretrain.device", "cpu"]


def gmc_rl(args: list[str], cwd: Path, file_limit: int | None = None) -> subprocess.CompletedProcess:
    """``gmc-rl ARGS`` in a subprocess, with writes limited to ``file_limit`` bytes per file where given."""
    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", LAUNCHER, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          preexec_fn=limit, timeout=600)


def assert_no_room_line(result: subprocess.CompletedProcess, command: str, file_name: str) -> None:
    """Exit 2 with one line that names the command, the file and what to do; no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"gmc-rl {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "File too large" in lines[0] and file_name in lines[0], lines[0]
    assert "rerun the same command" in lines[0], lines[0]


def test_collect_pretrain_and_train_without_room_say_so_and_reruns_finish(tmp_path):
    """Each command in turn, first under the limit (one line, exit 2), then again without it (it finishes)."""
    collect = ["collect", "--env", ENV_ID, "--collect.steps", "300", "--collect.n_envs", "2", "--out", "data",
               "--no-progress"]
    assert_no_room_line(gmc_rl(collect, tmp_path, file_limit=20_000), "collect", ".npz")
    assert not list(tmp_path.glob("data/.tmp-*")), "a partial temporary file was left"
    result = gmc_rl(collect, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(load_dataset(tmp_path / "data").train) > 0

    pretrain = ["pretrain", "--data", "data", "--out", "gmc", "--no-progress", *TINY_MODEL]
    assert_no_room_line(gmc_rl(pretrain, tmp_path, file_limit=20_000), "pretrain", "gmc")
    result = gmc_rl(pretrain, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "gmc" / "model.safetensors").is_file()

    train = ["train", "--gmc", "gmc", "--out", "agent", "--algo", "sac", "--total-timesteps", "120",
             "--agent.hyperparams", "{learning_starts: 60, batch_size: 16, policy_kwargs: {net_arch: [16]}}",
             "--agent.eval_freq", "0", "--agent.checkpoint_freq", "60", "--agent.action_fit_rounds", "0",
             "--no-progress"]
    assert_no_room_line(gmc_rl(train, tmp_path, file_limit=50_000), "train", "agent")


def test_atomic_writes_name_the_file_and_keep_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    write_text_atomic(target, "old")
    with pytest.raises(OSError) as caught, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_writer_errors_become_os_errors_naming_the_file(tmp_path, monkeypatch):
    from_safetensors = write_error(Exception("Error while serializing: I/O error: File too large (os error 27)"),
                                   tmp_path / "model.safetensors")
    assert from_safetensors.errno == errno.EFBIG and from_safetensors.filename.endswith("model.safetensors")
    unknown = write_error(RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), "x")
    assert unknown.errno == errno.EIO and "file write failed" in str(unknown)

    def failing_save(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="trainer_state"):
        save_training_state(tmp_path / "last", {"epoch": 1, "model": {}})
    assert not list((tmp_path / "last").iterdir())
