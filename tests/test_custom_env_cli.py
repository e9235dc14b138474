"""docs/custom_envs.md's example env driven through the command line alone, one fresh process per command.

The commands are the ``bash`` block of the doc's "From the command line" section, run as written with flags
appended that shrink every stage to seconds (a flag given twice takes its last value). The env module is the
doc's own code, written into ``my_package/`` of the working directory, which is not on ``sys.path``: the commands
must find it there themselves (a console script does not search the current directory). Each command runs the
installed ``gmc-rl`` console script, so nothing of this process (imports, Gymnasium registry) leaks into it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CUSTOM_ENVS_DOC, write_custom_env_package

MODULE = "my_package.sensors"
ENV = f"{MODULE}:my_project/MountainCarSensors-v0"
PPO_TINY = '{"n_steps": 64, "batch_size": 32}'
TINY = {  # appended to the doc's command that starts with the key
    "collect": ["--steps", "400", "--n-envs", "2", "--no-progress"],
    "pretrain": ["--epochs", "1", "--no-progress"],
    "align --model": [],
    "train --import my_package.sensors --gmc": ["--total-timesteps", "128", "--hyperparams", PPO_TINY,
                                                "--eval-freq", "0", "--checkpoint-freq", "64", "--no-progress"],
    "evaluate": ["--episodes", "1", "--n-envs", "1", "--no-progress"],
    "align --import my_package.sensors --agent": ["--episodes", "1", "--horizon", "20"],
    "train --import my_package.sensors --out runs/mc/ppo --resume": ["--total-timesteps", "192", "--no-progress"],
    "pipeline": ["--jobs", "1", "--no-progress", "--collect.steps", "400", "--collect.n_envs", "2",
                 "--pretrain.epochs", "1", "--pretrain.reference_latents", "0", "--agent.total_timesteps", "64",
                 "--agent.hyperparams", PPO_TINY, "--agent.eval_freq", "0", "--agent.checkpoint_freq", "0",
                 "--evaluate.episodes", "1", "--evaluate.n_envs", "1", "--evaluate.diagnostic_episodes", "0"],
    "report": [],
}


def doc_commands() -> list[list[str]]:
    """The ``gmc-rl`` commands of the doc's "From the command line" section, split into words."""
    section = CUSTOM_ENVS_DOC.read_text().split("## From the command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [shlex.split(line) for line in block.group(1).splitlines() if line.startswith("gmc-rl ")]


def gmc_rl_command() -> list[str]:
    """The installed console script (the way a user runs it), else the same entry point in isolated mode (which
    does not put the current directory on sys.path either)."""
    script = Path(sys.executable).with_name("gmc-rl")
    if script.is_file():
        return [str(script)]
    found = shutil.which("gmc-rl")
    if found:
        return [found]
    return [sys.executable, "-I", "-c", "import sys; from gmc_rl.cli import main; sys.exit(main())"]


def run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([*gmc_rl_command(), *words], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def tiny_flags(words: list[str]) -> list[str]:
    line = " ".join(words)
    matches = [key for key in TINY if line.startswith(key)]
    assert len(matches) == 1, f"no single size override for {line!r}: {matches}"
    return TINY[matches[0]]


def test_the_docs_commands_cover_every_step():
    commands = [" ".join(words[1:3]) for words in doc_commands()]
    for step in ("collect", "pretrain", "align --model", "train", "evaluate", "align --import", "report",
                 "pipeline"):
        assert any(command.startswith(step) for command in commands), step
    assert any("--resume" in words for words in doc_commands())
    for words in doc_commands():  # a command that reads an agent or checkpoint of the env names its module
        if words[1] in ("evaluate", "train") or "--agent" in words:
            assert words[2:4] == ["--import", MODULE], words


@pytest.mark.slow  # 80 s on the shared 2-core machine: ten fresh processes, each training or evaluating a little
def test_docs_example_runs_through_the_cli_alone(tmp_path):
    write_custom_env_package(tmp_path)
    for words in doc_commands():
        if words[1:3] == ["evaluate", "--import"] or (words[1:3] == ["train", "--import"] and "--gmc" in words):
            # without --import the command stops at once, naming the flag and the module
            result = run([*words[1:2], *words[4:], *tiny_flags(words[1:])], tmp_path)
            assert result.returncode == 2, result.stdout
            assert f"name it on the command line with --import {MODULE}" in result.stderr
        result = run([*words[1:], *tiny_flags(words[1:])], tmp_path)
        assert result.returncode == 0, f"{shlex.join(words)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        if words[1:3] == ["train", "--import"] and "--gmc" in words:
            # the checkpoint gave the env: no --env on the command line
            assert f"gmc-rl evaluate --import {MODULE} --agent runs/mc/ppo" in result.stdout
    runs = tmp_path / "runs" / "mc"
    agent = json.loads((runs / "ppo" / "agent.json").read_text())
    assert agent["env_id"] == ENV and agent["method"] == "gmc" and agent["algo"] == "ppo"
    assert agent["num_timesteps"] == 192  # resumed from 128 and continued, not restarted
    results = json.loads((runs / "ppo" / "robustness" / "results.json").read_text())
    assert results["env_id"] == ENV and results["conditions"] == ["complete", "image", "sound"]
    report = json.loads((runs / "report" / "results.json").read_text())
    assert report["env_id"] == ENV and report["methods"] == ["gmc", "state"]
    # the doc's check of a weak controller, on the pipeline's agents, with a tiny budget
    section = CUSTOM_ENVS_DOC.read_text().split("## When GMC's controller is weak on your env", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    probe = shlex.split(block.group(1).replace("\\\n", " "))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, *probe[1:], "--rounds", "1", "--steps", "100", "--episodes", "1",
                             "--hidden", "8"], cwd=tmp_path, env={**env, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imitation returns: complete" in result.stdout
