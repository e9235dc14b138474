"""agents with the GMC method: a tiny GMC checkpoint made by the real collect + pretrain code, a SAC agent on its
latents, and the agent's envs under sensor conditions (the latent must be the GMC encoding of the present modalities).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import tiny_pendulum_experiment

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.checkpoint import load_gmc
from gmc_rl.collect import collect
from gmc_rl.config import from_dict
from gmc_rl.errors import CheckpointError
from gmc_rl.pretrain import pretrain

SMALL_MODEL = {"latent_dim": 4, "common_dim": 16, "head_hidden": 16, "conv_channels": [4, 8], "mlp_hidden": [16]}


experiment = tiny_pendulum_experiment


@pytest.fixture(scope="module")
def gmc_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gmc")
    data = collect(experiment(), root / "data", progress=False)
    return pretrain(experiment(), data, root / "gmc", progress=False)


@pytest.fixture(scope="module")
def gmc_agent(gmc_dir, tmp_path_factory):
    return train_agent(experiment(), "gmc", 0, tmp_path_factory.mktemp("agents") / "gmc", encoder_dir=gmc_dir,
                       progress_bar=False)


def test_agent_dir_holds_a_copy_of_the_encoder(gmc_agent, gmc_dir):
    encoder = gmc_agent / "encoder"
    assert (encoder / "model.safetensors").read_bytes() == (gmc_dir / "model.safetensors").read_bytes()
    assert (encoder / "config.json").is_file() and not (encoder / "last").exists()
    info = json.loads((gmc_agent / "agent.json").read_text())
    assert info["method"] == "gmc" and info["encoder"] == "encoder" and info["status"] == "complete"
    assert info["observation_space"].startswith("Box(-1.0, 1.0, (4,)")


@pytest.mark.parametrize("condition, present", [
    ("complete", None), ("image", ["image"]), ("sound", ["sound"]), ("dropout:0.5", "mask"),
])
def test_envs_under_conditions_observe_the_gmc_latent_of_present_modalities(gmc_agent, condition, present):
    agent = load_agent(gmc_agent)
    venv = agent.make_vec_env(condition, n_envs=3, seed=2)
    raw = venv.venv  # the Dict observations the latent wrapper encoded (mask included)
    latents = venv.reset()
    assert latents.shape == (3, 4) and np.all(np.abs(latents) <= 1.0)
    for _ in range(4):
        obs = {key: value.copy() for key, value in raw.buf_obs.items()}
        if present == "mask":
            for row in range(3):
                names = [m for m, flag in zip(agent.modalities, obs["available"][row]) if flag]
                single = {k: v[row:row + 1] for k, v in obs.items()}
                expected = agent.encoder.encode(single, None if len(names) == 2 else names).numpy()[0]
                np.testing.assert_allclose(latents[row], expected, rtol=1e-5, atol=1e-6)
        else:
            expected = agent.encoder.encode(obs, present).numpy()
            np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-6)
        latents, rewards, _, _ = venv.step(agent.predict(latents))
        assert np.all(np.isfinite(rewards))
    venv.close()


def test_agent_is_self_contained(gmc_agent, gmc_dir, tmp_path):
    """The agent dir alone suffices: it still loads after the original checkpoint is gone."""
    moved = tmp_path / "gmc_copy"
    shutil.copytree(gmc_agent, moved)
    agent = load_agent(moved)
    assert agent.encoder.checkpoint_path == moved / "encoder"
    original = load_gmc(gmc_dir)
    obs = {"image": np.zeros((1, 2, 60, 60), np.uint8), "sound": np.zeros((1, 2, 3, 2), np.float32)}
    np.testing.assert_array_equal(agent.encoder.encode(obs).numpy(), original.encode(obs).numpy())


def test_resume_with_another_encoder_is_refused(gmc_agent, tmp_path, gmc_dir):
    other = tmp_path / "other"
    shutil.copytree(gmc_dir, other)
    weights = other / "model.safetensors"
    model = load_gmc(gmc_dir)
    from gmc_rl.checkpoint import save_gmc

    for parameter in model.parameters():
        parameter.data.add_(0.01)
    save_gmc(model, other, provenance={})
    assert weights.read_bytes() != (gmc_dir / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="different encoder"):
        train_agent(experiment(total=300), "gmc", 0, gmc_agent, encoder_dir=other, resume=True, progress_bar=False)


def test_gmc_checkpoint_of_another_env_is_refused(tmp_path):
    from gymnasium import spaces

    from gmc_rl.checkpoint import save_gmc
    from gmc_rl.config import ModelConfig
    from gmc_rl.model import GMCModel

    space = spaces.Dict({"image": spaces.Box(0, 255, (2, 32, 32), np.uint8),
                         "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    save_gmc(GMCModel.from_space(space, from_dict(ModelConfig, SMALL_MODEL)), tmp_path / "gmc", provenance={})
    with pytest.raises(CheckpointError, match="modality 'image': expected shape \\(2, 32, 32\\), got \\(2, 60, 60\\)"):
        train_agent(experiment(), "gmc", 0, tmp_path / "agent", encoder_dir=tmp_path / "gmc", progress_bar=False)
    assert not (tmp_path / "agent").exists()


def _another_checkpoint(gmc_dir, target):
    """A valid GMC checkpoint of the same architecture as ``gmc_dir`` with other weights (as another seed gives)."""
    from gmc_rl.checkpoint import save_gmc

    model = load_gmc(gmc_dir)
    for parameter in model.parameters():
        parameter.data.add_(0.01)
    save_gmc(model, target, provenance={})
    return target


def test_an_encoder_replaced_by_another_checkpoint_is_refused(gmc_agent, gmc_dir, tmp_path, capsys):
    """Before, an agent's encoder/ replaced by another GMC checkpoint of the same architecture was read silently:
    `gmc-rl evaluate` ran the policy on latents it never saw."""
    from gmc_rl.agents.agent_dir import ENCODER_DIGESTS
    from gmc_rl.cli import main
    from gmc_rl.data import file_sha256

    agent_dir = tmp_path / "agent"
    shutil.copytree(gmc_agent, agent_dir)
    info = json.loads((agent_dir / "agent.json").read_text())
    assert info[ENCODER_DIGESTS] == {name: file_sha256(gmc_dir / name) for name in ("config.json",
                                                                                     "model.safetensors")}
    shutil.rmtree(agent_dir / "encoder")
    shutil.rmtree(agent_dir / "action_fit", ignore_errors=True)
    _another_checkpoint(gmc_dir, agent_dir / "encoder")
    with pytest.raises(CheckpointError, match=r"is not the encoder the agent in .* was trained with") as caught:
        load_agent(agent_dir)
    assert str(agent_dir / "encoder" / "model.safetensors") in str(caught.value)
    assert main(["evaluate", "--agent", str(agent_dir), "--conditions", "complete", "--episodes", "1",
                 "--out", str(tmp_path / "eval"), "--no-progress"]) == 2
    assert "is not the encoder the agent in" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="is not the encoder the agent in"):  # nor trained on further
        train_agent(experiment(total=400), "gmc", 0, agent_dir, resume=True, progress_bar=False)
    # An agent written before the digests were recorded loads as before.
    shutil.rmtree(agent_dir / "encoder")
    shutil.copytree(gmc_agent / "encoder", agent_dir / "encoder")
    info.pop(ENCODER_DIGESTS)
    (agent_dir / "agent.json").write_text(json.dumps(info))
    assert load_agent(agent_dir).encoder.checkpoint_path == agent_dir / "encoder"
