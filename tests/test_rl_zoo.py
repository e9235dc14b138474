"""rl-zoo3 trains agents on gmc-rl's envs with the hyperparameter files of experiments/zoo/ (docs/rl_zoo.md).

rl-zoo3 is the optional extra ``zoo`` (``pip install -e ".[zoo]"``): CI installs it; where it is missing these
tests are skipped. Each test runs ``python -m rl_zoo3.train`` in a subprocess with a shipped file and a budget of
seconds (300 steps, learning from step 100, a small replay buffer), then loads the saved model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

pytest.importorskip("rl_zoo3")

from stable_baselines3 import SAC  # noqa: E402

import gmc_rl  # noqa: E402,F401  (registers the env ids in this process)
from gmc_rl.collect import collect  # noqa: E402
from gmc_rl.config import ExperimentConfig, from_dict  # noqa: E402
from gmc_rl.pretrain import pretrain  # noqa: E402
from gmc_rl.wrappers import GMCLatent, ModalityDropout, NonFiniteGuard  # noqa: E402
from gmc_rl.zoo import read_run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "experiments" / "zoo"
ENV_ID = "gmc_rl/PendulumSound-v0"
SAVED_MODEL = Path("logs/sac/gmc_rl-PendulumSound-v0_1/gmc_rl-PendulumSound-v0.zip")
TINY_BUDGET = [
    "-n", "300",
    "--hyperparams", "learning_starts:100", "buffer_size:500", "batch_size:32",
    "--env-kwargs", "max_episode_steps:100",
]


def run_zoo(script: str, *args: str, cwd: Path, launcher: str = "rl_zoo3", expect_fail: bool = False) -> str:
    """Run ``python -m rl_zoo3.<script> ARGS`` (or ``python -m gmc_rl.zoo <script> ARGS`` with ``launcher="gmc_rl"``)
    in ``cwd``; return its output, failing with it on a non-zero exit (on a zero one with ``expect_fail``)."""
    command = ["-m", f"rl_zoo3.{script}"] if launcher == "rl_zoo3" else ["-m", "gmc_rl.zoo", script]
    result = subprocess.run([sys.executable, *command, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert (result.returncode != 0) == expect_fail, (
        f"{launcher} {script} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr if expect_fail else result.stdout


def train_sac(conf_file: str, cwd: Path, launcher: str = "rl_zoo3") -> SAC:
    run_zoo(
        "train", "--algo", "sac", "--env", ENV_ID, "--gym-packages", "gmc_rl", "--conf-file", str(ZOO / conf_file),
        "-f", "logs", "--seed", "0", "--num-threads", "1", *TINY_BUDGET, cwd=cwd, launcher=launcher,
    )
    assert (cwd / SAVED_MODEL).is_file()
    model = SAC.load(cwd / SAVED_MODEL, device="cpu")
    assert model.num_timesteps == 300
    return model


def check_acts(model: SAC, env: gym.Env) -> None:
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_sac_on_raw_observations_then_record_video(tmp_path):
    model = train_sac("sac.yml", tmp_path)
    env = gym.make(ENV_ID)
    assert model.observation_space == env.observation_space  # image + sound, no availability mask
    check_acts(model, NonFiniteGuard(env, expose_mask=False))
    # record_video has no --gym-packages: gmc_rl.zoo registers the ids, then runs it
    result = subprocess.run(
        [sys.executable, "-m", "gmc_rl.zoo", "record_video", "--algo", "sac", "--env", ENV_ID, "-f", "logs", "-n",
         "50", "--env-kwargs", "max_episode_steps:100"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / SAVED_MODEL.parent / "videos").glob("*.mp4"))


def latent_checkpoint_path() -> Path:
    """The GMC checkpoint that sac_latent.yml names (relative to the directory the zoo runs in)."""
    wrappers = yaml.safe_load((ZOO / "sac_latent.yml").read_text())[ENV_ID]["env_wrapper"]
    (path,) = [entry["gmc_rl.wrappers.GMCLatent"]["checkpoint_or_model"] for entry in wrappers
               if isinstance(entry, dict) and "gmc_rl.wrappers.GMCLatent" in entry]
    assert not Path(path).is_absolute()
    return Path(path)


def test_sac_on_gmc_latents_then_enjoy_from_a_moved_run(tmp_path):
    # A GMC checkpoint of seconds where sac_latent.yml looks for it: 400 random transitions, one epoch.
    config = from_dict(ExperimentConfig, {
        "env_id": ENV_ID,
        "env_kwargs": {"max_episode_steps": 40},
        "collect": {"steps": 400, "n_envs": 2},
        "pretrain": {"epochs": 1, "batch_size": 64, "device": "cpu", "checkpoint_every": 1},
    })
    work = tmp_path / "work"
    checkpoint = work / latent_checkpoint_path()
    collect(config, work / "data", progress=False)
    pretrain(config, work / "data", checkpoint, progress=False)

    # Trained through the launcher, the run keeps a copy of its encoder and its config.yml reads the copy.
    model = train_sac("sac_latent.yml", work, launcher="gmc_rl")
    env = GMCLatent(ModalityDropout(NonFiniteGuard(gym.make(ENV_ID)), p=0.0), checkpoint)
    assert model.observation_space == env.observation_space
    assert env.observation_space.shape == (10,) and np.all(env.observation_space.high == 1.0)
    check_acts(model, env)
    params = work / SAVED_MODEL.parent / "gmc_rl-PendulumSound-v0"
    assert (params / "encoder" / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    wrappers = read_run_config(params / "config.yml")["env_wrapper"]
    assert wrappers[-1] == {"gmc_rl.zoo.ZooRunLatent": {"encoder": "encoder"}}

    # Moved elsewhere, with the training directory and its checkpoint gone, enjoy rebuilds the wrappers from the run
    # and plays one 100-step episode, from another directory.
    shutil.move(work / "logs", tmp_path / "shared")
    shutil.rmtree(work)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    enjoy = ("enjoy", "--algo", "sac", "--env", ENV_ID, "--gym-packages", "gmc_rl", "-f", str(tmp_path / "shared"),
             "--no-render", "-n", "100", "--num-threads", "1")
    output = run_zoo(*enjoy, cwd=elsewhere, launcher="gmc_rl")
    assert "1 Episodes" in output and "Mean episode length: 100.00" in output, output
    # rl_zoo3's own enjoy cannot tell the wrapper where the run lies: one clear error naming the launcher.
    output = run_zoo(*enjoy, cwd=elsewhere, expect_fail=True)
    assert "python -m gmc_rl.zoo" in output, output[-3000:]

