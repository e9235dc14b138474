"""gmc_rl.agents: training, agent directories, resume and the method-specific env stacks (state and raw methods).

Tiny agents (a few hundred steps, tiny networks) on gmc_rl/PendulumSound-v0; the GMC and MVAE methods are covered by
tests/test_agents_gmc.py and tests/test_agents_mvae.py.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.agent_dir import AGENT_JSON, MODEL_ZIP, load_model_weights
from gmc_rl.agents.checkpoints import latest_checkpoint, load_replay_buffer, save_replay_buffer
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.agents.registry import build_algorithm
from gmc_rl.config import ExperimentConfig, agent_identity, from_dict, to_dict
from gmc_rl.errors import CheckpointError, ConfigError, ModalityError, SensorValueError
from gmc_rl.wrappers import StateObservation
from gmc_rl.wrappers.conditions import apply_condition

ENV = "gmc_rl/PendulumSound-v0"


def tiny_config(total=300, **agent) -> ExperimentConfig:
    """SAC with a tiny network that starts learning late, so a test trains in seconds."""
    hyperparams = {"learning_starts": max(total - 60, 0), "batch_size": 16, "buffer_size": 1000,
                   "policy_kwargs": {"net_arch": [16]}}
    hyperparams.update(agent.pop("hyperparams", {}))
    section = {"algo": "sac", "total_timesteps": total, "eval_freq": 0, "eval_episodes": 1,
               "checkpoint_freq": 100, "device": "cpu", "hyperparams": hyperparams, **agent}
    return from_dict(ExperimentConfig, {"env_id": ENV, "agent": section})


@pytest.fixture(scope="module")
def state_agent(tmp_path_factory):
    config = tiny_config(total=300, eval_freq=150)
    return train_agent(config, "state", seed=0, out_dir=tmp_path_factory.mktemp("agents") / "state",
                       progress_bar=False)


# -- the true-state observation -------------------------------------------------------------------------------


def test_state_observation_is_info_state_and_ignores_sensor_conditions():
    plain = StateObservation(gym.make(ENV))
    blind = StateObservation(apply_condition(gym.make(ENV), "image", seed=0, expose_mask=False))
    assert plain.observation_space == gym.make(ENV).unwrapped.state_space
    obs_a, info_a = plain.reset(seed=3)
    obs_b, _ = blind.reset(seed=3)
    np.testing.assert_array_equal(obs_a, info_a["state"])
    np.testing.assert_array_equal(obs_a, obs_b)
    for _ in range(5):
        obs_a, _, _, _, info_a = plain.step(np.array([0.5], np.float32))
        obs_b, _, _, _, _ = blind.step(np.array([0.5], np.float32))
        np.testing.assert_array_equal(obs_a, info_a["state"])
        np.testing.assert_array_equal(obs_a, obs_b)
    assert obs_a.shape == (3,) and np.isclose(obs_a[0] ** 2 + obs_a[1] ** 2, 1.0, atol=1e-5)


def test_state_observation_needs_state_space():
    with pytest.raises(ModalityError, match="state_space"):
        StateObservation(gym.make("Pendulum-v1"))


def test_raw_env_zero_fills_dropped_modalities_without_mask():
    venv = make_method_vec_env("raw", ENV, {}, "sound", n_envs=2, seed=0)
    obs = venv.reset()
    assert set(obs) == {"image", "sound"}
    assert not obs["image"].any() and obs["sound"].any()
    obs, *_ = venv.step(np.zeros((2, 1), np.float32))
    assert not obs["image"].any()
    venv.close()


def test_unknown_method_and_condition():
    with pytest.raises(ConfigError, match="unknown method 'gcm'.*'gmc'"):
        make_method_vec_env("gcm", ENV)
    with pytest.raises(ModalityError, match="unknown modality 'imag'"):
        make_method_vec_env("raw", ENV, condition="imag")
    with pytest.raises(ConfigError, match="'gmc_rl/PendulumSond-v0' is not registered.*PendulumSound"):
        make_method_vec_env("raw", "gmc_rl/PendulumSond-v0")
    with pytest.raises(ConfigError, match="needs an encoder"):
        make_method_vec_env("gmc", ENV)


# -- a trained agent directory ---------------------------------------------------------------------------------


def test_agent_dir_layout_and_description(state_agent):
    for name in ("agent.json", "agent.zip", "checkpoints/latest.json", "eval/evaluations.json"):
        assert (state_agent / name).is_file(), name
    assert any((state_agent / "tb").rglob("events.out.tfevents*"))
    assert not (state_agent / "encoder").exists()
    info = json.loads((state_agent / AGENT_JSON).read_text())
    assert info["method"] == "state" and info["algo"] == "sac" and info["env_id"] == ENV
    assert info["seed"] == 0 and info["modalities"] == ["image", "sound"]
    assert info["status"] == "complete" and info["num_timesteps"] == 300 == info["total_timesteps"]
    assert info["config"]["agent"]["total_timesteps"] == 300
    assert info["versions"]["gmc_rl"]
    evaluations = json.loads((state_agent / "eval" / "evaluations.json").read_text())
    assert evaluations["timesteps"] == [150, 300]
    assert all(len(r) == 1 and np.isfinite(r[0]) for r in evaluations["episode_rewards"])
    assert (state_agent / "eval" / "best_model.zip").is_file()


@pytest.mark.parametrize("condition", ["complete", "image", "sound", "dropout:0.5"])
def test_reloaded_agent_acts_under_every_condition(state_agent, condition):
    agent = load_agent(state_agent)
    assert agent.method == "state" and agent.modalities == ["image", "sound"] and agent.env_id == ENV
    venv = agent.make_vec_env(condition, n_envs=2, seed=5)
    obs = venv.reset()
    assert obs.shape == (2, 3)
    for _ in range(3):
        actions = agent.predict(obs)
        assert actions.shape == (2, 1) and np.all(np.abs(actions) <= 2.0)
        obs, rewards, dones, infos = venv.step(actions)
        assert np.all(np.isfinite(rewards))
    venv.close()


@pytest.mark.parametrize("observation, error, message", [
    (np.array([np.nan, 0.0, 0.0], np.float32), SensorValueError, "contains NaN or inf"),
    (np.full((2, 3), np.inf, np.float64), SensorValueError, "contains NaN or inf"),
    (torch.tensor([[0.0, float("nan"), 1.0]]), SensorValueError, "contains NaN or inf"),
    (np.zeros(4, np.float32), ModalityError, r"must have shape \(3,\) or \(B, 3\), got \(4,\)"),
    (np.zeros((2, 2, 3)), ModalityError, "must have shape"),
    (np.array(["a", "b", "c"]), ModalityError, "must hold numbers"),
    ({"state": np.zeros(3)}, ModalityError, r"this policy observes a vector, not the sensors \['state'\]"),
    (None, ModalityError, "must hold numbers"),
    (np.zeros(3, bool), ModalityError, "holds booleans but the policy observes float32"),
    (torch.zeros(2, 3, dtype=torch.bool), ModalityError, "holds booleans"),
    (np.array([1e30, 0.0, 0.0]), SensorValueError, r"holds 1e\+30 at index \(0,\), outside .* \[-1, 1\]"),
    (np.array([[0.0, 0.0, 0.0], [1.0, 0.0, -9.0]], np.float32), SensorValueError,
     r"holds -9 at index \(1, 2\), outside .* \[-8, 8\]"),
    (np.ma.masked_array(np.zeros(3, np.float32), [False, True, False]), ModalityError, "masked array"),
    (torch.zeros(2, 3).to_sparse(), ModalityError, "layout torch.sparse_coo"),
    (torch.zeros(3, dtype=torch.complex64).conj(), ModalityError, "a complex tensor is not accepted"),
    (torch.zeros(3).to(torch.float8_e4m3fn), ModalityError, "dtype float8_e4m3fn is not accepted"),
    (torch.quantize_per_tensor(torch.zeros(3), 0.1, 0, torch.quint8), ModalityError, "dtype quint8 is not accepted"),
])
def test_a_loaded_agent_refuses_what_its_policy_cannot_act_on(state_agent, observation, error, message):
    """Before, a NaN observation reached torch (a raw ValueError from a distribution), a wrong shape SB3."""
    agent = load_agent(state_agent)
    with pytest.raises(error, match=message):
        agent.predict(observation)
    assert agent.predict(np.zeros(3, np.float32)).shape == (1,)  # one observation, the shape of one action


def test_reloaded_weights_equal_trained_weights(state_agent):
    agent = load_agent(state_agent)
    other = load_agent(state_agent)
    venv = agent.make_vec_env("complete", n_envs=3, seed=1)
    obs = venv.reset()
    np.testing.assert_array_equal(agent.predict(obs), other.predict(obs))
    # the agent is not the untrained initialisation of the same seed
    fresh = build_algorithm("sac", venv, agent.config.agent.hyperparams, seed=0, tensorboard_log=None, device="cpu")
    trained = agent.model.policy.state_dict()
    assert any(not torch.equal(v, fresh.policy.state_dict()[k]) for k, v in trained.items())
    venv.close()


def test_loading_never_reads_the_pickled_data_entry(state_agent, tmp_path):
    """The SB3 zip's pickled 'data' entry is replaced by garbage: loading still works (it is never unpickled)."""
    import shutil

    copy = tmp_path / "agent"
    shutil.copytree(state_agent, copy)
    with zipfile.ZipFile(state_agent / MODEL_ZIP) as source, zipfile.ZipFile(copy / MODEL_ZIP, "w") as target:
        for item in source.infolist():
            data = b"not json, not pickle" if item.filename == "data" else source.read(item.filename)
            target.writestr(item, data)
    agent = load_agent(copy)
    reference = load_agent(state_agent)
    obs = np.zeros((1, 3), np.float32)
    np.testing.assert_array_equal(agent.predict(obs), reference.predict(obs))


