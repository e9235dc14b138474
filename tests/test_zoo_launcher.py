"""``python -m gmc_rl.zoo SCRIPT ARGS``: refusals that need no rl-zoo3 run (the runs are in test_rl_zoo.py)."""

import importlib.util

import pytest

from gmc_rl.zoo import main


@pytest.mark.parametrize("argv", [[], ["../record_video"], ["rl_zoo3.train"], ["no_such_script_here"]])
def test_bad_scripts_exit_2_with_a_message(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: python -m gmc_rl.zoo" in err or "rl_zoo3" in err


def test_help_and_a_missing_script_are_named(capsys):
    assert main(["--help"]) == 0
    assert "SCRIPT" in capsys.readouterr().out
    assert main(["no_such_script_here"]) == 2
    expected = "no script 'no_such_script_here'" if importlib.util.find_spec("rl_zoo3") else "zoo extra"
    assert expected in capsys.readouterr().err
