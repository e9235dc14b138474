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


# (command, flag, file content, the config key and value the refusal must name): a value of a section file that
# does not load (wrong type) or does not pass the config's checks, in every section and nested group; the refusal
# names the file as well as the key, in both spellings of the flag.
BAD_VALUES = [
    ("pretrain", "--pretrain", "epochs: abc\n", "pretrain.epochs", "abc"),
    ("pretrain", "--pretrain", "epochs: -3\n", "pretrain.epochs", "-3"),
    ("pretrain", "--pretrain", "temperature: 0.0\n", "pretrain.temperature", "0.0"),
    ("pretrain", "--pretrain", "device: gpu\n", "pretrain.device", "gpu"),
    ("pretrain", "--pretrain", "model:\n  latent_dim: zz\n", "pretrain.model.latent_dim", "zz"),
    ("pretrain", "--pretrain.model", "latent_dim: -2\n", "pretrain.model.latent_dim", "-2"),
    ("pipeline", "--collect", "steps: 0\n", "collect.steps", "0"),
    ("pipeline", "--agent", "algo: sacc\n", "agent.algo", "sacc"),
    ("pipeline", "--agent", "total_timesteps: many\n", "agent.total_timesteps", "many"),
    ("pipeline", "--evaluate", "episodes: -1\n", "evaluate.episodes", "-1"),
    ("pipeline", "--pretrain.muse", "alignment_weight: -1.0\n", "pretrain.muse.alignment_weight", "-1.0"),
]


@pytest.mark.parametrize("spelling", ["separate", "equals"])
@pytest.mark.parametrize("command,flag,content,key,value", BAD_VALUES)
def test_a_bad_value_in_a_section_file_is_refused_naming_the_file(command, flag, content, key, value, spelling,
                                                                   tmp_path, capsys):
    path = tmp_path / "section.yaml"
    path.write_text(content)
    given = [flag, str(path)] if spelling == "separate" else [f"{flag}={path}"]
    code, err = _run_or_exit([command, *given, "--out", str(tmp_path / "out")], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{flag} section file {path}: config key '{key}'" in lines[0], err
    assert value in lines[0] and "Unable to load" not in lines[0], err


def _run_or_exit(argv: list[str], capsys) -> tuple[int, str]:
    """As _run, for a refusal made while the command line is parsed (the parser exits with status 2)."""
    try:
        return _run(argv, capsys)
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().err


def test_a_later_flag_that_replaces_a_section_file_value_is_not_blamed_on_the_file(tmp_path, capsys):
    path = tmp_path / "section.yaml"
    path.write_text("epochs: -3\n")
    code, err = _run(["pretrain", "--pretrain", str(path), "--epochs", "-4", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "got -4" in err and str(path) not in err, err
    code, err = _run(["pretrain", "--epochs", "-4", "--pretrain", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and f"--pretrain section file {path}: config key 'pretrain.epochs'" in err, err
