"""Weak answers to bad input found by a red-team pass, each fixed for its whole class.

Every case here once got a misleading message (a FIFO called "a file", a directory inside an agent called "not
finished"), a raw error, or left something behind. Each test covers one class (every kind of path, every
spelling) and runs in seconds: no training.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gmc_rl import io
from gmc_rl.cli import main
from gmc_rl.io import ensure_writable_dir, wrong_path

ENV = "gmc_rl/PendulumSound-v0"


@pytest.fixture
def kinds(tmp_path, monkeypatch):
    """One path of every kind under the working directory: ``fifo``, ``sock``, ``file``, ``folder``, ``broken``
    (a link to nowhere) and ``loop`` (a link to itself); ``/dev/null`` is the device."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    Path("file").write_text("x")
    Path("folder").mkdir()
    Path("broken").symlink_to(tmp_path / "nowhere")
    Path("loop").symlink_to("loop")
    yield tmp_path
    server.close()


# ----------------------------------------------------------------------------------------------------------------
# Paths: every kind is named by what it is.

KIND_NAMES = {"fifo": "a FIFO (named pipe)", "sock": "a socket", "/dev/null": "a character device",
              "file": "a regular file", "folder": "a directory", "broken": "a broken symbolic link (to ",
              "loop": "a symbolic link loop"}


@pytest.mark.parametrize("name", list(KIND_NAMES))
def test_every_path_kind_is_named_by_what_it_is(kinds, capsys, name):
    """Before, a FIFO, a socket and a device given as an output directory were each called "a file", and as an
    input file "not a regular file or directory (a FIFO, socket or device)", whatever they were."""
    says = KIND_NAMES[name]
    if name != "folder":
        with pytest.raises(PermissionError, match=f"{name}: {name} is {says}".replace("(", r"\(").replace(")", r"\)")):
            ensure_writable_dir(name, "dataset directory")
        with pytest.raises(PermissionError, match=f"{name} is {says}".replace("(", r"\(").replace(")", r"\)")):
            ensure_writable_dir(f"{name}/sub", "dataset directory")
        assert main(["collect", "--out", name, "--collect.steps", "10"]) == 2
        err = capsys.readouterr().err
        assert f"{name} is {says}" in err and "is a file," not in err, err
        assert says in wrong_path(name, "thing")
    if name not in ("file", "broken", "loop"):
        expected = "a file" if name == "folder" else "a regular file"
        assert wrong_path(name, "thing", "file") == f"thing {name} is {says}, not {expected}"
    assert io.path_kind(name).startswith(says)
    assert io.path_kind("missing") is None


# ----------------------------------------------------------------------------------------------------------------
# Config files.


@pytest.mark.parametrize("flag", ["--config", "--config=", "--pretrain"])
def test_a_config_that_is_a_broken_link_names_the_link_and_its_target(kinds, capsys, flag):
    """Before, "config file not found: broken.yaml", as if nothing were there."""
    Path("broken.yaml").symlink_to(kinds / "gone" / "cfg.yaml")
    argv = ["pretrain", *([flag + "broken.yaml"] if flag.endswith("=") else [flag, "broken.yaml"]), "--out", "p"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"broken.yaml is a broken symbolic link (to {kinds / 'gone' / 'cfg.yaml'}); point the link at a YAML " \
           "file or pass the file itself" in err, err
    assert main(["pipeline", "--config", "loop"]) == 2
    assert "loop is a symbolic link loop" in capsys.readouterr().err
    assert not Path("p").exists()
