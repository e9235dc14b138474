"""Tests of `gmc-rl report` / merge_runs: evaluations of separate pipeline runs pooled into one table."""

from __future__ import annotations

import json

import pytest
from helpers import check_results, tiny_config

from gmc_rl.cli import main
from gmc_rl.errors import ConfigError
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE
from gmc_rl.pipeline import merge_runs, run_pipeline

CONDITIONS = ["complete", "image", "sound", "dropout:0.5"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two tiny runs of the true-state agent with different seeds, and one with a raw agent."""
    root = tmp_path_factory.mktemp("runs")
    for name, methods, seeds in (("a", ["state"], [0]), ("b", ["state", "raw"], [1])):
        config = tiny_config("gmc_rl/PendulumSound-v0", methods, seeds=seeds)
        run_pipeline(config, root / name, progress=False, log=lambda message: None)
    return root / "a", root / "b"


def test_merge_pools_agents_of_a_method_across_runs(two_runs):
    a, b = two_runs
    results = merge_runs([a, b])
    assert results["methods"] == ["state", "raw"]
    assert results["agents"]["state"] == [f"{a}/agents/state-seed0", f"{b}/agents/state-seed1"]
    check_results({**results, "results": {"raw": results["results"]["raw"]}, "methods": ["raw"]}, ["raw"], CONDITIONS)
    pooled = results["results"]["state"]["complete"]
    assert pooled["episodes"] == 4 and pooled["across_seeds"]["per_step_reward"]["n"] == 2
    # The pooled mean is the mean over both runs' episodes.
    returns = []
    for run, agent in ((a, "state-seed0"), (b, "state-seed1")):
        record = json.loads((run / "eval" / "runs" / f"{agent}.json").read_text())
        returns += record["evaluation"]["complete"]["per_seed"][0]["returns"]
    assert pooled["episode_return"]["mean"] == pytest.approx(sum(returns) / len(returns))
    assert merge_runs([a, b], methods=["raw", "state"])["methods"] == ["raw", "state"]


def test_report_command_writes_the_table(two_runs, tmp_path, capsys):
    a, b = two_runs
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    assert "| state |" in capsys.readouterr().out
    written = {p.name for p in (tmp_path / "cmp").iterdir()} - {LOCK_FILE, HOLDER_FILE}
    assert written == {"results.json", "results.md", "results.png"}


def test_report_and_evaluate_never_write_into_a_runs_eval_folder(two_runs, tmp_path, capsys):
    """Before, `report RUN_A RUN_B --out RUN_A/eval` replaced RUN_A's results with the pooled table, which RUN_A's
    report stage (done) then showed as its own."""
    a, b = two_runs
    before = {path.name: path.read_bytes() for path in (a / "eval").iterdir() if path.is_file()}
    link = tmp_path / "link_to_a"
    link.symlink_to(a)
    for out in (a / "eval", f"{a}/eval/", a / "eval" / "runs", a / "eval" / "new", a / "agents" / ".." / "eval",
                link / "eval"):
        assert main(["report", str(a), str(b), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gmc-rl report: error: --out {out} lies in") and "\n" not in err
        assert f"the evaluation folder of the pipeline run {a.resolve()}" in err
    assert main(["evaluate", "--agent", str(a / "agents" / "state-seed0"), "--out", str(a / "eval"),
                 "--episodes", "1"]) == 2
    assert "gmc-rl evaluate: error: --out" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in (a / "eval").iterdir() if path.is_file()} == before
    assert not (a / "eval" / "new").exists()


def test_merge_refuses_bad_inputs(two_runs, tmp_path):
    a, _ = two_runs
    with pytest.raises(ConfigError, match="no agent evaluations"):
        merge_runs([a, tmp_path])
    with pytest.raises(ConfigError, match=r"method\(s\) \['gmc'\]"):
        merge_runs([a], methods=["gmc"])