def test_damaged_agent_dirs_give_clear_errors(state_agent, tmp_path):
    import shutil

    with pytest.raises(FileNotFoundError, match="agent directory not found"):
        load_agent(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an agent directory"):
        load_agent(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(state_agent, broken)
    (broken / MODEL_ZIP).write_bytes(b"PK truncated")
    with pytest.raises(CheckpointError, match="cannot read model file"):
        load_agent(broken)
    (broken / AGENT_JSON).write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_agent(broken)
    (broken / AGENT_JSON).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a gmc-rl agent description"):
        load_agent(broken)


def test_weights_of_another_architecture_are_refused(state_agent, tmp_path):
    agent = load_agent(state_agent)
    venv = agent.make_vec_env()
    bigger = build_algorithm("sac", venv, {"policy_kwargs": {"net_arch": [32, 32]}}, seed=0, tensorboard_log=None,
                             device="cpu")
    with pytest.raises(CheckpointError, match="do not fit a SAC"):
        load_model_weights(bigger, state_agent / MODEL_ZIP)
    venv.close()


# -- output directory rules and resume -------------------------------------------------------------------------


def test_non_empty_output_needs_resume_and_the_same_setup(state_agent):
    with pytest.raises(ConfigError, match="not empty; pass resume=True"):
        train_agent(tiny_config(), "state", 0, state_agent, progress_bar=False)
    with pytest.raises(ConfigError, match="different setup.*seed: 0 -> 1"):
        train_agent(tiny_config(), "state", 1, state_agent, resume=True, progress_bar=False)
    # resuming a finished agent with the same total is a no-op
    before = (state_agent / MODEL_ZIP).read_bytes()
    assert train_agent(tiny_config(), "state", 0, state_agent, resume=True, progress_bar=False) == state_agent
    assert (state_agent / MODEL_ZIP).read_bytes() == before


def test_encoder_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="uses no encoder"):
        train_agent(tiny_config(), "state", 0, tmp_path / "a", encoder_dir=tmp_path, progress_bar=False)
    with pytest.raises(ConfigError, match="needs a pretrained encoder checkpoint directory \\(--gmc DIR\\)"):
        train_agent(tiny_config(), "gmc", 0, tmp_path / "b", progress_bar=False)
    with pytest.raises(ConfigError, match="dqn.*Discrete"):
        train_agent(tiny_config(algo="dqn", hyperparams={"learning_starts": 0}), "state", 0, tmp_path / "c",
                    progress_bar=False)
    assert not (tmp_path / "c").exists(), "nothing is written before the setup is validated"


class _Interrupt(BaseCallback):
    """Stop training like Ctrl-C does, once ``at`` steps are done."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise KeyboardInterrupt
        return True


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "state"
    config = tiny_config(total=300, checkpoint_freq=1000, eval_freq=100)
    with pytest.raises(KeyboardInterrupt):
        train_agent(config, "state", 0, out, progress_bar=False, callbacks=[_Interrupt(170)])
    info = json.loads((out / AGENT_JSON).read_text())
    assert info["status"] == "training" and info["num_timesteps"] == 170
    assert latest_checkpoint(out / "checkpoints")["num_timesteps"] == 170
    with pytest.raises(CheckpointError, match="has not finished training.*--resume"):
        load_agent(out)

    seen = []

    class Record(BaseCallback):
        def _on_training_start(self):
            seen.append(self.model.num_timesteps)
            seen.append(self.model.replay_buffer.pos)

        def _on_step(self):
            return True

    train_agent(config, "state", 0, out, resume=True, progress_bar=False, callbacks=[Record()])
    assert seen[0] == 170, "training continues from the checkpoint, not from 0"
    # SB3 runs callbacks before it stores the step's transition, so a checkpoint taken in a callback holds the
    # transitions of every step but the last one.
    assert seen[1] == 170 - 1, "the replay buffer is restored"
    info = json.loads((out / AGENT_JSON).read_text())
    assert info["status"] == "complete" and info["num_timesteps"] == 300
    evaluations = json.loads((out / "eval" / "evaluations.json").read_text())
    assert evaluations["timesteps"] == [100, 200, 300], "evaluations keep their schedule across the resume"
    assert load_agent(out).method == "state"
    # a longer total continues the finished run further
    longer = tiny_config(total=400, checkpoint_freq=1000, eval_freq=100, hyperparams=config.agent.hyperparams)
    train_agent(longer, "state", 0, out, resume=True, progress_bar=False)
    assert json.loads((out / AGENT_JSON).read_text())["num_timesteps"] == 400
    assert len(list((out / "tb").iterdir())) == 1, "TensorBoard continues the same run"


def test_interrupt_inside_a_gradient_update_is_not_saved(tmp_path, monkeypatch):
    """A KeyboardInterrupt that lands inside SAC's gradient step (a cancelled Ray task, SIGTERM) can leave Adam's
    state half initialised: it is not saved, and the rerun resumes from the last periodic checkpoint."""
    from stable_baselines3 import SAC

    real_train = SAC.train
    calls = []

    def train_then_interrupt_midway(self, *args, **kwargs):
        real_train(self, *args, **kwargs)
        calls.append(self.num_timesteps)
        if self.num_timesteps == 270:  # as if interrupted after Adam created exp_avg but before exp_avg_sq
            for state in self.actor.optimizer.state.values():
                state.pop("exp_avg_sq")
            raise KeyboardInterrupt

    out = tmp_path / "state"
    config = tiny_config(total=300, checkpoint_freq=250)
    monkeypatch.setattr(SAC, "train", train_then_interrupt_midway)
    with pytest.raises(KeyboardInterrupt):
        train_agent(config, "state", 0, out, progress_bar=False)
    monkeypatch.setattr(SAC, "train", real_train)
    assert calls and calls[-1] == 270
    assert latest_checkpoint(out / "checkpoints")["num_timesteps"] == 250  # the periodic one, not the broken state
    train_agent(config, "state", 0, out, resume=True, progress_bar=False)  # KeyError 'exp_avg_sq' if it was saved
    assert json.loads((out / AGENT_JSON).read_text())["status"] == "complete"


def test_periodic_checkpoints_hold_every_transition(tmp_path):
    out, seen = tmp_path / "state", {}

    class Peek(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == 150:
                info = latest_checkpoint(out / "checkpoints")
                with np.load(info["folder"] / "replay_buffer.npz") as data:
                    seen.update(step=info["num_timesteps"], rows=len(data["rewards"]))
            return True

    train_agent(tiny_config(total=160, checkpoint_freq=100), "state", 0, out, progress_bar=False, callbacks=[Peek()])
    assert seen == {"step": 100, "rows": 100}
    with np.load(out / "checkpoints" / "step_160" / "replay_buffer.npz") as data:
        assert len(data["rewards"]) == 160


def test_raw_agent_on_dict_observations(tmp_path):
    config = tiny_config(total=120, hyperparams={"learning_starts": 100, "batch_size": 8, "buffer_size": 200})
    out = train_agent(config, "raw", 0, tmp_path / "raw", progress_bar=False)
    agent = load_agent(out)
    assert type(agent.model.policy.actor.features_extractor).__name__ == "CombinedExtractor"
    venv = agent.make_vec_env("image", n_envs=2, seed=0)
    obs = venv.reset()
    assert set(obs) == {"image", "sound"} and not obs["sound"].any()
    assert agent.predict(obs).shape == (2, 1)
    venv.close()


def test_method_hyperparams_change_only_their_method(tmp_path):
    """agent.method_hyperparams gives the raw agent its own CNN; the stored agent reloads with it, and the
    identity (what a resumed run must match) of every other method is what it was without the key."""
    raw_network = {"policy_kwargs": {"features_extractor_class": "multimodal",
                                     "features_extractor_kwargs": {"cnn": "compact", "cnn_output_dim": 32},
                                     "share_features_extractor": True}}
    config = tiny_config(total=120, hyperparams={"learning_starts": 100, "batch_size": 8, "buffer_size": 200},
                         method_hyperparams={"raw": raw_network})
    assert config.agent.hyperparams_for("raw")["policy_kwargs"] == {"net_arch": [16], **raw_network["policy_kwargs"]}
    assert config.agent.hyperparams_for("gmc") == config.agent.hyperparams
    plain = tiny_config(total=120, hyperparams={"learning_starts": 100, "batch_size": 8, "buffer_size": 200})
    assert agent_identity(config.agent, "state") == agent_identity(plain.agent, "state") == {
        key: value for key, value in to_dict(plain.agent).items()
        if key not in ("method_hyperparams", "vec_env", "distill_from", "distill_rounds", "distill_steps",
                       "action_fit_rounds", "action_fit_steps", "action_fit_epochs", "action_fit_check_episodes")}
    assert agent_identity(config.agent, "raw") != agent_identity(plain.agent, "raw")

    agent = load_agent(train_agent(config, "raw", 0, tmp_path / "raw", progress_bar=False))
    extractor = agent.model.policy.actor.features_extractor
    assert type(extractor.extractors["image"]).__name__ == "CompactCNN" and extractor.features_dim == 32 + 12
    assert extractor is agent.model.policy.critic.features_extractor
    with pytest.raises(ConfigError, match="cannot resume .* with a different setup \\(hyperparams: "):
        train_agent(plain, "raw", 0, tmp_path / "raw", resume=True, progress_bar=False)


@pytest.mark.parametrize("section, message", [
    ({"rwa": {}}, "config key 'agent.method_hyperparams': unknown method 'rwa'; valid: .* Did you mean 'raw'?"),
    ({"raw": [1]}, "agent.method_hyperparams.raw.*must be a mapping of hyperparameters"),
    ({"raw": {"gamma": 2}}, "agent.method_hyperparams.raw.gamma.*must be a number in \\[0, 1\\]"),
])
def test_method_hyperparams_are_checked(section, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(method_hyperparams=section)


def test_raw_dqn_agent_on_three_modalities(tmp_path):
    config = from_dict(ExperimentConfig, {"env_id": "gmc_rl/CartPoleSensors-v0", "agent": {
        "algo": "dqn", "total_timesteps": 100, "eval_freq": 0, "checkpoint_freq": 50, "device": "cpu",
        "hyperparams": {"learning_starts": 80, "batch_size": 8, "buffer_size": 200}}})
    agent = load_agent(train_agent(config, "raw", 0, tmp_path / "raw", progress_bar=False))
    assert agent.modalities == ["image", "joints", "sound"]
    venv = agent.make_vec_env("image+joints", n_envs=2, seed=0)
    obs = venv.reset()
    assert not obs["sound"].any() and obs["joints"].any()
    actions = agent.predict(obs)
    assert actions.shape == (2,) and set(actions.tolist()) <= {0, 1}
    venv.close()


def test_dict_replay_buffer_round_trip(tmp_path):
    venv = make_method_vec_env("raw", ENV, {}, "complete", n_envs=2, seed=0)
    config = tiny_config(total=40, hyperparams={"learning_starts": 1000, "buffer_size": 50})
    model = build_algorithm("sac", venv, config.agent.hyperparams, seed=0, tensorboard_log=None, device="cpu")
    model.learn(30)
    save_replay_buffer(model.replay_buffer, tmp_path / "buffer.npz")
    other = build_algorithm("sac", venv, config.agent.hyperparams, seed=1, tensorboard_log=None, device="cpu")
    load_replay_buffer(other.replay_buffer, tmp_path / "buffer.npz")
    a, b = model.replay_buffer, other.replay_buffer
    assert (a.pos, a.full) == (b.pos, b.full) == (15, False)
    for key in ("image", "sound"):
        np.testing.assert_array_equal(a.observations[key], b.observations[key])
        np.testing.assert_array_equal(a.next_observations[key], b.next_observations[key])
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    small = build_algorithm("sac", venv, {"buffer_size": 10}, seed=0, tensorboard_log=None, device="cpu")
    with pytest.raises(CheckpointError, match="holds 15 rows, not between 0 and this buffer's 5"):
        load_replay_buffer(small.replay_buffer, tmp_path / "buffer.npz")
    _crafted_buffers_are_refused_before_unpacking(other.replay_buffer, tmp_path)
    venv.close()


def _crafted_buffers_are_refused_before_unpacking(buffer, tmp_path):
    """Before, every array was unpacked before its shape was compared: a header claiming 10**12 rows made numpy
    allocate 16 TB (a raw MemoryError), and members a buffer does not have were ignored."""
    import io
    import zipfile

    def rewrite(name, header=None, extra=None):
        out = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(tmp_path / "buffer.npz") as source, zipfile.ZipFile(out, "w") as target:
            for info in source.infolist():
                data = source.read(info)
                if header is not None and info.filename == "actions.npy":
                    stream = io.BytesIO()
                    np.lib.format.write_array_header_1_0(stream, header)
                    data = stream.getvalue()  # the header alone: the claimed data is not there
                target.writestr(info.filename, data)
            if extra:
                stream = io.BytesIO()
                np.save(stream, np.zeros(3))
                target.writestr(extra, stream.getvalue() if extra.endswith(".npy") else b"notes")
        return out

    huge = rewrite("huge", header={"descr": "<f4", "fortran_order": False, "shape": (10**12, 1, 2)})
    with pytest.raises(CheckpointError, match=r"array 'actions' has shape \(1000000000000, 1, 2\), expected"):
        load_replay_buffer(buffer, huge)
    with pytest.raises(CheckpointError, match="member 'notes.txt' is not an array"):
        load_replay_buffer(buffer, rewrite("notes", extra="notes.txt"))
    with pytest.raises(CheckpointError, match=r"holds arrays \['spare'\] that a replay buffer does not have"):
        load_replay_buffer(buffer, rewrite("spare", extra="spare.npy"))


@pytest.mark.slow
def test_state_sac_agent_learns_to_swing_up(tmp_path):
    """End to end: SAC on the true state of PendulumSound learns the swing-up (random actions: about -6 per step)."""
    config = from_dict(ExperimentConfig, {"env_id": ENV, "agent": {
        "algo": "sac", "total_timesteps": 8000, "eval_freq": 0, "checkpoint_freq": 4000, "device": "cpu",
        "hyperparams": {"learning_starts": 500, "policy_kwargs": {"net_arch": [64, 64]}}}})
    agent = load_agent(train_agent(config, "state", 0, tmp_path / "state", progress_bar=False))
    venv = agent.make_vec_env("complete", n_envs=4, seed=100)
    obs, total, steps = venv.reset(), 0.0, 0
    for _ in range(300):
        obs, rewards, _, _ = venv.step(agent.predict(obs))
        total, steps = total + float(rewards.sum()), steps + len(rewards)
    venv.close()
    print(f"state SAC, 8000 steps: mean per-step reward {total / steps:.3f} (4 episodes)")
    assert total / steps > -2.0, f"mean per-step reward {total / steps:.2f}"


def test_a_loaded_agent_takes_any_plain_tensor_and_a_boolean_determinism(state_agent):
    """Before, a tensor that requires grad or holds bfloat16 reached SB3 and failed there; deterministic="no" was
    read as True."""
    agent = load_agent(state_agent)
    for observation in (torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 3, dtype=torch.bfloat16),
                        torch.zeros(3, dtype=torch.float64)):
        assert np.asarray(agent.predict(observation)).shape[-1] == 1
    for flag in ("no", None, 1):
        with pytest.raises(ConfigError, match="deterministic must be True or False"):
            agent.predict(np.zeros(3, np.float32), deterministic=flag)
    assert agent.predict(np.zeros(3, np.float32), deterministic=np.bool_(False)).shape == (1,)


def test_a_killed_agent_is_said_to_have_reached_its_last_checkpoint(state_agent, tmp_path):
    """agent.json's count is written only when training stops cleanly; a SIGKILL leaves 0 there."""
    copy = tmp_path / "killed"
    shutil.copytree(state_agent, copy)
    info = json.loads((copy / "agent.json").read_text())
    (copy / "agent.json").write_text(json.dumps({**info, "status": "training", "num_timesteps": 0}))
    with pytest.raises(CheckpointError, match=r"has not finished training \(last checkpoint at 300 of 300 steps\)"):
        load_agent(copy)
