"""Red-team pass seven, R3, R4, R7, R8: train's several-agent flags, the forms of list flags, evaluation seeds taken
from a config, and a partly deleted agent resume point. Each test failed before its fix."""

from __future__ import annotations

import yaml
from helpers import tiny_state_config

from gmc_rl.cli import main


def test_r7_train_refuses_the_pipelines_seeds_and_methods_naming_the_flag_to_use(tmp_path, capsys):
    """`train --seeds 0 1` trained seed 0 only and exited 0; `train --methods state` was ignored and the refusal
    then named 'gmc'. Both are refused before anything is written, naming --seed / --method; --help lists neither."""
    out, config = tmp_path / "agent", tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_state_config("r7")))  # seconds, should the refusal ever be lost
    for argv, flag in ((["--method", "state", "--seeds", "0", "1"], "--seed N"),
                       (["--methods", "state"], "--method M"), (["--method", "state", "--seeds=3"], "--seed N")):
        assert main(["train", "--config", str(config), *argv, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"gmc-rl train makes one agent: give its {flag.split()[0][2:]} with {flag}" in err
        assert "gmc" not in err.replace("gmc-rl", "") and not out.exists()
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    assert "--seed SEED" in text and "--seeds SEED" not in text and "--methods METHOD" not in text
