"""Helpers shared by the test modules: small envs, configs that run in seconds, and checks of their outputs.

Test modules import what they need from here (``from helpers import ToyEnv``), never from each other. Importing
this module registers the tiny envs' ids (:data:`TINY_ID`, :data:`TINY3_ID`, :data:`PAIR_ID`) with Gymnasium.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium import spaces

from gmc_rl.cli import build_command_parser
from gmc_rl.commands.common import config_file_or
from gmc_rl.commands.config_flags import config_from_args, set_config_defaults
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig, from_dict, to_dict
from gmc_rl.evaluate import summarize
from gmc_rl.stages import Stage, Task

PENDULUM_ID = "gmc_rl/PendulumSound-v0"

# ----------------------------------------------------------------------------------------------------------------
# Tiny deterministic Dict-observation envs for the core tests (no dependency on envs/); their API check is in
# test_core_envs.py.


class TinyDictEnv(gym.Env):
    """A 1-D point moved by a Box action, observed as a small image and a vector.

    The vector is ``[position, velocity, step counter]`` so tests can check which row follows which. The episode
    terminates when the point leaves [-1, 1]; a TimeLimit truncates it otherwise.
    """

    metadata = {"render_modes": []}

    def __init__(self, size: int = 8, three: bool = False) -> None:
        entries = {
            "image": spaces.Box(0, 255, (1, size, size), np.uint8),
            "vec": spaces.Box(-50.0, 50.0, (3,), np.float32),
        }
        if three:
            entries["extra"] = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.size = size
        self.three = three

    def _obs(self):
        image = np.zeros((1, self.size, self.size), np.uint8)
        column = int(np.clip((self.pos + 1) / 2 * (self.size - 1), 0, self.size - 1))
        image[0, :, column] = 255
        obs = {"image": image, "vec": np.array([self.pos, self.vel, self.t], np.float32)}
        if self.three:
            obs["extra"] = np.array([np.sin(3 * self.pos), np.cos(3 * self.pos)], np.float32)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = float(self.np_random.uniform(-0.5, 0.5))
        self.vel = 0.0
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.vel = 0.8 * self.vel + 0.1 * float(np.asarray(action).reshape(-1)[0])
        self.pos += self.vel
        self.t += 1
        terminated = abs(self.pos) > 1.0
        return self._obs(), -abs(self.pos), terminated, False, {}


TINY_ID = "test_core/TinyDict-v0"
TINY3_ID = "test_core/TinyDict3-v0"


def register_tiny_envs() -> None:
    if TINY_ID not in gym.registry:
        gym.register(TINY_ID, entry_point=TinyDictEnv, max_episode_steps=7)
    if TINY3_ID not in gym.registry:
        gym.register(TINY3_ID, entry_point=TinyDictEnv, max_episode_steps=9, kwargs={"three": True})


register_tiny_envs()

# ----------------------------------------------------------------------------------------------------------------
# A small multimodal env for the wrapper tests (fast, deterministic); its checks are in test_wrappers_toyenv.py.
# ``ToyEnv`` has an 8x8 two-frame image, a 3-value "sound" in [-1, 1] and optionally a 2-value "joints" vector; its
# observations are a function of a hidden state that the action moves, so different steps give different values.
# ``nan_at`` makes a modality emit NaN at chosen steps (a broken sensor).


class ToyEnv(gym.Env):
    """Deterministic given the reset seed; 40-step episodes (truncated)."""

    metadata = {"render_modes": []}

    def __init__(self, joints: bool = False, nan_at: dict[int, str] | None = None, horizon: int = 40) -> None:
        entries: dict[str, spaces.Space] = {
            "image": spaces.Box(0, 255, (2, 8, 8), np.uint8),
            "sound": spaces.Box(-1.0, 1.0, (3,), np.float32),
        }
        if joints:
            entries["joints"] = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.state_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.nan_at = dict(nan_at or {})
        self.horizon = horizon
        self._state = np.zeros(2)
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        a, b = self._state
        grid = np.add.outer(np.arange(8), np.arange(8)) * (1.0 + abs(a))
        frame = ((grid * 13 + 40 * b) % 256).astype(np.uint8)
        obs = {
            "image": np.stack([frame, frame[::-1]]),
            "sound": np.clip(np.sin(np.array([a, b, a + b])), -1, 1).astype(np.float32),
        }
        if "joints" in self.observation_space.spaces:
            obs["joints"] = np.array([a * 3.0, b - 1.0], dtype=np.float32)
        if self._t in self.nan_at:
            name = self.nan_at[self._t]
            obs[name] = np.full_like(obs[name], np.nan)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._state = self.np_random.uniform(-1, 1, 2)
        self._t = 0
        return self._obs(), {"state": self._state.astype(np.float32)}

    def step(self, action):
        self._t += 1
        self._state = self._state + np.array([0.1 * float(np.asarray(action).ravel()[0]), 0.05 + 0.02 * self._state[0]])
        reward = -float(np.sum(self._state**2))
        return self._obs(), reward, False, self._t >= self.horizon, {"state": self._state.astype(np.float32)}


# ----------------------------------------------------------------------------------------------------------------
# A tiny two-sensor env of the reliability tests (and broken variants of it), with its config.


class PairEnv(gym.Env):
    """A point on a line seen by an 8x8 camera ("image") and a 3-vector sensor ("vec").

    ``nan_at`` makes the vector sensor emit NaN from that step on; ``layout`` builds broken observation spaces:
    "one" (a single modality), "discrete" (a Discrete modality), "plus" (a name with "+"), "float64" (the vector as
    float64) and "wide" (a 9x8 image).
    """

    metadata = {"render_modes": []}

    def __init__(self, nan_at: int | None = None, layout: str = "pair") -> None:
        height = 9 if layout == "wide" else 8
        vec_dtype = np.float64 if layout == "float64" else np.float32
        entries: dict = {"image": spaces.Box(0, 255, (1, height, 8), np.uint8),
                         "vec": spaces.Box(-5.0, 5.0, (3,), vec_dtype)}
        if layout == "one":
            del entries["image"]
        elif layout == "discrete":
            entries["button"] = spaces.Discrete(2)
        elif layout == "plus":
            entries["left+right"] = entries.pop("vec")
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.nan_at, self.layout, self.height = nan_at, layout, height

    def _obs(self) -> dict:
        image = np.zeros((1, self.height, 8), np.uint8)
        image[0, :, int(np.clip((self.pos + 1) * 3.5, 0, 7))] = 255
        vec = np.array([self.pos, self.vel, self.t / 10], self.observation_space["vec"].dtype) \
            if "vec" in self.observation_space.spaces else None
        if vec is not None and self.nan_at is not None and self.t >= self.nan_at:
            vec[1] = np.nan
        obs = {"image": image, "vec": vec, "button": 0, "left+right": vec}
        return {key: obs[key] for key in self.observation_space.spaces}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.vel, self.t = float(self.np_random.uniform(-0.5, 0.5)), 0.0, 0
        return self._obs(), {}

    def step(self, action):
        self.vel = 0.9 * self.vel + 0.1 * float(np.asarray(action).reshape(-1)[0])
        self.pos = float(np.clip(self.pos + self.vel, -1.0, 1.0))
        self.t += 1
        return self._obs(), -abs(self.pos), False, False, {}


PAIR_ID = "test_reliability/Pair-v0"
if PAIR_ID not in gym.registry:
    gym.register(PAIR_ID, entry_point=PairEnv, max_episode_steps=10)

SMALL_MODEL = ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])


def pair_config(**pretrain) -> ExperimentConfig:
    settings = {"epochs": 1, "batch_size": 8, "checkpoint_every": 1, "device": "cpu", "model": SMALL_MODEL, **pretrain}
    return ExperimentConfig(env_id=PAIR_ID, collect=CollectConfig(steps=60, n_envs=2, val_fraction=0.25, seed=3),
                            pretrain=PretrainConfig(**settings))


# ----------------------------------------------------------------------------------------------------------------
# Observation spaces of 2 and 3 modalities, and seeded batches of them.


def tiny_pendulum_experiment(total: int = 200) -> ExperimentConfig:
    """PendulumSound with a tiny GMC model and a short SAC run: for tests that need a trained GMC agent."""
    model = {"latent_dim": 4, "common_dim": 16, "head_hidden": 16, "conv_channels": [4, 8], "mlp_hidden": [16]}
    return from_dict(ExperimentConfig, {
        "env_id": "gmc_rl/PendulumSound-v0",
        "collect": {"steps": 300, "n_envs": 2, "val_fraction": 0.2},
        "pretrain": {"epochs": 1, "batch_size": 32, "device": "cpu", "model": model},
        "agent": {"algo": "sac", "total_timesteps": total, "eval_freq": 100, "eval_episodes": 1,
                  "checkpoint_freq": 100, "device": "cpu",
                  "hyperparams": {"learning_starts": 150, "batch_size": 16, "policy_kwargs": {"net_arch": [16]}}},
    })


def space_m2():
    return spaces.Dict({
        "image": spaces.Box(0, 255, (2, 16, 16), np.uint8),
        "sound": spaces.Box(-1.0, 1.0, (2, 3, 2), np.float32),
    })


def space_m3():
    return spaces.Dict({
        "camera": spaces.Box(0, 255, (3, 12, 20), np.uint8),
        "joints": spaces.Box(-5.0, 5.0, (4,), np.float32),
        "sound": spaces.Box(-1.0, 1.0, (6,), np.float32),
    })


def sample_batch(space, batch, seed=0):
    space.seed(seed)
    samples = [space.sample() for _ in range(batch)]
    return {name: np.stack([s[name] for s in samples]) for name in space.spaces}


# ----------------------------------------------------------------------------------------------------------------
# Configs that run in seconds, and the config a command would run with.


def tiny_config(env_id: str, methods: list[str], **overrides) -> ExperimentConfig:
    """A pipeline config whose every stage takes seconds (short episodes, few steps, one epoch)."""
    algo = "sac" if "Pendulum" in env_id else "dqn"
    hyperparams = {"learning_starts": 100, "buffer_size": 500, "batch_size": 32}
    if algo == "dqn":
        hyperparams.update(target_update_interval=50)
    data = {
        "name": "tiny",
        "env_id": env_id,
        "env_kwargs": {"max_episode_steps": 40},
        "methods": methods,
        "seeds": [0],
        "collect": {"steps": 400, "n_envs": 2},
        "pretrain": {"epochs": 1, "batch_size": 64, "device": "cpu", "checkpoint_every": 1},
        "agent": {"algo": algo, "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": hyperparams, "action_fit_rounds": 1, "action_fit_steps": 40, "action_fit_epochs": 1},
        "evaluate": {"episodes": 2, "n_envs": 2, "conditions": ["subsets", "dropout:0.5"]},
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return from_dict(ExperimentConfig, data)


def check_results(results: dict, methods: list[str], conditions: list[str]) -> None:
    assert results["methods"] == methods
    assert results["conditions"] == conditions
    for method in methods:
        assert list(results["results"][method]) == conditions
        for summary in results["results"][method].values():
            assert summary["episodes"] == 2
            for metric in ("per_step_reward", "episode_return"):
                assert math.isfinite(summary[metric]["mean"])
                low, high = summary[metric]["ci95"]
                assert math.isfinite(low) and math.isfinite(high) and low <= summary[metric]["mean"] <= high


PRETRAIN_MODEL = ModelConfig(latent_dim=8, common_dim=16, head_hidden=32, conv_channels=[4, 8], mlp_hidden=[16])


def config_for(env_id, steps, **pretrain_settings):
    settings = {"epochs": 2, "batch_size": 32, "checkpoint_every": 1, "lr": 3e-3, "model": PRETRAIN_MODEL,
                **pretrain_settings}
    return ExperimentConfig(
        env_id=env_id,
        collect=CollectConfig(steps=steps, n_envs=2, val_fraction=0.2, seed=1),
        pretrain=PretrainConfig(**settings),
    )


def parse(command: str, argv: list[str]) -> ExperimentConfig:
    """The experiment config a command would run with (no command is run)."""
    module, parser = build_command_parser(command)
    base = module.base_config(argv) if hasattr(module, "base_config") else config_file_or(argv)
    flags = module.CONFIG
    set_config_defaults(parser, base, flags.sections, flags.top_level)
    return config_from_args(parser.parse_args(argv), base, flags.sections, flags.top_level)


# ----------------------------------------------------------------------------------------------------------------
# Files: copies, weights, fake pipeline runs.


def copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


def same_tensors(a: Path, b: Path) -> bool:
    """Equal weights in two safetensors files. (Not their bytes: safetensors writes the header's metadata
    mapping in an arbitrary key order, so equal checkpoints can differ in a few header bytes.)"""
    from safetensors.torch import load_file

    first, second = load_file(str(a)), load_file(str(b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def fake_run(run_dir: Path, agent: str, returns: list[float]) -> Path:
    """A run directory holding what `gmc-rl report` reads: config.yaml and one agent's evaluation record."""
    (run_dir / "eval" / "runs").mkdir(parents=True)
    method, seed = agent.rsplit("-seed", 1)  # the config names the agent, as a pipeline run's does
    config = ExperimentConfig(env_id=PENDULUM_ID, methods=[method], seeds=[int(seed)])
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    summary = summarize([({"seed": 0}, returns, [10] * len(returns))])
    record = {"agent": agent, "method": "gmc", "env_id": PENDULUM_ID, "seeds": [0], "evaluation": {"complete": summary}}
    (run_dir / "eval" / "runs" / f"{agent}.json").write_text(json.dumps(record))
    return run_dir


