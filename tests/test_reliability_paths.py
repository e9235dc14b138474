"""Paths by what they resolve to, names by what they are.

A directory given twice to a command that pools what directories hold (``gmc-rl report RUN RUN/``, ``gmc-rl
evaluate --agent A A/``) is counted once, in any spelling (trailing slash, ``./``, ``/.``, absolute, a symlink); the
experiment's ``name`` names the run directory ``runs/<name>`` and is never a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import fake_run

from gmc_rl.cli import main
from gmc_rl.config import MAX_NAME_BYTES, ExperimentConfig, from_dict
from gmc_rl.errors import ConfigError
from gmc_rl.io import distinct_paths
from gmc_rl.pipeline import merge_runs

ENV_ID = "gmc_rl/PendulumSound-v0"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """One fake run directory ``RUN`` under the working directory ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return fake_run(tmp_path / "RUN", "gmc-seed0", [-5.0, -7.0])


def _spellings(run: Path) -> list[str]:
    link = run.parent / "link-to-run"
    link.symlink_to(run, target_is_directory=True)
    return ["RUN/", "./RUN", "RUN/.", str(run.resolve()), str(link), "RUN//", "RUN/../RUN"]


def test_the_same_run_in_any_spelling_is_pooled_once(run):
    once = merge_runs(["RUN"])
    for spelling in _spellings(run):
        twice = merge_runs(["RUN", spelling])
        assert twice["agents"] == once["agents"] == {"gmc": ["RUN/gmc-seed0"]}, spelling
        assert twice["results"] == once["results"], spelling
        assert twice["settings"]["runs"] == ["RUN"]


def test_report_command_counts_a_run_given_twice_once(run, capsys):
    assert main(["report", "RUN", "RUN/", "./RUN", "--out", "cmp"]) == 0
    results = json.loads(Path("cmp/results.json").read_text())
    assert results["agents"] == {"gmc": ["RUN/gmc-seed0"]}
    assert results["results"]["gmc"]["complete"]["episodes"] == 2
    assert "gmc: 1 agents" in capsys.readouterr().out


def test_distinct_runs_are_still_pooled(run, tmp_path):
    other = fake_run(tmp_path / "OTHER", "gmc-seed1", [-6.0, -8.0])
    results = merge_runs(["RUN", other, "RUN/"])
    assert results["agents"] == {"gmc": ["RUN/gmc-seed0", f"{other}/gmc-seed1"]}
    assert results["results"]["gmc"]["complete"]["episodes"] == 4


def test_distinct_paths_keeps_the_first_spelling_of_each(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "b", tmp_path / "b-link")
    kept = distinct_paths(["a/", "b-link", "./a", str(tmp_path / "b"), "missing", "./missing", "a/."])
    assert kept == [Path("a"), Path("b-link"), Path("missing")]


@pytest.mark.parametrize("name", ["../../somewhere", "/tmp/abs", "a/b", "a\\b", ".", "..", "sub/", "x" * 256,
                                  "é" * 128, "a\0b"])
def test_a_name_is_never_a_path(name):
    with pytest.raises(ConfigError, match="config key 'name'"):
        ExperimentConfig(name=name)
    with pytest.raises(ConfigError, match="config key 'name'"):
        from_dict(ExperimentConfig, {"name": name})


def test_name_errors_say_why(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=r"must be a name, not a path: '\.\./\.\./x' contains \['/'\].*--out DIR"):
        ExperimentConfig(name="../../x")
    with pytest.raises(ConfigError, match=f"is 256 bytes long; a directory name may have at most {MAX_NAME_BYTES}"):
        ExperimentConfig(name="x" * 256)
    assert ExperimentConfig(name="x" * MAX_NAME_BYTES).name == "x" * MAX_NAME_BYTES
    # From a config file or a flag, before anything is written.
    monkeypatch.chdir(tmp_path)
    Path("cfg.yaml").write_text("name: ../../somewhere\n")
    assert main(["pipeline", "--config", "cfg.yaml"]) == 2
    assert main(["pipeline", "--name", "../up"]) == 2
    err = capsys.readouterr().err
    assert err.count("must be a name, not a path") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]
    assert not (tmp_path.parent.parent / "somewhere").exists()


# ----------------------------------------------------------------------------------------------------------------
# A copy of a run (cp -r) is another directory holding the same agent evaluations: refused, naming both files.


def _copy_of(run: Path, dest: Path) -> Path:
    import shutil
    shutil.copytree(run, dest)
    return dest


@pytest.mark.parametrize("how", ["cp-r", "reindented"])
def test_a_copy_of_a_run_is_refused_naming_both_records(run, tmp_path, how):
    copy = _copy_of(run, tmp_path / "RUN_COPY")
    record = copy / "eval" / "runs" / "gmc-seed0.json"
    if how == "reindented":
        record.write_text(json.dumps(json.loads(record.read_text()), indent=4, sort_keys=True))
    with pytest.raises(ConfigError, match=r"hold the same agent evaluation .*count its episodes twice") as error:
        merge_runs(["RUN", "RUN_COPY"])
    assert str(error.value).count("RUN") >= 2 and "gmc-seed0" in str(error.value)


def test_only_the_records_of_the_agents_a_run_names_are_read(run, tmp_path):
    """A record copied within the run (a backup) is not one of the run's agents: it is not read, so not counted
    twice; a run whose agent's record was renamed is not finished, and says so."""
    record = run / "eval" / "runs" / "gmc-seed0.json"
    (run / "eval" / "runs" / "gmc-seed0-backup.json").write_text(record.read_text())
    assert merge_runs(["RUN"])["results"]["gmc"]["complete"]["episodes"] == 2
    copy = _copy_of(run, tmp_path / "RUN_COPY")
    (copy / "eval" / "runs" / "gmc-seed0.json").rename(copy / "eval" / "runs" / "other-name.json")
    with pytest.raises(ConfigError, match=r"RUN_COPY is not finished: no evaluation of gmc-seed0"):
        merge_runs(["RUN", "RUN_COPY"])


def test_report_command_refuses_a_copied_run_in_one_line_and_writes_nothing(run, tmp_path, capsys):
    _copy_of(run, tmp_path / "RUN_COPY")
    assert main(["report", "RUN", "RUN_COPY", "--out", "cmp"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "RUN/eval/runs/gmc-seed0.json and RUN_COPY/eval/runs/gmc-seed0.json hold the same agent evaluation" in err
    assert not Path("cmp/results.json").exists()


def test_a_copied_run_that_was_re_evaluated_is_pooled(run, tmp_path):
    """Not a duplicate: the copy's record holds other episodes (e.g. evaluated again with other episodes)."""
    copy = _copy_of(run, tmp_path / "RUN_COPY")
    record_path = copy / "eval" / "runs" / "gmc-seed0.json"
    record = json.loads(record_path.read_text())
    record["agent"] = "RUN_COPY/gmc-seed0"
    record_path.write_text(json.dumps(record))
    assert merge_runs(["RUN", "RUN_COPY"])["results"]["gmc"]["complete"]["episodes"] == 4
