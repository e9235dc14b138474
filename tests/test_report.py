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


# ----------------------------------------------------------------------------------------------------------------
# What a run's report pools: the agents its config names, finished, made with one set of settings per method
# (red-team pass six, F3, F8, F14).


def _edit_config(run_dir, **changes):
    """Change keys of a fake run's config.yaml (``section__key=value``)."""
    import yaml

    path = run_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    path.write_text(yaml.safe_dump(data))


def test_runs_whose_agents_were_made_with_other_settings_are_not_pooled(tmp_path):
    """Before, a latent size of 4 and of 6, or 200 and 300 training steps, were averaged in one gmc row."""
    from helpers import fake_run

    a = fake_run(tmp_path / "A", "gmc-seed0", [-5.0, -7.0])
    b = fake_run(tmp_path / "B", "gmc-seed1", [-6.0, -8.0])
    _edit_config(b, pretrain__seed=3, collect__seed=4)  # other seeds only: one method, pooled
    assert merge_runs([a, b])["results"]["gmc"]["complete"]["episodes"] == 4
    _edit_config(b, agent__total_timesteps=300)
    with pytest.raises(ConfigError, match=r"the gmc agents of .*A and .*B were made with different settings "
                                          r"\(agent.total_timesteps: 30000 vs 300\)"):
        merge_runs([a, b])
    assert merge_runs([a])["agents"] == {"gmc": [f"{a}/gmc-seed0"]}


def test_a_run_missing_an_evaluation_its_config_names_is_not_finished(tmp_path):
    """Before, `report` silently left out the agents not yet evaluated."""
    from helpers import fake_run

    run = fake_run(tmp_path / "RUN", "gmc-seed0", [-5.0, -7.0])
    _edit_config(run, seeds=[0, 1])
    with pytest.raises(ConfigError, match=r"RUN is not finished: no evaluation of gmc-seed1 .*gmc-rl pipeline --out"):
        merge_runs([run])


def test_report_of_an_updated_run_reads_the_current_agents_only(tmp_path):
    """Before, after `pipeline --update` changed the seeds and the training steps, `report RUN` pooled the stale
    agent of the old config with the new one; and a run whose update was interrupted reported the old evaluations
    as current."""
    run = tmp_path / "run"
    config = tiny_config("gmc_rl/PendulumSound-v0", ["state"], evaluate={"conditions": ["complete"]})
    run_pipeline(config, run, progress=False, log=lambda message: None)
    changed = tiny_config("gmc_rl/PendulumSound-v0", ["state"], seeds=[1], evaluate={"conditions": ["complete"]})
    run_pipeline(changed, run, update=True, progress=False, log=lambda message: None)
    assert (run / "eval" / "runs" / "state-seed0.json").is_file()  # left there, not read
    assert merge_runs([run])["agents"] == {"state": [f"{run}/agents/state-seed1"]}

    more_episodes = tiny_config("gmc_rl/PendulumSound-v0", ["state"], seeds=[1],
                                evaluate={"conditions": ["complete"], "episodes": 3})

    def interrupt(message):  # Ctrl-C once the plan is made, before the evaluation is redone
        if "up to date, skipped" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(more_episodes, run, update=True, progress=False, log=interrupt)
    with pytest.raises(ConfigError, match=r"is not finished: the evaluation of state-seed1 was made with settings the "
                                          r"run's config no longer has"):
        merge_runs([run])
    run_pipeline(more_episodes, run, progress=False, log=lambda message: None)
    assert merge_runs([run])["results"]["state"]["complete"]["episodes"] == 3
