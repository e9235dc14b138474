"""Section files (``--pretrain FILE``, ``--pretrain=FILE``, ``--pretrain.model FILE``, ``--agent FILE``, ...) are read
as ``--config`` is: a regular file within MAX_CONFIG_BYTES holding a mapping, else one line naming the flag and the
file. Before, every section file failed with "unknown config key 'pretrain.__path__'", an empty one with a
multi-line jsonargparse message, a 50 MB one was parsed for 22 s and a FIFO blocked forever.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from gmc_rl.cli import main
from gmc_rl.config import MAX_CONFIG_BYTES, load_config

# (command, flag): every section flag of a command that takes it, in both spellings, nested groups included.
FLAGS = [("pretrain", "--pretrain"), ("pretrain", "--pretrain.model"), ("pipeline", "--collect"),
         ("pipeline", "--agent"), ("pipeline", "--evaluate"), ("pipeline", "--pretrain.muse"), ("collect", "--collect")]


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """``gmc-rl ARGV --print_config`` with a 30 s alarm: a read that blocks fails the test instead of hanging it."""
    def alarm(signum, frame):
        raise TimeoutError(f"gmc-rl {' '.join(argv)} hung")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(30)
    try:
        code = main([*argv, "--print_config"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.err


def _bad_file(kind: str, tmp_path: Path) -> tuple[str, str]:
    """A bad section file of ``kind`` and the message fragment it must give."""
    path = tmp_path / f"sec-{kind}"
    if kind == "empty":
        path.write_text("")
    elif kind == "whitespace":
        path.write_text("  \n\t\n")
    elif kind == "comments":
        path.write_text("# only a comment\n# another\n")
    elif kind == "null":
        path.write_text("---\nnull\n")
    elif kind in ("list", "scalar", "string"):
        path.write_text({"list": "- 1\n- 2\n", "scalar": "3\n", "string": "'epochs: 3'\n"}[kind])
        return str(path), "must hold a mapping of"
    elif kind == "huge":
        path.write_text("epochs: 3\n" + "#" * MAX_CONFIG_BYTES + "\n")
        return str(path), "is larger than 1048576 bytes (MAX_CONFIG_BYTES)"
    elif kind == "not-utf8":
        path.write_bytes(b"epochs: \xff\xfe\n")
        return str(path), "is not UTF-8"
    elif kind == "bad-yaml":
        path.write_text("epochs: [3\n")
        return str(path), "is not valid YAML"
    elif kind == "directory":
        path.mkdir()
        return str(path), "is a directory, not a regular file"
    elif kind == "fifo":
        os.mkfifo(path)
        return str(path), "is a FIFO (named pipe), not a regular file"
    elif kind == "dev-zero":
        return "/dev/zero", "is a character device, not a regular file"
    elif kind == "missing":
        return str(path), "section file not found"
    return str(path), "holds no config"


KINDS = ["empty", "whitespace", "comments", "null", "list", "scalar", "string", "huge", "not-utf8", "bad-yaml",
         "directory", "fifo", "dev-zero", "missing"]


CASES = [(command, flag, "space") for command, flag in FLAGS] + [("pretrain", "--pretrain", "equals"),
                                                                   ("pipeline", "--agent", "equals")]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command,flag,spelling", CASES, ids=[f"{c}{f}-{s}" for c, f, s in CASES])
def test_a_bad_section_file_is_one_line_naming_the_flag_and_the_file(tmp_path, monkeypatch, capsys, kind, command,
                                                                      flag, spelling):
    monkeypatch.chdir(tmp_path)
    path, fragment = _bad_file(kind, tmp_path)
    argv = [command, f"{flag}={path}"] if spelling == "equals" else [command, flag, path]
    code, err = _run(argv, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gmc-rl {command}: error: {flag} section file"), err
    assert path in lines[0] and fragment in lines[0], err
    assert "__path__" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in tmp_path.iterdir()
                                                               if p.name.startswith("sec-"))  # nothing written


@pytest.mark.parametrize("spelling", ["space", "equals"])
def test_a_section_file_sets_its_keys(tmp_path, monkeypatch, capsys, spelling):
    monkeypatch.chdir(tmp_path)
    Path("sec.yaml").write_text("# pretraining for the quick run\nepochs: 3\nmodel:\n  conv_channels: [8, 16]\n")
    Path("model.yaml").write_text("latent_dim: 12\n")
    argv = ["pretrain", "--pretrain=sec.yaml", "--pretrain.model=model.yaml"] if spelling == "equals" else \
        ["pretrain", "--pretrain", "sec.yaml", "--pretrain.model", "model.yaml"]
    code = main([*argv, "--print_config"])
    out = capsys.readouterr().out
    assert code == 0
    Path("printed.yaml").write_text("\n".join(line for line in out.splitlines() if not line.startswith("#")))
    pretrain = load_config("printed.yaml").pretrain
    assert pretrain.epochs == 3 and pretrain.model.conv_channels == [8, 16] and pretrain.model.latent_dim == 12


def test_inline_section_mappings_still_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--pretrain", '{"epochs": 4}', "--pretrain.model", "{latent_dim: 10}",
                 "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["pretrain"]["epochs"] == 4 and printed["pretrain"]["model"]["latent_dim"] == 10


def test_a_section_file_with_an_unknown_key_is_a_config_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("sec.yaml").write_text("epochz: 3\n")
    code, err = _run(["pretrain", "--pretrain", "sec.yaml"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "pretrain.epochz" in err and "Did you mean 'epochs'" in err


@pytest.mark.parametrize("kind,fragment", [("fifo", "is a FIFO"), ("dev-zero", "is a character device"),
                                           ("directory", "is a directory")])
def test_config_files_that_are_not_regular_files_are_named_by_what_they_are(tmp_path, monkeypatch, capsys, kind,
                                                                            fragment):
    monkeypatch.chdir(tmp_path)
    path, _ = _bad_file(kind, tmp_path)
    code, err = _run(["pretrain", "--config", path], capsys)
    assert code == 2 and err.strip() == err.strip().splitlines()[0]
    assert f"config file {path} {fragment}" in err, err
