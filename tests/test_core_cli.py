"""gmc-rl collect / pretrain / align from the command line, and the alignment metrics they print."""

import json

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_ID

from gmc_rl.cli import main
from gmc_rl.metrics import batch_alignment, shuffled_batches

SMALL_FLAGS = ["--latent-dim", "4", "--common-dim", "8", "--head-hidden", "8", "--conv-channels", "4",
               "--mlp-hidden", "8", "--batch-size", "16", "--lr", "0.003", "--checkpoint-every", "1"]


def test_collect_pretrain_align_commands(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "gmc"
    assert main(["collect", "--env", TINY_ID, "--steps", "80", "--seed", "3", "--n-envs", "2", "--out", str(data),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "MB on disk" in printed and "train" in printed
    # --env is taken from the dataset when neither --config nor --env is given
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--epochs", "1", "--quiet", *SMALL_FLAGS]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["experiment"]["pretrain"]["model"]["latent_dim"] == 4
    assert run["experiment"]["pretrain"]["batch_size"] == 16
    assert main(["pretrain", "--data", str(data), "--out", str(out), "--epochs", "2", "--resume", "--quiet",
                 *SMALL_FLAGS]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    # --resume alone continues the run with its own settings and dataset (as train --resume does)
    assert main(["pretrain", "--out", str(out), "--epochs", "3", "--resume", "--quiet"]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["experiment"]["pretrain"]["batch_size"] == 16
    capsys.readouterr()
    assert main(["align", "--model", str(out), "--data", str(data), "--batch-size", "8",
                 "--plot", str(tmp_path / "pca.png")]) == 0
    table = capsys.readouterr().out
    for word in ("image", "vec", "retrieval@1", "positive cos", "negative cos"):
        assert word in table
    assert (tmp_path / "pca.png").is_file()
    assert main(["align", "--model", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["retrieval_at_1"]) == {"image", "vec"}
    assert report["state_probe"] is None  # the tiny env reports no info["state"]


def test_command_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["collect", "--env", "gmc_rl/NoSuchEnv-v0", "--steps", "10", "--out", str(tmp_path / "d")]) == 2
    assert "registered gmc_rl ids" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["align", "--model", str(tmp_path / "nothing"), "--data", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    for resume in ([], ["--resume"]):  # no --data, and no run in --out to take it from
        assert main(["pretrain", "--out", str(tmp_path / "o"), *resume]) == 2
        assert "--data is required" in capsys.readouterr().err


def test_batch_alignment_on_known_latents():
    z = F.normalize(torch.randn(16, 6, generator=torch.Generator().manual_seed(0)), dim=1)
    retrieval, positive, negative = batch_alignment(z, z)
    assert retrieval == 1.0 and positive == pytest.approx(1.0)
    expected_negative = float(((z @ z.T).sum() - 16) / (16 * 15))
    assert negative == pytest.approx(expected_negative, abs=1e-6)
    shifted = torch.roll(z, 1, dims=0)
    retrieval, positive, _ = batch_alignment(shifted, z)
    assert retrieval == 0.0 and positive < 0.9


def test_shuffled_batches_are_seeded_and_drop_a_short_tail():
    a = shuffled_batches(50, 16, seed=1)
    assert [len(b) for b in a] == [16, 16, 16]
    assert all(torch.equal(x, y) for x, y in zip(a, shuffled_batches(50, 16, seed=1)))
    assert [len(b) for b in shuffled_batches(10, 16, seed=1)] == [10]
