"""Every config key is a flag on every command that reads it, with its type, default and docstring in --help."""

from __future__ import annotations

import pytest
import yaml
from helpers import parse

from gmc_rl.cli import build_command_parser, main
from gmc_rl.commands.common import config_file_or
from gmc_rl.commands.config_flags import SECTIONS, _leaves
from gmc_rl.config import to_dict


def test_pipeline_has_a_flag_for_every_key_of_every_section():
    _, parser = build_command_parser("pipeline")
    options = {option for action in parser._actions for option in action.option_strings}
    for section, cls in SECTIONS.items():
        for key, _ in _leaves(cls, section):
            assert f"--{key}" in options, key
    for key in ("--name", "--env", "--env-kwargs", "--seeds", "--methods"):
        assert key in options


def test_dotted_flags_override_the_config_file_and_nothing_else(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "pretrain": {"epochs": 7, "lr": 0.002}, "seeds": [3]}))
    config = parse("pipeline", ["--config", str(path), "--pretrain.epochs", "3", "--pretrain.model.conv_channels",
                                "[8, 16]", "--agent.hyperparams", '{"gamma": 0.98}', "--seeds", "0", "1",
                                "--evaluate.conditions", "[complete, image]"])
    assert config.name == "mine" and config.pretrain.lr == 0.002  # kept from the file
    assert config.pretrain.epochs == 3 and config.pretrain.model.conv_channels == [8, 16]
    assert config.agent.hyperparams == {"gamma": 0.98} and config.seeds == [0, 1]
    assert config.evaluate.conditions == ["complete", "image"]
    untouched = parse("pipeline", ["--config", str(path)])
    assert to_dict(untouched) == to_dict(config_file_or(["--config", str(path)]))


def test_short_forms_of_the_commands_own_section(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: short\n")
    config = parse("pretrain", ["--data", "unused", "--out", "o", "--config", str(path), "--epochs", "2",
                                "--conv-channels", "4", "8", "--env", "gmc_rl/CartPoleSensors-v0"])
    assert config.pretrain.epochs == 2 and config.pretrain.model.conv_channels == [4, 8]
    assert config.env_id == "gmc_rl/CartPoleSensors-v0"
    config = parse("train", ["--out", "o", "--total-timesteps", "500", "--agent.eval_freq", "0"])
    assert config.agent.total_timesteps == 500 and config.agent.eval_freq == 0
    config = parse("evaluate", ["--agent", "a", "--video", "--episodes", "4", "--seeds", "1", "2"])
    assert config.evaluate.video is True and config.evaluate.episodes == 4 and config.seeds == [1, 2]


def test_help_shows_type_default_and_docstring(capsys):
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--pretrain.temperature TEMPERATURE tau of the contrastive loss" in text
    assert "(type: float, default: 0.3)" in text
    assert "--agent.total_timesteps" in text and "--collect.focus_fraction" in text


def test_values_are_still_checked_strictly(capsys):
    assert main(["pipeline", "--pretrain.epochs", "0"]) == 2
    assert "config key 'pretrain.epochs': must be positive, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pipeline", "--pretrain.epochz", "3"])
    assert "Did you mean '--pretrain.epochs'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # flag values go through the strict YAML loader too
        main(["pipeline", "--env-kwargs", '{"a": &x 1, "b": *x}'])
    with pytest.raises(SystemExit):
        main(["pipeline", "--agent.hyperparams", '{"gamma": 1, "gamma": 2}'])


@pytest.mark.parametrize("default_env", ["true", "True", "false"])
def test_environment_variables_never_set_config_values(monkeypatch, capsys, default_env):
    """jsonargparse reads ``GMC_RL PIPELINE_...`` variables when JSONARGPARSE_DEFAULT_ENV is true; they used to
    override the config's values (and a flag's when given the same way) without a trace in the run's config."""
    monkeypatch.setenv("JSONARGPARSE_DEFAULT_ENV", default_env)
    for name in ("GMC_RL PIPELINE_PRETRAIN__EPOCHS", "GMC_RL_PIPELINE_PRETRAIN__EPOCHS", "GMC_RL PIPELINE_CONFIG"):
        monkeypatch.setenv(name, "99")
    assert parse("pipeline", []).pretrain.epochs == parse("pipeline", ["--pretrain.epochs", "6"]).pretrain.epochs == 6
    assert parse("pipeline", ["--pretrain.epochs", "3"]).pretrain.epochs == 3
    with pytest.raises(SystemExit) as done:
        main(["pipeline", "--help"])
    assert done.value.code == 0 and "ENV:" not in capsys.readouterr().out
