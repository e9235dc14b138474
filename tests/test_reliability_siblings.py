"""Siblings of catalogued bad inputs, found by a red-team pass (docs/reliability.md rows 92-99): each was a raw
traceback, a silently dropped input or results written into another artifact's folder."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent
from gmc_rl.agents.loading import check_policy_observation
from gmc_rl.agents.observations import make_base_env
from gmc_rl.cli import main
from gmc_rl.commands.evaluate import _refuse_copies
from gmc_rl.config import ModelConfig
from gmc_rl.dataset_sources import load_dataset
from gmc_rl.env_ids import check_env_id, import_user_modules
from gmc_rl.errors import CheckpointError, ConfigError, DatasetError, ModalityError
from gmc_rl.model import GMCModel
from gmc_rl.pipeline import RUN_MARKER, check_results_out

PENDULUM = "gmc_rl/PendulumSound-v0"


@pytest.mark.parametrize("env_id", [":gmc_rl/PendulumSound-v0", " :x", "my pkg:Env-v0", "1mod:Env-v0", "a..b:Env-v0"])
def test_an_env_id_whose_module_part_is_not_a_module_name_is_refused(env_id):
    with pytest.raises(ConfigError, match="the part before ':' must be a module name"):
        check_env_id(env_id, allow_import=True)


def test_an_env_that_needs_keywords_it_was_not_given_is_a_config_error():
    """The latent env id without its env_id and checkpoint: a raw TypeError from Gymnasium's creator before."""
    with pytest.raises(ConfigError, match=r"cannot make 'gmc_rl/GMCLatent-v0' with env_kwargs \{\}: .*missing 2"):
        make_base_env("gmc_rl/GMCLatent-v0", {})


@pytest.mark.parametrize("source, error", [("raise RuntimeError('boom on import')\n", "RuntimeError: boom on import"),
                                           ("def broken(:\n", "SyntaxError"),
                                           ("import no_such_module_anywhere\n", "No module named")])
def test_a_user_module_that_fails_while_imported_is_one_config_error(tmp_path, monkeypatch, source, error):
    module = f"failing_{abs(hash(source))}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=f"--import {module}: .*{error}"):
        import_user_modules([module])


def test_config_given_twice_is_refused_instead_of_the_first_file_being_dropped(tmp_path, capsys):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("name: first\ncollect: {n_envs: 2}\n")
    second.write_text("collect: {steps: 300}\n")
    for command in (["collect", "--out", str(tmp_path / "d")], ["pipeline", "--print_config"]):
        assert main([command[0], "--config", str(first), f"--config={second}", *command[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"--config is given 2 times ({first}, {second}); give it once") and "\n" not in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argument", [None, 3, 2.5, True, b"agent", ["agent"]])
def test_loaders_given_something_that_is_not_a_path_name_it(argument):
    with pytest.raises(CheckpointError, match="an agent must be given as a path to its directory"):
        load_agent(argument)
    with pytest.raises(DatasetError, match="a dataset must be given as a path to its directory"):
        load_dataset(argument)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GMCModel.from_space(gym.make(PENDULUM).observation_space, ModelConfig(latent_dim=4, common_dim=8,
                                                                                head_hidden=8, conv_channels=[4],
                                                                                mlp_hidden=[8])).eval()


def _batch(sound):
    return {"image": np.zeros((2, 2, 60, 60), np.uint8), "sound": sound}


SOUND = np.full((2, 2, 3, 2), 0.5, np.float32)


@pytest.mark.parametrize("sound, message", [
    (SOUND.astype(np.longdouble), "expected a float dtype"),
    (SOUND.astype(">f4"), "other byte order"),
    (torch.empty(2, 2, 3, 2, device="meta"), "meta device"),
], ids=["longdouble", "big-endian", "meta"])
def test_arrays_torch_cannot_read_as_they_are_are_refused_by_name(model, sound, message):
    with pytest.raises(ModalityError, match=f"modality 'sound': .*{message}"):
        model.encode(_batch(sound))
    assert model.encode(_batch(SOUND.astype(np.float16))).shape == (2, 4)  # float16 is read


@pytest.mark.parametrize("observation, message", [
    (np.zeros(4, np.longdouble), "dtype torch takes"),
    (np.zeros(4, ">f4"), "other byte order"),
    (torch.empty(4, device="meta"), "meta device"),
], ids=["longdouble", "big-endian", "meta"])
def test_policy_observations_torch_cannot_read_are_refused(observation, message):
    with pytest.raises(ModalityError, match=message):
        check_policy_observation(observation, spaces.Box(-1, 1, (4,), np.float32))
    check_policy_observation(np.zeros(4, np.float32), spaces.Box(-1, 1, (4,), np.float32))


@pytest.mark.parametrize("marker, kind", [("agent.json", "an agent"), ("model.safetensors", "a checkpoint"),
                                          ("metadata.json", "a dataset"), (RUN_MARKER, "a pipeline run")])
def test_results_are_never_written_into_another_artifacts_folder(tmp_path, marker, kind):
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / marker).write_text("{}")
    for command in ("report", "evaluate"):
        with pytest.raises(ConfigError, match=f"is {kind} directory"):
            check_results_out(folder, command)
    check_results_out(folder / "robustness", "evaluate")  # a folder of their own inside it (evaluate's default)
    with pytest.raises(ConfigError, match="--out is empty"):
        check_results_out("", "report")


def test_two_copies_of_one_agent_are_not_pooled(tmp_path):
    """``cp -r agent copy; gmc-rl evaluate --agent agent copy`` counted one agent twice (n=2, +-0)."""
    for name, policy in (("agent", b"weights"), ("copy", b"weights"), ("other", b"other weights")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "agent.zip").write_bytes(policy)
    with pytest.raises(ConfigError, match="agent and .*copy hold the same trained agent"):
        _refuse_copies([tmp_path / "agent", tmp_path / "other", tmp_path / "copy"])
    _refuse_copies([tmp_path / "agent", tmp_path / "other"])
