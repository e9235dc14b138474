"""What the tests of the two product-of-experts baselines (the MVAE and MUSE) check alike.

Both are trained on the same small PendulumSound dataset with the same small encoders, encode a modality subset
or a per-observation availability mask, keep safetensors + JSON checkpoints, resume pretraining under the rules of
every pretraining run and become the observation of an agent; the checks below hold for either, and each test
module adds what is particular to its method.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.config import ExperimentConfig, from_dict
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError

ENV = "gmc_rl/PendulumSound-v0"
SPACE = spaces.Dict({
    "image": spaces.Box(0, 255, (2, 20, 20), np.uint8),
    "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32),
})
SMALL_MODEL = {"latent_dim": 4, "common_dim": 16, "head_hidden": 16, "conv_channels": [4, 8], "mlp_hidden": [16]}


def batch(space: spaces.Dict = SPACE, n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` seeded samples of every modality of ``space``, stacked."""
    space.seed(seed)
    return {name: np.stack([space[name].sample() for _ in range(n)]) for name in space}


def experiment(epochs: int) -> ExperimentConfig:
    """A tiny PendulumSound experiment: 300 collected steps, ``epochs`` of pretraining, 150 SAC steps."""
    return from_dict(ExperimentConfig, {
        "env_id": ENV,
        "collect": {"steps": 300, "n_envs": 2, "val_fraction": 0.2},
        "pretrain": {"epochs": epochs, "batch_size": 64, "checkpoint_every": 1, "device": "cpu", "model": SMALL_MODEL},
        "agent": {"algo": "sac", "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": {"learning_starts": 100, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}},
    })


def check_masked_encoding(model: Any, obs: dict[str, np.ndarray]) -> None:
    """A per-observation mask encodes as the modality list does, row by row, ignoring the values of absent
    modalities; a row with no modality and an unknown name are refused. ``obs``: 6 observations of :data:`SPACE`."""
    sound_only = model.encode(obs, ["sound"])
    zeroed = dict(obs, image=np.zeros_like(obs["image"]))
    torch.testing.assert_close(model.encode(zeroed, mask=np.tile([0, 1], (6, 1))), sound_only)
    mask = np.array([[1, 1], [0, 1], [1, 0], [1, 1], [0, 1], [1, 0]])  # mixed availability, one pass
    mixed = model.encode(obs, mask=mask)
    torch.testing.assert_close(mixed[1], sound_only[1])
    torch.testing.assert_close(mixed[2], model.encode(obs, ["image"])[2])
    torch.testing.assert_close(mixed[0], model.encode(obs)[0])
    with pytest.raises(ModalityError, match="every modality missing"):
        model.encode(obs, mask=np.zeros((6, 2)))
    with pytest.raises(ModalityError, match="unknown modality 'sond'"):
        model.encode(obs, ["sond"])


def save_and_load(save: Callable[..., Any], load: Callable[[Path], Any], model: Any, directory: Path) -> Any:
    """Save ``model`` into ``directory`` and load it back: frozen, with the provenance it was saved with."""
    save(model, directory, {"note": "test"})
    loaded = load(directory)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.provenance == {"note": "test"}
    return loaded


def check_damage_is_refused(load: Callable[[Path], Any], directory: Path, other_format: str, not_this: str) -> None:
    """The checkpoint in ``directory`` with altered weights (restored afterwards), its parent (no checkpoint) and a
    checkpoint of ``other_format`` are refused; ``not_this`` is the message for the last ("is not an MVAE
    checkpoint")."""
    weights = directory / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load(directory)
    weights.write_bytes(good)
    with pytest.raises(CheckpointError, match="missing"):
        load(directory.parent)
    other = directory.parent / "g"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"format": other_format}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=not_this):
        load(other)


def check_pretraining_output(run_dir: Path, load: Callable[[Path], Any], epochs: int) -> tuple[Any, dict]:
    """A finished pretraining run: its files, ``epochs`` finite history records, and a loadable best model of the
    experiment's modalities and latent size, standardising the vector modality. Returns the model and the history."""
    for name in ("config.json", "model.safetensors", "history.json", "last/trainer_state.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").iterdir())
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history["history"]] == list(range(1, epochs + 1))
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in history["history"])
    model = load(run_dir)
    assert model.latent_dim == 4 and model.modalities == ["image", "sound"]
    assert model.provenance["env_id"] == ENV and model.provenance["epoch"] == history["best_epoch"]
    assert set(model.normalization) == {"sound"}, "vector modalities are standardised with the dataset statistics"
    return model, history


