"""Distillation from a true-state teacher (gmc_rl.agents.distillation, ``gmc-rl train --teacher``)."""

import json

import gymnasium as gym
import numpy as np
import pytest
from helpers import tiny_config

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.distillation import DistillSettings, distill_agent
from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.errors import ConfigError
from gmc_rl.pipeline import _plan, run_pipeline
from gmc_rl.pretrain import pretrain

ENV = "gmc_rl/CartPoleSensors-v0"
SMALL = DistillSettings(rounds=3, steps=400, epochs=20)


def student_config(algo="ppo", **agent):
    hyperparams = {"n_steps": 32, "batch_size": 64} if algo == "ppo" else {
        "learning_starts": 100, "buffer_size": 500, "batch_size": 32, "target_update_interval": 50}
    return tiny_config(ENV, ["gmc", "state"], agent={"algo": algo, "n_envs": 2, "hyperparams": hyperparams, **agent})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A briefly trained true-state PPO agent: the tests check that students copy it, not that it balances."""
    return train_agent(student_config(total_timesteps=3000), "state", seed=0,
                       out_dir=tmp_path_factory.mktemp("t") / "state", progress_bar=False)


def agreement(student_dir, teacher_dir, seed=123, steps=200):
    """Share of the states visited by the teacher on which the student acts as the teacher does."""
    student, master = load_agent(student_dir), load_agent(teacher_dir)
    env = gym.make(ENV, max_episode_steps=40)
    obs, info = env.reset(seed=seed)
    same, chosen = [], set()
    for step in range(steps):
        state = np.asarray(info["state"], dtype=np.float32)[None]
        wanted, _ = master.model.predict(state, deterministic=True)
        if student.encoder is None:
            got, _ = student.model.predict(state, deterministic=True)
        else:
            latent = student.encoder.encode({k: v[None] for k, v in obs.items()}).numpy()
            got, _ = student.model.predict(latent, deterministic=True)
        same.append(int(got[0]) == int(wanted[0]))
        chosen.add(int(wanted[0]))
        obs, _, terminated, truncated, info = env.step(wanted[0])
        if terminated or truncated:
            obs, info = env.reset(seed=seed + step + 1)
    env.close()
    assert chosen == {0, 1}, "the teacher always takes the same action: agreement would not test the student"
    return float(np.mean(same))


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_a_student_with_the_teachers_input_copies_its_actions(tmp_path, teacher, algo):
    out = distill_agent(student_config(algo), "state", 0, tmp_path / algo, teacher, settings=SMALL,
                        progress_bar=False)
    info = json.loads((out / "agent.json").read_text())
    assert info["status"] == "complete" and info["algo"] == algo
    assert [row["round"] for row in info["distillation"]["history"]] == [0, 1, 2]
    assert info["distillation"]["teacher"] == str(teacher) and info["num_timesteps"] == 3 * 400
    assert agreement(out, teacher) >= 0.9


def test_a_raw_student_reads_the_dict_observation(tmp_path, teacher):
    settings = DistillSettings(rounds=2, steps=100, epochs=2)
    out = distill_agent(student_config(), "raw", 0, tmp_path / "raw", teacher, settings=settings, progress_bar=False)
    student = load_agent(out)
    assert student.method == "raw" and student.encoder is None
    venv = student.make_vec_env("complete", n_envs=1, seed=0)
    action = student.predict(venv.reset())
    venv.close()
    assert action.shape == (1,) and int(action[0]) in (0, 1)


def test_a_gmc_student_reads_its_frozen_encoder_and_is_an_ordinary_agent(tmp_path, teacher, capsys):
    config = student_config()
    collect(config, tmp_path / "data", progress=False)
    pretrain(config, tmp_path / "data", tmp_path / "gmc", progress=False)
    command = ["train", "--method", "gmc", "--gmc", str(tmp_path / "gmc"), "--teacher", str(teacher),
               "--agent.distill_rounds", "2", "--agent.distill_steps", "200", "--env", ENV, "--env_kwargs",
               '{"max_episode_steps": 40}', "--algo", "ppo", "--n-envs", "2", "--out", str(tmp_path / "student"),
               "--agent.action_fit_rounds", "1", "--agent.action_fit_steps", "100", "--no-progress"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "evaluate it with" in out and "action fit (1 rounds) saved in" in out
    fit = (tmp_path / "student" / "action_fit" / "model.safetensors").stat().st_mtime_ns
    student = load_agent(tmp_path / "student")
    assert student.method == "gmc" and student.encoder is not None
    assert student.info["distillation"]["rounds"] == 2
    assert (tmp_path / "student" / "encoder" / "model.safetensors").is_file()
    first = (tmp_path / "student" / "agent.zip").stat().st_mtime_ns
    # the same command again keeps the finished agent; other settings in the same directory are refused
    assert main(command) == 0
    assert (tmp_path / "student" / "agent.zip").stat().st_mtime_ns == first
    assert (tmp_path / "student" / "action_fit" / "model.safetensors").stat().st_mtime_ns == fit
    # --resume would train it by RL from the start: refused, naming the way to rerun it
    assert main(["train", "--out", str(tmp_path / "student"), "--resume", "--no-progress"]) == 2
    assert "distilled from a teacher" in capsys.readouterr().err
    assert (tmp_path / "student" / "agent.zip").stat().st_mtime_ns == first
    changed = list(command)
    changed[changed.index("--n-envs") + 1] = "3"
    assert main(changed) == 2
    assert "holds another agent" in capsys.readouterr().err
    # a teacher must read the true state
    with pytest.raises(ConfigError, match="is a 'gmc' agent"):
        distill_agent(config, "state", 0, tmp_path / "x", tmp_path / "student", settings=SMALL)


def test_bad_teachers_settings_and_directories_are_refused(tmp_path, teacher, capsys):
    config = student_config()
    with pytest.raises(ConfigError, match="trained on"):
        distill_agent(tiny_config(ENV, ["state"], env_kwargs={"max_episode_steps": 30}), "state", 0, tmp_path / "a",
                      teacher, settings=SMALL)
    for bad in ({"rounds": 0}, {"steps": -1}, {"epochs": True}, {"lr": float("nan")}, {"lr": "0.1"}):
        with pytest.raises(ConfigError, match="distillation"):
            DistillSettings(**bad)
    with pytest.raises(ConfigError, match="needs a pretrained encoder"):
        distill_agent(config, "gmc", 0, tmp_path / "b", teacher, settings=SMALL)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        distill_agent(config, "state", 0, tmp_path / "c", teacher, settings=SMALL, progress_bar=False)
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"
    out = distill_agent(config, "state", 0, tmp_path / "d", teacher, settings=SMALL, progress_bar=False)
    with pytest.raises(ConfigError, match="holds another agent"):
        distill_agent(config, "state", 1, out, teacher, settings=SMALL, progress_bar=False)
    for agent, message in (({"distill_from": "mvae"}, "agent.distill_from"), ({"distill_rounds": 0}, "distill_rounds"),
                           ({"distill_steps": -5}, "distill_steps")):
        with pytest.raises(ConfigError, match=message):
            tiny_config(ENV, ["gmc", "state"], agent=agent)
    with pytest.raises(ConfigError, match="needs 'state' in methods"):
        tiny_config(ENV, ["gmc", "raw"], agent={"distill_from": "state"})


def test_the_pipeline_distils_encoder_agents_from_the_teacher_of_their_seed(tmp_path):
    config = tiny_config(ENV, ["gmc", "raw", "state"], seeds=[0, 1],
                         agent={"distill_from": "state", "distill_rounds": 2, "distill_steps": 100})
    run_pipeline(config, tmp_path / "run", progress=False)
    for seed in (0, 1):
        gmc = json.loads((tmp_path / "run" / "agents" / f"gmc-seed{seed}" / "agent.json").read_text())
        assert gmc["distillation"]["teacher"] == str(tmp_path / "run" / "agents" / f"state-seed{seed}")
        assert [row["steps"] for row in gmc["distillation"]["history"]] == [100, 100]
        raw = json.loads((tmp_path / "run" / "agents" / f"raw-seed{seed}" / "agent.json").read_text())
        assert "distillation" not in raw  # methods without an encoder learn by RL
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert set(results["results"]) == {"gmc", "raw", "state"}
    # with RL again, only the distilled agents (and their evaluations) are out of date
    tasks, _, _ = _plan(tiny_config(ENV, ["gmc", "raw", "state"], seeds=[0, 1]), tmp_path / "run", ["complete"])
    stale = sorted(task.stage.name for task in tasks
                   if task.stage.name.startswith("train") and not task.stage.is_done())
    assert stale == ["train_gmc-seed0", "train_gmc-seed1"]


def test_auto_distils_when_the_run_trains_a_true_state_agent_and_learns_by_rl_otherwise(tmp_path):
    """``distill_from: auto`` (the embedded quick config's): a run whose env has no true state (so no "state"
    method) still trains its agents; with "state" in the methods it plans exactly what "state" plans."""
    auto = {"distill_from": "auto", "distill_rounds": 2, "distill_steps": 100}
    with_teacher = tiny_config(ENV, ["gmc", "state"], agent=auto)
    alone = tiny_config(ENV, ["gmc"], agent=auto)
    assert with_teacher.distill_teacher() == "state" and alone.distill_teacher() == ""
    assert tiny_config(ENV, ["gmc", "state"]).distill_teacher() == ""

    def training_stages(config):
        tasks, _, _ = _plan(config, tmp_path / "run", ["complete"])
        return {task.stage.name: (task.after, task.stage.hash) for task in tasks if task.stage.name.startswith("train")}

    explicit = training_stages(tiny_config(ENV, ["gmc", "state"], agent={**auto, "distill_from": "state"}))
    assert training_stages(with_teacher) == explicit
    assert "train_state-seed0" in explicit["train_gmc-seed0"][0]  # distilled: waits for its teacher
    rl = training_stages(tiny_config(ENV, ["gmc"]))
    assert training_stages(alone) == rl and "train_state-seed0" not in rl["train_gmc-seed0"][0]


@pytest.mark.parametrize("algo", ["sac", "td3", "ppo"])
def test_a_box_student_copies_the_teachers_torques(tmp_path, algo):
    pendulum = "gmc_rl/PendulumSound-v0"
    ppo = {"n_steps": 32, "batch_size": 64}
    off_policy = {"learning_starts": 100, "buffer_size": 500, "batch_size": 32}
    config = tiny_config(pendulum, ["state"], agent={"algo": "ppo", "n_envs": 2, "hyperparams": ppo,
                                                     "total_timesteps": 640})
    master = train_agent(config, "state", seed=0, out_dir=tmp_path / "teacher", progress_bar=False)
    config = tiny_config(pendulum, ["state"], agent={"algo": algo, "n_envs": 2,
                                                     "hyperparams": ppo if algo == "ppo" else off_policy})
    out = distill_agent(config, "state", 0, tmp_path / "student", master, settings=SMALL, progress_bar=False)
    teacher, student = load_agent(master), load_agent(out)
    states = np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], size=(300, 3)).astype(np.float32)
    states[:, :2] /= np.linalg.norm(states[:, :2], axis=1, keepdims=True)  # (cos, sin) on the circle
    wanted = np.clip(teacher.model.predict(states, deterministic=True)[0], -2, 2)
    got = student.model.predict(states, deterministic=True)[0]
    assert wanted.std() > 0.05, "the teacher's torque hardly varies: the comparison would not test the student"
    assert np.abs(got - wanted).mean() < 0.5 * np.abs(wanted - wanted.mean()).mean()
