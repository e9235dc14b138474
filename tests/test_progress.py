"""Progress reports: a bar on a terminal, plain lines elsewhere, a progress file in pipeline workers."""

from __future__ import annotations

import json

import gmc_rl.progress as progress
from gmc_rl.progress import PROGRESS_FILE_ENV, LineProgress, format_progress, progress_bar, read_progress


def test_without_a_terminal_progress_is_plain_lines(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    bar = progress_bar(200, "collect x", "step")
    assert isinstance(bar, LineProgress)  # pytest's captured stderr is not a terminal
    bar.update(50)
    bar.set_postfix(loss="0.5")
    bar.update(50)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("collect x: 25% (50/200 step, ") and "step/s, ETA" in lines[0]
    assert lines[-1].startswith("collect x: 50% (100/200 step, ") and lines[-1].endswith("[loss=0.5]")
    assert "\r" not in "".join(lines)


def test_lines_are_at_most_one_per_interval(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL", 3600.0)
    with progress_bar(1000, "pretrain", "batch") as bar:
        for _ in range(1000):
            bar.update(1)
    assert len(capsys.readouterr().err.splitlines()) == 1  # only the final line


def test_a_disabled_bar_prints_nothing_but_records_the_progress_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "LINE_INTERVAL", 0.0)
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(tmp_path / "p.json"))
    bar = progress_bar(10, "train", "step", enabled=False)
    bar.update(3)
    assert capsys.readouterr().err == ""
    state = read_progress(tmp_path / "p.json")
    assert state["n"] == 3 and state["total"] == 10
    assert format_progress(state).startswith("train: 30% (3/10 step, ")
    (tmp_path / "bad.json").write_text(json.dumps([1]))
    assert read_progress(tmp_path / "bad.json") is None and read_progress(tmp_path / "missing.json") is None
