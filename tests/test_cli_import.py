"""``--import MODULE`` on every command, and ``gmc-rl train`` taking its env from the encoder checkpoint.

The whole route of a user's ``module:id`` env through fresh processes is tests/test_custom_env_cli.py; these are the
parts that run in this process.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from gmc_rl.checkpoint import save_gmc
from gmc_rl.cli import COMMANDS, build_command_parser, import_given_modules, main
from gmc_rl.commands import train
from gmc_rl.config import ModelConfig
from gmc_rl.env_ids import import_user_modules
from gmc_rl.errors import ConfigError
from gmc_rl.model import GMCModel

CARTPOLE = "gmc_rl/CartPoleSensors-v0"
SMALL = ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])


def checkpoint(directory: Path, env_id: str, env_kwargs: dict | None = None) -> Path:
    """An untrained GMC checkpoint of CartPoleSensors whose provenance names ``env_id``."""
    import gmc_rl  # noqa: F401  (registers the gmc_rl ids)

    torch.manual_seed(0)
    model = GMCModel.from_space(gym.make(CARTPOLE).observation_space, SMALL)
    return save_gmc(model, directory, {"env_id": env_id, "env_kwargs": env_kwargs or {}})


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_the_import_flag(command):
    _, parser = build_command_parser(command)
    assert "--import" in parser.format_help()
    assert any("--import" in action.option_strings for action in parser._actions)


def test_train_takes_the_env_from_the_checkpoint_unless_one_is_given(tmp_path):
    ckpt = checkpoint(tmp_path / "gmc", CARTPOLE, {"image_height": 32})
    config = train.base_config(["--gmc", str(ckpt), "--out", str(tmp_path / "a")])
    assert (config.env_id, config.env_kwargs) == (CARTPOLE, {"image_height": 32})
    config = train.base_config(["--encoder", str(ckpt), "--out", str(tmp_path / "a")])
    assert config.env_id == CARTPOLE
    # an id on the command line (or a config file) wins, and a directory that is no checkpoint gives the defaults
    assert train.base_config(["--gmc", str(ckpt), "--env", "gmc_rl/PendulumSound-v0", "--out", "a"]).env_id == (
        "gmc_rl/PendulumSound-v0")
    assert train.base_config(["--gmc", str(tmp_path / "none"), "--out", "a"]).env_id == "gmc_rl/PendulumSound-v0"


def test_train_refuses_a_checkpoint_env_whose_module_the_user_did_not_import(tmp_path):
    ckpt = checkpoint(tmp_path / "gmc", f"gmc_rl_never_imported_mod:{CARTPOLE}")
    with pytest.raises(ConfigError, match="name it on the command line with --import gmc_rl_never_imported_mod"):
        train.base_config(["--gmc", str(ckpt), "--out", str(tmp_path / "a")])
    assert "gmc_rl_never_imported_mod" not in sys.modules
    # a module the user imported (here one that is imported already) is accepted
    ckpt = checkpoint(tmp_path / "gmc2", f"gmc_rl.envs.registration:{CARTPOLE}")
    assert train.base_config(["--gmc", str(ckpt), "--out", "a"]).env_id == f"gmc_rl.envs.registration:{CARTPOLE}"


def test_train_takes_the_env_of_the_pretrain_dataset(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["collect", "--env", CARTPOLE, "--steps", "20", "--n-envs", "1", "--out", str(data),
                 "--env-kwargs", '{"image_height": 32}', "--no-progress"]) == 0
    config = train.base_config(["--gmc", str(tmp_path / "gmc"), "--pretrain-data", str(data), "--out", "a"])
    assert (config.env_id, config.env_kwargs) == (CARTPOLE, {"image_height": 32})


@pytest.mark.parametrize(("name", "message"), [
    ("my_package/sensors.py", "is not a module name"),
    ("my_package.sensors:my_project/Env-v0", "give its module: --import my_package.sensors"),
    ("gmc_rl_no_such_module_anywhere", "cannot import module 'gmc_rl_no_such_module_anywhere'"),
])
def test_import_flag_refuses_what_is_not_an_importable_module(name, message, capsys):
    assert main(["envs", "--import", name]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module ``gmc_rl_test_user_env`` in the current directory (not on sys.path) that registers an env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "gmc_rl_test_user_env.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        if "user_test/Cart-v0" not in gym.registry:
            gym.register(id="user_test/Cart-v0", entry_point="gmc_rl.envs.cartpole_sensors:CartPoleSensorsEnv",
                         max_episode_steps=10)
    """))
    yield "gmc_rl_test_user_env"
    sys.modules.pop("gmc_rl_test_user_env", None)
    gym.registry.pop("user_test/Cart-v0", None)


def test_import_finds_a_module_of_the_current_directory_once(user_module):
    assert import_user_modules([user_module, user_module]) == [user_module]
    assert "user_test/Cart-v0" in gym.registry
    assert sys.path[-1] == str(Path.cwd())  # searched after the installed packages


def test_the_module_of_a_config_files_env_id_is_imported(user_module, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(f"env_id: '{user_module}:user_test/Cart-v0'\n")
    assert import_given_modules(["--agent", "x", "--config", str(config)]) == [user_module]
    assert "user_test/Cart-v0" in gym.registry


def test_envs_lists_the_envs_of_the_imported_module(user_module, capsys):
    assert main(["envs", "--import", user_module]) == 0
    out = capsys.readouterr().out
    assert "user_test/Cart-v0: action Discrete(2)" in out and "gmc_rl/PendulumSound-v0" in out


@pytest.mark.parametrize("name", ["gmc_rl.env_ids", "gmc_rl.commands.config_flags"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