# ----------------------------------------------------------------------------------------------------------------
# Stage-runner work that records which process ran it and when.


def write_stamp(path: Path, delay: float = 0.0, fail: bool = False, wait_for: Path | None = None, *, resume: bool,
                progress: bool) -> None:
    """Stage work for the tests: wait (for ``delay`` seconds, then for the file ``wait_for`` to appear, at most
    60 s), then write which process ran it and when (or fail)."""
    time.sleep(delay)
    deadline = time.monotonic() + 60
    while wait_for is not None and not wait_for.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name}: {wait_for.name} was not written within 60 s")
        time.sleep(0.05)
    if fail:
        raise RuntimeError(f"deliberate failure of {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "end": time.time(), "resume": resume, "progress": progress}))


def write_folder(path: Path, *, resume: bool, progress: bool) -> None:
    """Stage work for the tests: a folder output as an agent's, with a model, logs and a resume point."""
    for name in ("agent.zip", "encoder/model.safetensors", "tb/events.out", "checkpoints/step_10/model.zip"):
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(f"{name} {time.time()}")


def folder_tasks(run_dir: Path) -> list[Task]:
    """Three tasks in a row: ``agent`` writes a folder (:func:`write_folder`) whose model and encoder later stages
    need; ``evaluate`` and ``report``, each a stamp, wait for the one before."""
    agent = Stage(run_dir, "agent", run_dir / "agent", {"name": "agent"},
                  needs=[run_dir / "agent" / "agent.zip", run_dir / "agent" / "encoder" / "model.safetensors"])
    return [Task(agent, "agent", partial(write_folder, agent.output)),
            stamp_task(run_dir, "evaluate", after=("agent",)), stamp_task(run_dir, "report", after=("evaluate",))]


def die_unless_resumed(path: Path, *, resume: bool, progress: bool) -> None:
    """Stage work for the tests: the first attempt leaves partial output (as a checkpoint), then kills its own
    process with SIGKILL (as the kernel's out-of-memory killer or ``kill -9`` would); the attempt that resumes
    writes its stamp."""
    if not resume:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial")
        os.kill(os.getpid(), signal.SIGKILL)
    write_stamp(path, resume=resume, progress=progress)


def stamp_task(run_dir: Path, name: str, after: tuple[str, ...] = (), **work) -> Task:
    stage = Stage(run_dir, name, run_dir / "out" / f"{name}.json", {"name": name})
    return Task(stage, name, partial(write_stamp, stage.output, **work), after=after)


def stamp(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / "out" / f"{name}.json").read_text())


