"""experiments/single_sensor_losses.py: the loss of each sensor alone, and the count over the threshold, from both
kinds of result file (an independent-loop JSON and a pipeline results.json)."""

import json

import pytest

from gmc_rl.experiments.single_sensor_losses import against, agent_returns, main, single_sensor_losses


def test_losses_from_an_independent_loop_json_are_counted_against_the_threshold(tmp_path, capsys):
    path = tmp_path / "own.json"
    path.write_text(json.dumps({"a": {"complete": -80.0, "image": -96.0, "sound": -84.0},
                                "b": {"complete": 500.0, "image": 50.0, "sound": 500.0}}))
    assert single_sensor_losses(agent_returns(path)) == {"a": {"image": pytest.approx(20.0),
                                                              "sound": pytest.approx(5.0)},
                                                        "b": {"image": pytest.approx(90.0), "sound": 0.0}}
    assert main([str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 of 4 agent x sensor pairs lose more than 10 %"
    assert main([str(path), "--threshold", "50"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 4 agent x sensor pairs lose more than 50 %"


def test_a_pipeline_results_file_gives_its_single_sensor_conditions_only(tmp_path):
    def cell(returns):
        return {"per_seed": [{"agent": f"gmc-seed{i}", "episode_return": value} for i, value in enumerate(returns)]}

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": {"gmc": {
        "complete": cell([-100.0, -200.0]), "image": cell([-105.0, -260.0]), "sound": cell([-90.0, -200.0]),
        "image+sound": cell([-500.0, -500.0]), "dropout:0.5": cell([-500.0, -500.0])}}}))
    losses = single_sensor_losses(agent_returns(path))
    assert losses == {"gmc-seed0": {"image": pytest.approx(5.0), "sound": pytest.approx(-10.0)},
                      "gmc-seed1": {"image": pytest.approx(30.0), "sound": 0.0}}


def test_every_sensor_returns_are_paired_with_the_same_seed_of_another_method(tmp_path, capsys):
    def cell(method, returns):
        return {"per_seed": [{"agent": f"{method}-seed{i}", "episode_return": v} for i, v in enumerate(returns)]}

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": {
        "gmc": {"complete": cell("gmc", [-99.0, -80.0]), "image": cell("gmc", [-90.0, -80.0])},
        "state": {"complete": cell("state", [-90.0, -80.0])}}}))
    assert against(agent_returns(path), agent_returns(path, "state")) == {"gmc-seed0": (-99.0, -90.0),
                                                                         "gmc-seed1": (-80.0, -80.0)}
    assert main([str(path), "--against", "state"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{path} gmc-seed0: every sensor -99.0, state -90.0 (ratio 1.100)"
    assert lines[1] == f"{path} gmc-seed1: every sensor -80.0, state -80.0 (ratio 1.000)"
    assert "2 of 2 agents within 10 % of state with every sensor" in lines
    assert main([str(path), "--against", "state", "--threshold", "5"]) == 0
    assert "1 of 2 agents within 5 % of state with every sensor" in capsys.readouterr().out.splitlines()
