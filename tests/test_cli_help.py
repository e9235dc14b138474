"""What every gmc-rl command shows about its settings: --print_config, --help with the values given beside it,
plain help text, and the flags every command with a long job shares (--no-progress)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gmc_rl.cli import COMMANDS, build_command_parser, main
from gmc_rl.config import load_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIG_COMMANDS = ("collect", "pretrain", "train", "evaluate", "pipeline")
LONG_JOBS = ("collect", "pretrain", "train", "evaluate", "pipeline")


def help_text(command: str, *argv: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, *argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def flag_entry(text: str, flag: str) -> str:
    """The help entry of ``flag``: its line and the indented lines after it, joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    entry = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" " * 20):
            break
        entry.append(line)
    return " ".join(part.strip() for part in entry)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_text_with_each_default_once(command, capsys):
    text = help_text(command, capsys=capsys)
    assert "``" not in text and ":func:" not in text and ":class:" not in text
    assert "null" not in text  # a flag without a value says what that means, not "(default: null)"
    for entry in re.split(r"\n  (?=-)", text):
        assert len(re.findall(r"\(default[: ]", entry)) + len(re.findall(r"[(,] default: ", entry)) <= 1, entry
    assert "--print_config" in text and "--import MODULE" in text


def test_help_shows_the_values_given_beside_it(capsys):
    text = help_text("pipeline", "--config", str(ROOT / "experiments" / "quick.yaml"),
                     "--agent.total_timesteps", "500", "--out", "runs/x", capsys=capsys)
    assert "given: 500" in flag_entry(text, "--agent.total_timesteps")
    assert "given: runs/x" in flag_entry(text, "--out RUN_DIR")
    assert "default: 6" in flag_entry(text, "--pretrain.epochs")  # from the config file, not given
    text = help_text("align", "--episodes", "3", capsys=capsys)
    assert "given: 3" in flag_entry(text, "--episodes EPISODES")
    text = help_text("train", "--total-timesteps", "700", capsys=capsys)  # a short form
    assert "given: 700" in flag_entry(text, "--agent.total_timesteps")
    text = help_text("align", capsys=capsys)
    assert "default: 10" in flag_entry(text, "--episodes EPISODES")


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_print_config_prints_the_effective_config_as_a_usable_config_file(command, tmp_path, capsys):
    given = {"collect": ["--steps", "123"], "pretrain": ["--epochs", "4"], "train": ["--total-timesteps", "700"],
             "evaluate": ["--episodes", "7"], "pipeline": ["--agent.total_timesteps", "500", "--seeds", "3", "4"]}
    assert main([command, *given[command], "--print_config"]) == 0  # required flags (--out, --agent) left out
    printed = capsys.readouterr().out
    assert printed.startswith(f"# gmc-rl {command}: the experiment config in effect")
    file = tmp_path / "printed.yaml"
    file.write_text(printed)
    config = load_config(file)  # the strict loader: every key known, every value valid
    expected = {"collect": ("collect", "steps", 123), "pretrain": ("pretrain", "epochs", 4),
                "train": ("agent", "total_timesteps", 700), "evaluate": ("evaluate", "episodes", 7),
                "pipeline": ("agent", "total_timesteps", 500)}[command]
    assert to_dict(config)[expected[0]][expected[1]] == expected[2]
    # given back as --config, it prints itself
    assert main([command, "--config", str(file), "--print-config"]) == 0
    again = capsys.readouterr().out
    assert again.split("\n", 1)[0] == printed.split("\n", 1)[0]
    assert to_dict(load_config(file)) == yaml.safe_load(again)


def test_print_config_of_the_pipeline_is_the_embedded_config_with_the_flags(capsys):
    assert main(["pipeline", "--seeds", "3", "4", "--out", "runs/p", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert "#   out: runs/p\n" in printed  # the command's own flags, as comments
    data = yaml.safe_load(printed)
    quick = to_dict(load_config(ROOT / "experiments" / "quick.yaml"))
    assert data == {**quick, "seeds": [3, 4]}


@pytest.mark.parametrize("command", ("align", "report", "envs"))
def test_print_config_of_a_command_without_experiment_config_prints_its_flags(command, capsys):
    argv = {"align": ["--episodes", "3"], "report": ["runs/a", "runs/b", "--out", "cmp"], "envs": ["--all"]}[command]
    assert main([command, *argv, "--print_config"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    expected = {"align": {"episodes": 3, "model": None}, "report": {"runs": ["runs/a", "runs/b"], "out": "cmp"},
                "envs": {"all": True}}[command]
    assert expected.items() <= data.items()


def test_print_config_still_checks_the_values(capsys):
    assert main(["pipeline", "--agent.total_timesteps", "-5", "--print_config"]) == 2
    assert "total_timesteps" in capsys.readouterr().err


@pytest.mark.parametrize("command", LONG_JOBS)
def test_every_long_job_takes_no_progress(command):
    _, parser = build_command_parser(command)
    entry = next(a for a in parser._actions if "--no-progress" in a.option_strings)
    assert entry.dest == "no_progress" and entry.help.startswith("hide")
    required = {"collect": ["--out", "d"], "pretrain": ["--data", "d", "--out", "o"], "train": ["--out", "o"],
                "evaluate": ["--agent", "a"], "pipeline": []}[command]
    assert parser.parse_args([*required, "--no-progress"]).no_progress is True
    assert parser.parse_args(required).no_progress is False


@pytest.mark.parametrize("command", ("collect", "pretrain"))
def test_quiet_is_kept_as_the_old_name_of_no_progress(command):
    _, parser = build_command_parser(command)
    required = {"collect": ["--out", "d"], "pretrain": ["--data", "d", "--out", "o"]}[command]
    assert parser.parse_args([*required, "--quiet"]).no_progress is True


def test_pretrain_no_progress_hides_the_progress_lines(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["collect", "--env", "gmc_rl/PendulumSound-v0", "--steps", "40", "--n-envs", "1", "--out", str(data),
                 "--no-progress"]) == 0
    assert "%" not in capsys.readouterr().err
    small = ["--epochs", "1", "--batch-size", "16", "--latent-dim", "4", "--common-dim", "8", "--head-hidden", "8",
             "--conv-channels", "4", "--mlp-hidden", "8", "--reference-latents", "0"]
    errors = {}
    for flags in ([], ["--no-progress"]):
        out = tmp_path / f"gmc{len(flags)}"
        assert main(["pretrain", "--data", str(data), "--out", str(out), *small, *flags]) == 0
        errors[tuple(flags)] = capsys.readouterr().err
    # outside a terminal progress is a plain line at the end (gmc_rl.progress); --no-progress leaves it out
    assert "pretrain epoch 1/1: 100%" in errors[()], errors[()]
    assert "epoch" not in errors[("--no-progress",)] and "%" not in errors[("--no-progress",)]
