"""An agent directory's files damaged or crafted: agent.zip's entries are checked before anything is unpacked, a
damaged weights entry is named in one line, a missing agent.zip is named, a replay buffer holding NaN is refused."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_finished_sac_agent

from gmc_rl.cli import main


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> Path:
    """A tiny finished SAC agent (64 steps, no gradient step) with a checkpoint holding its replay buffer."""
    return tiny_finished_sac_agent(tmp_path_factory.mktemp("agent_files") / "agent")


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def rewrite_zip(path: Path, replace: dict[str, bytes]) -> None:
    """Rewrite the zip ``path`` with the entries in ``replace`` put in place of (or added to) its own, deflated."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries.update(replace)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def torch_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def evaluate_error(agent_dir: Path, tmp_path: Path, capsys) -> str:
    assert main(["evaluate", "--agent", str(agent_dir), "--out", str(tmp_path / "e"), "--no-progress"]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("entry", ["evil.pth", "policy.pth"])
def test_agent_zip_entries_are_checked_before_anything_is_unpacked(agent, tmp_path, capsys, monkeypatch, entry):
    """Before, SB3's load_from_zip_file unpacked and torch.loaded every .pth entry of agent.zip: an extra evil.pth
    (a 1.5 GB zero tensor, 2.8 MB deflated) took 3.3 GB before "Key evil is an invalid object name"; an oversized
    policy.pth was unpacked in full before "do not fit". Now the entries and their sizes are refused unread."""
    agent_dir = copy_of(agent, tmp_path)
    rewrite_zip(agent_dir / "agent.zip", {entry: torch_bytes({"w": torch.zeros(4_000_000)})})  # 16 MB unpacked
    assert (agent_dir / "agent.zip").stat().st_size < 1_000_000

    def never(*args, **kwargs):
        raise AssertionError("torch.load reached")

    monkeypatch.setattr(torch, "load", never)
    err = evaluate_error(agent_dir, tmp_path, capsys)
    assert f"'{entry}'" in err and "(16,00" in err or "to 16,00" in err and len(err.strip().splitlines()) == 1, err
    assert ("SB3 does not write" if entry == "evil.pth" else "more than the") in err, err


def test_a_damaged_weights_entry_is_named_in_one_line_without_torchs_advice(agent, tmp_path, capsys):
    """Before: torch's multi-line "Weights only load failed ... Re-running `torch.load` with `weights_only` set to
    `False` will likely succeed ..." on a corrupt or hostile file."""
    agent_dir = copy_of(agent, tmp_path)
    rewrite_zip(agent_dir / "agent.zip", {"policy.pth": bytes(1000)})
    err = evaluate_error(agent_dir, tmp_path, capsys)
    assert "'policy.pth'" in err and "agent.zip" in err and len(err.strip().splitlines()) == 1, err
    assert "weights_only" not in err, err


def test_a_finished_agent_without_agent_zip_is_named_not_called_unfinished(agent, tmp_path):
    """Before: "the agent in ... has not finished training (64 of 64 steps)"."""
    from gmc_rl.agents import load_agent
    from gmc_rl.errors import CheckpointError

    agent_dir = copy_of(agent, tmp_path)
    (agent_dir / "agent.zip").unlink()
    with pytest.raises(CheckpointError, match=r"agent\.zip \(the trained policy\) is missing; rebuild it") as raised:
        load_agent(agent_dir)
    assert "not finished" not in str(raised.value) and "--resume" in str(raised.value)


def test_a_replay_buffer_holding_nan_is_refused_before_resuming(agent, tmp_path, capsys):
    """Before, `train --resume` trained on the NaN rewards until torch failed with a raw ValueError (here, with no
    gradient step, it even finished), and the finished agent was left marked "training"."""
    agent_dir = copy_of(agent, tmp_path)
    latest = json.loads((agent_dir / "checkpoints" / "latest.json").read_text())
    buffer = agent_dir / "checkpoints" / latest["path"] / "replay_buffer.npz"
    with np.load(buffer) as data:
        arrays = dict(data)
    arrays["rewards"][3] = np.nan
    np.savez(buffer, **arrays)
    assert main(["train", "--resume", "--out", str(agent_dir), "--agent.total_timesteps", "96",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'rewards'" in err and "NaN" in err and "row 3" in err and len(err.strip().splitlines()) == 1, err
    assert json.loads((agent_dir / "agent.json").read_text())["status"] == "complete"


def test_a_foreign_sb3_zip_is_checked_the_same_way(tmp_path, monkeypatch):
    """load_sb3_zip (SB3 models of unknown origin, gmc_rl.rollout) handed the zip to SB3's load, which unpacked every
    .pth entry; now the entries are checked against the model rebuilt from the data entry first."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from gmc_rl.errors import CheckpointError
    from gmc_rl.sb3_zip import load_sb3_zip

    env = gym.make("Pendulum-v1")
    PPO("MlpPolicy", env, device="cpu", policy_kwargs={"net_arch": [8]}).save(tmp_path / "ppo.zip")
    assert isinstance(load_sb3_zip(tmp_path / "ppo.zip", PPO, env.observation_space, env.action_space), PPO)
    rewrite_zip(tmp_path / "ppo.zip", {"policy.pth": torch_bytes({"w": torch.zeros(4_000_000)})})
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load reached"))
    with pytest.raises(CheckpointError, match=r"entry 'policy.pth' unpacks to 16,00\d,\d+ bytes, more than"):
        load_sb3_zip(tmp_path / "ppo.zip", PPO, env.observation_space, env.action_space)


def test_a_finished_agent_whose_checkpoints_were_deleted_is_kept_not_trained_again(agent, tmp_path, capsys):
    """Before, `train --resume` said "no checkpoint to resume from; training from the start" and replaced the
    finished agent with one trained from step 0 (resume points may be deleted to save space)."""
    agent_dir = copy_of(agent, tmp_path)
    shutil.rmtree(agent_dir / "checkpoints")
    before = {name: (agent_dir / name).read_bytes() for name in ("agent.zip", "agent.json")}
    assert main(["train", "--resume", "--out", str(agent_dir), "--agent.total_timesteps", "96",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{agent_dir} holds a finished agent (agent.total_timesteps 64)" in err, err
    assert "is gone" in err and "it is kept and nothing is trained" in err and "another --out" in err, err
    assert {name: (agent_dir / name).read_bytes() for name in before} == before
    # Resuming it with the steps it was trained with is a no-op, as with its checkpoints.
    assert main(["train", "--resume", "--out", str(agent_dir), "--no-progress"]) == 0
    assert "training from the start" not in capsys.readouterr().out
    assert {name: (agent_dir / name).read_bytes() for name in before} == before
