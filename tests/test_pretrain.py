"""Pretraining: loss goes down, checkpoint + TensorBoard files, resume equivalence, protected output dirs."""

import json

import numpy as np
import pytest
import torch
from helpers import TINY_ID, config_for
from safetensors.torch import load_file

from gmc_rl import load_gmc
from gmc_rl.checkpoint import check_space_matches, load_training_state
from gmc_rl.collect import collect
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.pretrain import pretrain


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return collect(config_for(TINY_ID, 120), tmp_path_factory.mktemp("tiny") / "data", progress=False)


def test_short_pendulum_run_learns_and_writes_everything(tmp_path):
    import gymnasium as gym

    import gmc_rl  # noqa: F401  (registers the gmc_rl ids)

    config = config_for("gmc_rl/PendulumSound-v0", 400, epochs=3)
    data = collect(config, tmp_path / "data", progress=False)
    out = pretrain(config, data, tmp_path / "gmc", progress=False)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss/train_total"] < history[0]["loss/train_total"]
    assert history[-1]["loss/val_total"] < history[0]["loss/val_total"]
    for key in ("loss/train_image", "loss/train_sound", "loss/val_sound", "align/retrieval@1_image",
                "align/pos_cos_sound", "align/neg_cos_image"):
        assert key in history[0]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "latents_pca.png").stat().st_size > 1000
    alignment = json.loads((out / "alignment.json").read_text())
    assert set(alignment["retrieval_at_1"]) == {"image", "sound"}
    probe = json.loads((out / "state_probe.json").read_text())  # PendulumSound records its true state
    assert probe["variables"] == ["cos_theta", "sin_theta", "theta_dot"]
    n_val = json.loads((data / "metadata.json").read_text())["n_val"]
    assert set(probe["knn_r2"]) == {"complete", "image", "sound"} and probe["rows"] == n_val
    assert all(len(r2) == 3 and all(r <= 1.0 for r in r2) for r2 in probe["knn_r2"].values())
    model = load_gmc(out)
    env = gym.make("gmc_rl/PendulumSound-v0")
    check_space_matches(model, env.observation_space)
    obs, _ = env.reset(seed=0)
    batch = {k: v[None] for k, v in obs.items()}
    z = model.encode(batch)
    assert z.shape == (1, 8) and torch.allclose(z.norm(), torch.tensor(1.0), atol=1e-5)
    assert model.encode(batch, ["sound"]).shape == (1, 8)
    assert model.provenance["env_id"] == "gmc_rl/PendulumSound-v0"
    best_epoch = min(history, key=lambda h: h["loss/val_total"])["epoch"]
    assert model.provenance["epoch"] == best_epoch
    # a model trained on PendulumSound does not fit another env's spaces
    with pytest.raises(CheckpointError, match="modality"):
        check_space_matches(model, gym.make(TINY_ID).observation_space)


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tiny_data, tmp_path):
    full = pretrain(config_for(TINY_ID, 120, epochs=3), tiny_data, tmp_path / "full", progress=False)
    part = pretrain(config_for(TINY_ID, 120, epochs=2), tiny_data, tmp_path / "part", progress=False)
    assert load_training_state(part / "last")["epoch"] == 2
    resumed = pretrain(config_for(TINY_ID, 120, epochs=3), tiny_data, part, resume=True, progress=False)
    assert load_training_state(resumed / "last")["epoch"] == 3
    for name in ("last/model.safetensors", "model.safetensors"):
        a, b = load_file(full / name), load_file(resumed / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    history = json.loads((resumed / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    reference = json.loads((full / "history.json").read_text())
    assert np.allclose([h["loss/val_total"] for h in history], [h["loss/val_total"] for h in reference])
    # resuming a finished run changes nothing
    pretrain(config_for(TINY_ID, 120, epochs=3), tiny_data, part, resume=True, progress=False)
    assert len(json.loads((part / "history.json").read_text())) == 3


def test_output_dir_with_another_config_is_not_overwritten(tiny_data, tmp_path):
    out = pretrain(config_for(TINY_ID, 120, epochs=1), tiny_data, tmp_path / "run", progress=False)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"different config.*pretrain.lr: 0.003 -> 0.01"):
        pretrain(config_for(TINY_ID, 120, epochs=1, lr=1e-2), tiny_data, out, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        pretrain(config_for(TINY_ID, 120, epochs=1, lr=1e-2), tiny_data, out, resume=True, progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        pretrain(config_for(TINY_ID, 120), tiny_data, tmp_path / "other", progress=False)
    with pytest.raises(ConfigError, match="collected on 'test_core/TinyDict-v0'"):
        pretrain(config_for("gmc_rl/PendulumSound-v0", 120), tiny_data, tmp_path / "x", progress=False)


def test_joints_as_negatives_ablation_trains(tiny_data, tmp_path):
    out = pretrain(config_for(TINY_ID, 120, epochs=2, loss="joints_as_negatives"), tiny_data, tmp_path / "jan",
                   progress=False)
    assert load_gmc(out).provenance["loss"] == "joints_as_negatives"


def test_diverging_loss_gives_a_clear_error(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="lower pretrain.lr"):
        pretrain(config_for(TINY_ID, 120, epochs=1, lr=1e30, temperature=1e-30), tiny_data, tmp_path / "nan",
                 progress=False)


def test_resuming_a_finished_run_whose_resume_point_was_deleted_keeps_its_model(tiny_data, tmp_path):
    """Before, "has no checkpoint yet; starting from epoch 0": a finished model whose last/ was deleted (to save
    space) was replaced by a run from scratch."""
    import shutil

    out = pretrain(config_for(TINY_ID, 120, epochs=1), tiny_data, tmp_path / "run", progress=False)
    shutil.rmtree(out / "last")
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with pytest.raises(ConfigError, match=r"finished pretraining run whose resume point .*trainer_state.pt is gone"
                                          r".* it is kept and nothing is trained") as caught:
        pretrain(config_for(TINY_ID, 120, epochs=2), tiny_data, out, resume=True, progress=False)
    assert str(out) in str(caught.value) and "another --out" in str(caught.value)
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
    # An unfinished run stopped before its first last/ holds an early epoch only: started over, as before.
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "status": "running"}))
    pretrain(config_for(TINY_ID, 120, epochs=2), tiny_data, out, resume=True, progress=False)
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
