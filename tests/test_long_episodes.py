"""experiments/long_episodes.py on a hand-made results.json with a known answer."""

from __future__ import annotations

import json

from gmc_rl.experiments.long_episodes import main


def test_long_episodes_are_counted_and_left_out_of_the_mean(tmp_path, capsys):
    def row(method, returns, lengths):
        return {"complete": {"per_seed": [{"agent": f"{method}-seed0", "returns": returns, "lengths": lengths}]}}

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": {"gmc": row("gmc", [-80.0, -500.0, -90.0], [80, 500, 90]),
                                            "state": row("state", [-80.0, -85.0, -85.0], [80, 85, 85])}}))
    assert main([str(path), "--over", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{path} gmc-seed0: 1 of 3 episodes over 200 steps (longest 500; state's longest 85); "
                        "mean without them -85.0 against -83.3 (ratio 1.020), median ratio 1.059")
    assert lines[1:] == ["gmc: 1 of 3 episodes over 200 steps", "state: 0 of 3 episodes over 200 steps",
                         "worst ratio without long episodes 1.020; worst median ratio 1.059"]