def check_resume_rules(pretrain: Callable[..., Path], dataset: Path, run_dir: Path, tmp_path: Path,
                       epochs: int) -> Path:
    """The rules of a finished run of ``epochs`` epochs: no second run without resume; a resume with as many
    epochs returns it untouched, one with more continues its epochs; another config or env is refused. Works on a
    copy, which it returns."""
    with pytest.raises(ConfigError, match="already holds a pretraining run with these settings; pass --resume"):
        pretrain(experiment(epochs), dataset, run_dir, progress=False)
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    before = (copy / "model.safetensors").read_bytes()
    assert pretrain(experiment(epochs), dataset, copy, resume=True, progress=False) == copy
    assert (copy / "model.safetensors").read_bytes() == before, "a finished run is returned as it is"
    pretrain(experiment(epochs + 1), dataset, copy, resume=True, progress=False)
    history = json.loads((copy / "history.json").read_text())["history"]
    assert [r["epoch"] for r in history] == list(range(1, epochs + 2)), "a resumed run continues its epochs"
    other = from_dict(ExperimentConfig, {"env_id": ENV, "pretrain": {"epochs": epochs + 1, "lr": 0.01,
                                                                     "model": SMALL_MODEL}})
    with pytest.raises(ConfigError, match="made with a different config or dataset"):
        pretrain(other, dataset, copy, resume=True, progress=False)
    wrong_env = from_dict(ExperimentConfig, {"env_id": "gmc_rl/SensorReach-v0"})
    with pytest.raises(ConfigError, match="collected on 'gmc_rl/PendulumSound-v0'"):
        pretrain(wrong_env, dataset, tmp_path / "x", progress=False)
    return copy


def open_image_only_envs(method: str, model: Any, vec_type: type) -> tuple[Any, Any]:
    """The method's latent VecEnv on PendulumSound without its sound, and the same envs seen raw, after checking
    that the first latents are the model's encoding of the image alone. The caller closes both."""
    venv = make_method_vec_env(method, ENV, {}, "image", n_envs=2, seed=0, encoder=model)
    raw = make_method_vec_env("raw", ENV, {}, "image", n_envs=2, seed=0)  # the same envs, seen raw
    assert isinstance(venv, vec_type) and venv.observation_space.shape == (4,)
    latents, obs = venv.reset(), raw.reset()
    assert latents.shape == (2, 4) and latents.dtype == np.float32
    np.testing.assert_allclose(latents, model.encode(obs, ["image"]).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose, latents, model.encode(obs).numpy())
    return venv, raw


def check_agent(config: ExperimentConfig, method: str, run_dir: Path, out: Path) -> None:
    """An agent of ``method`` trains on the encoder in ``run_dir``, keeps a copy of it, reloads, and acts on finite
    latents with every modality, with one missing, and with random dropout."""
    out = train_agent(config, method, 0, out, encoder_dir=run_dir, progress_bar=False)
    assert (out / "encoder" / "model.safetensors").is_file() and (out / "encoder" / "config.json").is_file()
    agent = load_agent(out)
    assert agent.method == method and agent.encoder.latent_dim == 4
    for condition in ("complete", "sound", "dropout:0.5"):
        venv = agent.make_vec_env(condition, n_envs=2, seed=1)
        obs = venv.reset()
        assert obs.shape == (2, 4) and np.isfinite(obs).all()
        assert agent.predict(obs).shape == (2, 1)
        venv.close()


def retagged(run_dir: Path, directory: Path, fmt: str) -> Path:
    """A copy of the checkpoint in ``run_dir`` at ``directory`` whose config names the format ``fmt`` (what
    passing the wrong directory looks like)."""
    shutil.copytree(run_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    config["format"] = fmt
    (directory / "config.json").write_text(json.dumps(config))
    return directory
