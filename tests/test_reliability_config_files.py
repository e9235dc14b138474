"""Config files by content and flags by their full names.

An empty, whitespace-only or comments-only file is not a config (it used to be read as "all defaults"), and no
``gmc-rl`` command takes an abbreviated flag: ``--conf FILE`` was taken for ``--config FILE`` by the command's parser
but not by the early read of the config file, so the file was silently never read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gmc_rl.cli import main
from gmc_rl.config import load_config, load_yaml
from gmc_rl.errors import ConfigError

NO_CONFIG = {
    "empty": "",
    "spaces": "   \n\n  \n",
    "tabs-and-crlf": "\t\r\n \t\r\n",
    "comments": "# a config\n   # to be written\n",
    "document-start": "---\n",
    "document-start-and-end": "--- # nothing\n...\n",
    "null": "null\n",
    "tilde": "~\n",
}


@pytest.mark.parametrize("text", NO_CONFIG.values(), ids=NO_CONFIG.keys())
def test_a_file_without_content_is_not_a_config(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config file {path} holds no config: it is empty or has only whitespace"):
        load_config(path)
    with pytest.raises(ConfigError, match="run config .* holds no config"):
        load_yaml(path, "run config")


def test_an_empty_mapping_is_still_the_defaults(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("{}\n")
    assert load_config(path).name == "experiment"


@pytest.mark.parametrize("command", [["collect", "--out", "data"], ["pipeline"], ["train", "--out", "agent"],
                                     ["pretrain", "--data", "data", "--out", "gmc"]])
def test_every_command_refuses_an_empty_config_file_and_writes_nothing(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    Path("empty.yaml").write_text("\n# nothing yet\n")
    assert main([*command, "--config", "empty.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gmc-rl {command[0]}: error: config file empty.yaml holds no config")
    assert len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["empty.yaml"]


ABBREVIATIONS = [
    ["collect", "--conf", "envcfg.yaml", "--out", "data"],
    ["collect", "--conf=envcfg.yaml", "--out", "data"],
    ["collect", "--config", "envcfg.yaml", "--ou", "data"],
    ["train", "--confi", "envcfg.yaml", "--out", "agent"],
    ["train", "--config", "envcfg.yaml", "--out", "agent", "--res"],
    ["train", "--config", "envcfg.yaml", "--out", "agent", "--total-time", "10"],
    ["pipeline", "--conf", "envcfg.yaml"],
    ["pipeline", "--config", "envcfg.yaml", "--upd"],
    ["pipeline", "--config", "envcfg.yaml", "--pretrain.epo", "2"],
    ["pretrain", "--dat", "data", "--out", "gmc"],
    ["evaluate", "--ag", "agent"],
    ["report", "run", "--ou", "cmp"],
    ["envs", "--al"],
]


@pytest.mark.parametrize("argv", ABBREVIATIONS, ids=[" ".join(a[:3]) for a in ABBREVIATIONS])
def test_abbreviated_flags_are_refused_by_every_command(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    Path("envcfg.yaml").write_text("env_id: gmc_rl/CartPoleSensors-v0\n")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    flags = [word.split("=")[0] for word in argv if word.startswith("--")]
    abbreviation = next(flag for flag in flags if flag not in ("--config", "--out"))
    assert f"unrecognized arguments: {abbreviation}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envcfg.yaml"]


def test_the_top_level_parser_refuses_abbreviations_too(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--vers"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --vers" in capsys.readouterr().err
