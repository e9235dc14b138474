"""A path that is not what a command expects is named for what it is.

Every loader and every output directory answers the same cases the same way: a path that does not exist, a broken
symbolic link (naming its target), a file where a directory is expected, a directory where a file is, and an empty
value (which ``Path("")`` would silently turn into the current directory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmc_rl.cli import main, refuse_empty_values
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.io import ensure_writable_dir, read_json, require_existing, require_path, wrong_path
from gmc_rl.modalities import ModalitySpec, check_observation_batch

ENV = "gmc_rl/PendulumSound-v0"


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """``file``, ``folder``, ``broken`` (a link to nowhere) and ``missing`` under the working directory."""
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("x")
    Path("folder").mkdir()
    Path("broken").symlink_to(tmp_path / "nowhere" / "target")
    return tmp_path


def test_wrong_path_names_each_case(paths):
    assert wrong_path("missing", "thing") == "thing not found: missing"
    assert wrong_path("broken", "thing") == (f"thing not found: broken is a broken symbolic link "
                                             f"(to {paths / 'nowhere' / 'target'})")
    assert wrong_path("file", "thing") == "thing file is a file, not a directory"
    assert wrong_path("folder", "thing", "file") == "thing folder is a directory, not a file"
    assert require_existing("folder", "thing") == Path("folder")
    assert require_existing("file", "thing", "file") == Path("file")


@pytest.mark.parametrize("name, kind, error", [
    ("missing", "directory", FileNotFoundError),
    ("broken", "directory", FileNotFoundError),
    ("file", "directory", NotADirectoryError),
    ("folder", "file", IsADirectoryError),
])
def test_require_existing_raises_the_os_error_of_each_case(paths, name, kind, error):
    with pytest.raises(error):
        require_existing(name, "thing", kind)
    with pytest.raises(ConfigError):  # or the caller's own error class
        require_existing(name, "thing", kind, ConfigError)


def test_a_json_file_that_is_a_directory_is_named_so(paths):
    with pytest.raises(IsADirectoryError, match="stage marker folder is a directory, not a file"):
        read_json("folder", "stage marker")


def test_an_empty_string_is_not_a_path():
    with pytest.raises(ConfigError, match="got an empty string"):
        require_path("", "a dataset must be a path", ConfigError)
    assert require_path(".", "a dataset must be a path", ConfigError) == Path(".")


@pytest.mark.parametrize("argv, named", [
    (["--data", "", "--out", "p"], "flag --data"),
    (["--data", "d", "--out="], "flag --out"),
    (["--data", "d", "--out", "   "], "flag --out"),
    (["", "--out", "r"], "argument 1"),
    (["RUN", "\t", "--out", "r"], "argument 2"),
])
def test_empty_values_are_refused_naming_where(argv, named):
    with pytest.raises(ConfigError, match=f"{named} is given an empty value"):
        refuse_empty_values(argv)
    refuse_empty_values(["--data", "d", "--out", "."])  # the current directory, spelled out, is a path


@pytest.mark.parametrize("command", [
    ["pretrain", "--data", "", "--out", "p"],
    ["collect", "--env", ENV, "--out", ""],
    ["evaluate", "--agent", ""],
    ["report", "", "--out", "r"],
    ["train", "--method", "state", "--env", ENV, "--out="],
    ["pipeline", "--config", ""],
])
def test_every_command_refuses_an_empty_value_in_one_line(paths, capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gmc-rl {command[0]}: error: flag") or "argument 1" in err
    assert "is given an empty value" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in paths.iterdir()) == ["broken", "file", "folder"]  # nothing written


@pytest.mark.parametrize("command, what", [
    (["pretrain", "--env", ENV, "--data", "{}", "--out", "p"], "dataset directory"),
    (["evaluate", "--agent", "{}"], "agent directory"),
    (["report", "{}", "--out", "r"], "run directory"),
    (["align", "--model", "{}", "--data", "folder"], "checkpoint"),
    (["train", "--method", "gmc", "--env", ENV, "--encoder", "{}", "--out", "a"], "gmc encoder checkpoint"),
])
@pytest.mark.parametrize("name, says", [
    ("missing", "not found: missing"),
    ("broken", "not found: broken is a broken symbolic link (to "),
    ("file", "file is a file, not a directory"),
])
def test_a_directory_argument_names_what_the_path_is(paths, capsys, command, what, name, says):
    assert main([word.replace("{}", name) for word in command]) == 2
    err = capsys.readouterr().err
    assert f"{what} {says}" in err or f"{what} {says.split(': ', 1)[-1]}" in err, err
    assert "File exists" not in err


@pytest.mark.parametrize("out", ["broken", "broken/sub"])
def test_an_output_under_a_broken_link_is_named(paths, out):
    with pytest.raises(PermissionError, match="broken is a broken symbolic link .*; remove it or choose another path"):
        ensure_writable_dir(out, "dataset directory")
    assert not (paths / "nowhere").exists()


def test_a_masked_array_is_refused_rather_than_read_as_nan(paths):
    spec = ModalitySpec(name="sound", shape=(2,), dtype="float32", kind="vector", low=-1.0, high=1.0)
    masked = np.ma.masked_array(np.zeros((3, 2), np.float32), mask=[[0, 1], [0, 0], [0, 0]])
    with pytest.raises(ModalityError, match=r"modality 'sound': a masked array \(numpy.ma\) is not accepted"):
        check_observation_batch({"sound": masked}, {"sound": spec}, ["sound"])
    assert check_observation_batch({"sound": masked.filled(0.0)}, {"sound": spec}, ["sound"]) == 3