# ----------------------------------------------------------------------------------------------------------------
# docs/custom_envs.md's example env, written as the package a user would have (test_envs_docs, test_custom_env_cli).

CUSTOM_ENVS_DOC = Path(__file__).resolve().parents[1] / "docs" / "custom_envs.md"


def custom_env_doc_blocks() -> list[str]:
    """The Python code blocks of docs/custom_envs.md, in order (the first is the module ``my_package/sensors.py``)."""
    import re

    return re.findall(r"```python\n(.*?)```", CUSTOM_ENVS_DOC.read_text(), re.S)


def write_custom_env_package(root: Path) -> Path:
    """Write the doc's module block as ``root/my_package/sensors.py`` (with an empty ``__init__.py``)."""
    module = custom_env_doc_blocks()[0]
    assert module.startswith("# my_package/sensors.py\n")
    package = root / "my_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sensors.py").write_text(module)
    return package


def tiny_state_config(name: str) -> dict:
    """A tiny state-only PendulumSound pipeline config (seconds to run), as a config file's mapping."""
    return {
        "name": name, "env_id": "gmc_rl/PendulumSound-v0", "env_kwargs": {"max_episode_steps": 30},
        "methods": ["state"], "seeds": [0],
        "agent": {"algo": "sac", "total_timesteps": 150, "eval_freq": 0, "checkpoint_freq": 0, "device": "cpu",
                  "hyperparams": {"learning_starts": 100, "buffer_size": 500, "batch_size": 32}},
        "evaluate": {"episodes": 1, "n_envs": 1, "conditions": ["complete", "image"]},
    }


def printed_config(capsys, *argv: str) -> tuple[int, dict, str]:
    """``gmc-rl ARGV --print_config``: its exit code, the config it printed (or {}) and its error text."""
    from gmc_rl.cli import main

    try:
        code = main([*argv, "--print_config"])
    except SystemExit as exit_info:  # jsonargparse's way out for a refused flag
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    config = yaml.safe_load(out.split("\n", 1)[1]) if code == 0 else {}
    return code, config, err


def tiny_finished_sac_agent(out: Path) -> Path:
    """A tiny finished SAC agent in ``out`` (64 steps, no gradient step) whose checkpoint step_64/ holds its replay
    buffer (checkpoints every 32 steps)."""
    from gmc_rl.agents import train_agent
    from gmc_rl.config import AgentConfig

    config = ExperimentConfig(agent=AgentConfig(
        algo="sac", total_timesteps=64, eval_freq=0, checkpoint_freq=32, device="cpu",
        hyperparams={"learning_starts": 1000, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}}))
    return train_agent(config, "state", 0, out, progress_bar=False)
