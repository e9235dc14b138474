"""The action fit (agent.action_fit_rounds, gmc_rl.agents.action_fit): its loss, what it trains, where it is kept."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import sample_batch, space_m3, tiny_config

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.agents import load_agent, train_agent
from gmc_rl.agents.action_fit import (
    ActionFitSettings,
    action_divergence,
    action_fit_loss,
    check_modalities,
    closed_loop_returns,
    fit_agent,
    gather,
    paired_difference,
    policy_output,
    proper_subsets,
)
from gmc_rl.agents.observations import make_method_vec_env
from gmc_rl.collect import collect
from gmc_rl.config import ExperimentConfig, agent_identity, from_dict, stored_config, to_dict
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.pipeline import _plan
from gmc_rl.pretrain import pretrain

ENV = "gmc_rl/CartPoleSensors-v0"
SMALL = ActionFitSettings(rounds=2, steps=400, epochs=4, lr=3e-3, check_episodes=0)  # the fit alone


def test_action_divergence_matches_hand_computed_values():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # probabilities 1/4, 3/4
    student = torch.tensor([[0.0, 0.0]])  # 1/2, 1/2
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert float(action_divergence("logits", student, teacher)) == pytest.approx(expected, rel=1e-6)
    assert float(action_divergence("logits", teacher + 5.0, teacher)) == pytest.approx(0.0, abs=1e-6)  # shift-free
    actions = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    assert float(action_divergence("action", actions, torch.zeros(2, 2))) == pytest.approx((0.25 + 1.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="unknown policy output kind 'probabilities'"):
        action_divergence("probabilities", student, teacher)


def test_the_loss_on_a_tiny_batch_matches_a_hand_computed_value():
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy

    from gmc_rl.config import ModelConfig
    from gmc_rl.model import GMCModel

    torch.manual_seed(0)
    encoder = GMCModel.from_space(space_m3(), ModelConfig(latent_dim=4, common_dim=8, head_hidden=8,
                                                          conv_channels=[4], mlp_hidden=[8])).eval()
    policy = ActorCriticPolicy(spaces.Box(-1.0, 1.0, (4,)), spaces.Discrete(3), lambda _: 1e-3)
    batch = {name: torch.as_tensor(array) for name, array in sample_batch(space_m3(), 5, seed=2).items()}
    subsets = proper_subsets(list(encoder.modalities))
    loss, terms = action_fit_loss(encoder, policy, batch, subsets)
    with torch.no_grad():
        complete = encoder.joint_latent(batch)
        latents = encoder.modality_latents(batch)

        def probabilities(z):
            return torch.softmax(policy.action_net(policy.mlp_extractor.forward_actor(z)), dim=-1)

        p = probabilities(complete)
        expected_cosine = sum(float((1 - (latents[m] * complete).sum(-1)).mean()) for m in encoder.modalities)
        expected = expected_cosine
        for subset in subsets:
            q = probabilities(torch.stack([latents[m] for m in subset]).mean(0))
            kl = float((p * (p.log() - q.log())).sum(-1).mean())
            assert terms["+".join(subset)] == pytest.approx(kl, rel=1e-4, abs=1e-7)
            expected += kl
    assert terms["cosine"] == pytest.approx(expected_cosine, rel=1e-5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    loss.backward()  # the complete latent and the policy's answer to it are targets: no gradient reaches them
    assert all(p.grad is not None for p in encoder.encoders.parameters())
    assert all(p.grad is None for p in encoder.joint_encoder.parameters())


def test_proper_subsets_are_every_partial_observation():
    assert proper_subsets(["image", "joints", "sound"]) == [
        ["image"], ["joints"], ["sound"], ["image", "joints"], ["image", "sound"], ["joints", "sound"]]
    assert proper_subsets(["image", "sound"]) == [["image"], ["sound"]]
    assert proper_subsets(["image"]) == []


@pytest.mark.parametrize("bad", [{"rounds": -1}, {"steps": 0}, {"epochs": 1.5}, {"batch_size": True},
                                 {"lr": 0.0}, {"lr": float("nan")}, {"check_episodes": -1},
                                 {"check_episodes": 2.0}])
def test_settings_refuse_bad_values_naming_them(bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=f"action fit {name} must be"):
        ActionFitSettings(**bad)


@pytest.mark.parametrize("key, value", [("action_fit_rounds", -1), ("action_fit_steps", 0), ("action_fit_epochs", 0),
                                        ("action_fit_check_episodes", -2)])
def test_config_refuses_bad_action_fit_keys(key, value):
    with pytest.raises(ConfigError, match=f"agent.{key}"):
        from_dict(ExperimentConfig, {"agent": {key: value}})


def test_the_fit_is_not_part_of_the_agents_identity_and_old_agents_read_it_as_off():
    config = ExperimentConfig()
    assert config.agent.action_fit_rounds > 0  # on by default
    changed = from_dict(ExperimentConfig, {"agent": {"action_fit_rounds": 5, "action_fit_steps": 10,
                                                     "action_fit_check_episodes": 0}})
    assert agent_identity(changed.agent, "gmc") == agent_identity(config.agent, "gmc")
    old = to_dict(config)
    del old["agent"]["action_fit_rounds"]
    assert stored_config(old).agent.action_fit_rounds == 0  # an agent stored before the key existed had no fit
    assert from_dict(ExperimentConfig, old).agent.action_fit_rounds == config.agent.action_fit_rounds


def _config():
    return tiny_config(ENV, ["gmc"], agent={"algo": "ppo", "n_envs": 2, "total_timesteps": 2000,
                                            "hyperparams": {"n_steps": 64, "batch_size": 64}},
                       pretrain={"epochs": 2, "modality_fit_epochs": 0, "reference_latents": 0})


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory):
    """A tiny GMC agent (PPO on CartPoleSensors): the tests check that the fit copies its actions, not that it
    balances."""
    root = tmp_path_factory.mktemp("action_fit")
    config = _config()
    data = collect(config, root / "data", progress=False)
    encoder = pretrain(config, data, root / "gmc", progress=False)
    return train_agent(config, "gmc", seed=0, out_dir=root / "agent", encoder_dir=encoder, progress_bar=False)


def _divergences(agent, encoder, seed=7):
    """Action divergence of every proper subset on observations the agent meets (the same ones for any encoder)."""
    venv = make_method_vec_env("raw", agent.env_id, agent.env_kwargs, "complete", 2, seed)
    venv.seed(seed)
    observations = gather(venv, load_agent(agent.path, action_fit=False).encoder, agent.model,
                          proper_subsets(agent.modalities), 300, np.random.default_rng(seed))
    venv.close()
    batch = {name: torch.from_numpy(array) for name, array in observations.items()}
    with torch.no_grad():
        _, terms = action_fit_loss(encoder, agent.model.policy, batch, proper_subsets(agent.modalities))
    return terms


def test_the_fit_brings_the_actions_of_every_subset_closer_and_keeps_the_agent(agent_dir):
    before = load_agent(agent_dir)
    assert not (agent_dir / "action_fit").exists()
    policy_before = {k: v.clone() for k, v in before.model.policy.state_dict().items()}
    target = fit_agent(agent_dir, SMALL, progress=False)
    assert target == agent_dir / "action_fit"
    after = load_agent(agent_dir)
    original = load_agent(agent_dir, action_fit=False)
    unfitted, fitted = _divergences(before, before.encoder), _divergences(before, after.encoder)
    for subset in ["image", "joints", "sound", "image+joints", "image+sound", "joints+sound"]:
        assert fitted[subset] < unfitted[subset] / 2, (subset, unfitted, fitted)
    # the agent and its complete latent are untouched
    assert all(torch.equal(v, after.model.policy.state_dict()[k]) for k, v in policy_before.items())
    raw = make_method_vec_env("raw", after.env_id, after.env_kwargs, "complete", 2, 3)
    raw_obs = raw.reset()
    raw.close()
    with torch.no_grad():
        assert torch.equal(after.encoder.encode(raw_obs), original.encoder.encode(raw_obs))
        assert not torch.equal(after.encoder.encode(raw_obs, ["image"]), original.encoder.encode(raw_obs, ["image"]))
    record = json.loads((target / "config.json").read_text())["provenance"]
    assert record["action_fit"]["settings"]["rounds"] == 2 and len(record["action_fit"]["history"]) == 2
    own = json.loads((agent_dir / "encoder" / "config.json").read_text())["provenance"]
    assert own and {k: record[k] for k in own} == own  # the encoder's own provenance is kept beside the fit


def test_closed_loop_returns_are_those_of_an_own_loop_from_the_same_starts(agent_dir):
    import gymnasium as gym

    agent = load_agent(agent_dir, action_fit=False)
    returns = closed_loop_returns(agent.encoder, agent.model, agent.env_id, agent.env_kwargs, "joints", 3, 50)
    assert returns == closed_loop_returns(agent.encoder, agent.model, agent.env_id, agent.env_kwargs, "joints", 3, 50)
    env = gym.make(agent.env_id, **agent.env_kwargs)
    for index, value in enumerate(returns):
        obs, _ = env.reset(seed=50 + index)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                latent = agent.encoder.encode({k: v[None] for k, v in obs.items()}, ["joints"]).numpy()
            obs, reward, terminated, truncated, _ = env.step(agent.model.predict(latent, deterministic=True)[0][0])
            total, done = total + float(reward), terminated or truncated
        assert value == total
    env.close()


def test_the_check_keeps_a_fitted_modality_only_where_it_acts_at_least_as_well(agent_dir):
    """Two encoders that differ in every modality encoder: whichever is called fitted, each modality ends up with
    the original's weights only where the fitted one does worse beyond chance (paired 95 % interval below 0)."""
    import copy

    agent = load_agent(agent_dir, action_fit=False)
    other = copy.deepcopy(agent.encoder)  # every modality alone gives one latent, so the agent pushes one way
    with torch.no_grad():
        for module in other.encoders:
            for parameter in module.parameters():
                parameter.zero_()
    outcomes = []
    for fitted_source, original in ((agent.encoder, other), (other, agent.encoder)):
        fitted = copy.deepcopy(fitted_source)
        report = check_modalities(fitted, original, agent.model, agent.env_id, agent.env_kwargs, 20, 60)
        assert list(report) == agent.modalities
        for index, modality in enumerate(agent.modalities):
            row = report[modality]
            assert row["difference"] == pytest.approx(row["fitted"] - row["original"])
            assert row["kept"] == (row["difference"] + row["half_width"] >= 0)
            source = fitted_source if row["kept"] else original
            assert all(torch.equal(a, b) for a, b in zip(fitted.encoders[index].state_dict().values(),
                                                           source.encoders[index].state_dict().values()))
        assert all(torch.equal(a, b) for a, b in zip(fitted.head.parameters(), fitted_source.head.parameters()))
        outcomes.append(report)
    for modality in agent.modalities:  # swapping the roles swaps the means; a clear difference swaps the choice
        first, second = outcomes[0][modality], outcomes[1][modality]
        assert (first["fitted"], first["original"]) == (second["original"], second["fitted"])
        assert first["half_width"] == pytest.approx(second["half_width"])
        clear = abs(first["difference"]) > first["half_width"]
        assert (first["kept"] != second["kept"]) if clear else (first["kept"] and second["kept"])
    assert any(abs(row["difference"]) > row["half_width"] for row in outcomes[0].values()), \
        "a test of nothing: no modality differs beyond chance"


def test_paired_difference_matches_scipy():
    from scipy import stats

    after, before = [10.0, 12.0, 9.0, 15.0, 11.0], [8.0, 12.5, 7.0, 10.0, 11.0]
    mean, half_width = paired_difference(after, before)
    differences = np.subtract(after, before)
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    assert mean == pytest.approx(differences.mean()) and half_width == pytest.approx((high - low) / 2, rel=1e-6)
    assert paired_difference([3.0], [5.0]) == (-2.0, 0.0)


def test_a_fit_with_the_same_settings_is_kept_and_another_replaces_it(agent_dir):
    target = fit_agent(agent_dir, SMALL, progress=False)
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert fit_agent(agent_dir, SMALL, progress=False) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    other = ActionFitSettings(rounds=1, steps=100, epochs=1)
    fit_agent(agent_dir, other, progress=False)
    record = json.loads((target / "config.json").read_text())["provenance"]["action_fit"]
    assert record["settings"]["rounds"] == 1


def test_a_fit_that_does_not_belong_to_the_agent_is_refused(agent_dir, tmp_path, capsys):
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "agent"
    shutil.copytree(agent_dir, copy)
    fit_agent(copy, ActionFitSettings(rounds=1, steps=100, epochs=1), progress=False)
    weights = copy / "action_fit" / "model.safetensors"
    tensors = load_file(str(weights))
    head = next(key for key in tensors if key.startswith("head."))
    tensors[head] = tensors[head] + 1.0
    save_file(tensors, str(weights), metadata={"format": "gmc-rl/gmc-checkpoint", "format_version": "1"})
    config = json.loads((copy / "action_fit" / "config.json").read_text())
    from gmc_rl.data import file_sha256

    config["weights_sha256"] = file_sha256(weights)
    (copy / "action_fit" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not keep the complete latent"):
        load_agent(copy)
    assert load_agent(copy, action_fit=False).encoder is not None
    config["provenance"]["action_fit"]["policy_sha256"] = "0" * 64
    (copy / "action_fit" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="fitted to another policy"):
        load_agent(copy)
    (copy / "action_fit" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not an action fit that gmc-rl wrote"):
        load_agent(copy)
    # gmc-rl evaluate uses the fit too, and --no-action-fit reads the encoder the agent was trained on instead
    from gmc_rl.cli import main

    flags = ["evaluate", "--agent", str(copy), "--episodes", "1", "--evaluate.n_envs", "1", "--no-progress",
             "--out", str(tmp_path / "eval")]
    assert main(flags) != 0
    assert "not an action fit that gmc-rl wrote" in capsys.readouterr().err
    assert main([*flags, "--no-action-fit"]) == 0
    assert (tmp_path / "eval" / "results.json").is_file()


def _damage(fit, how):
    """Leave at ``fit`` (an agent's action_fit/, fitted) what ``how`` names."""
    import shutil

    if how == "empty directory":
        shutil.rmtree(fit)
        fit.mkdir()
    elif how == "a file in its place":
        shutil.rmtree(fit)
        fit.write_text("not a fit")
    elif how == "empty config":
        (fit / "config.json").write_text("")
    elif how == "config not an object":
        (fit / "config.json").write_text("[]")
    elif how == "no weights":
        (fit / "model.safetensors").unlink()
    elif how == "empty weights":
        (fit / "model.safetensors").write_bytes(b"")


DAMAGES = ["empty directory", "a file in its place", "empty config", "config not an object", "no weights",
           "empty weights"]
TINY = ActionFitSettings(rounds=1, steps=100, epochs=1, check_episodes=0)


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_fit_is_refused_by_name_and_a_new_fit_replaces_it(agent_dir, tmp_path, how):
    import shutil

    copy = tmp_path / "agent"
    shutil.copytree(agent_dir, copy)
    fit = fit_agent(copy, TINY, progress=False)
    _damage(fit, how)
    with pytest.raises(CheckpointError, match="action_fit"):
        load_agent(copy)
    assert load_agent(copy, action_fit=False).encoder is not None
    assert fit_agent(copy, TINY, progress=False) == fit and fit.is_dir()
    assert load_agent(copy).encoder is not None  # the new fit loads


def test_training_the_agent_further_removes_even_a_damaged_fit(agent_dir, tmp_path):
    import shutil

    copy = tmp_path / "agent"
    shutil.copytree(agent_dir, copy)
    _damage(fit_agent(copy, TINY, progress=False), "a file in its place")
    config = _config()
    longer = from_dict(ExperimentConfig, {**to_dict(config), "agent": {**to_dict(config.agent),
                                                                         "total_timesteps": 2200}})
    train_agent(longer, "gmc", seed=0, out_dir=copy, resume=True, progress_bar=False)
    assert not (copy / "action_fit").exists()


def test_training_the_agent_further_removes_its_fit(agent_dir, tmp_path):
    import shutil

    copy = tmp_path / "agent"
    shutil.copytree(agent_dir, copy)
    fit_agent(copy, ActionFitSettings(rounds=1, steps=100, epochs=1), progress=False)
    config = _config()
    longer = from_dict(ExperimentConfig, {**to_dict(config), "agent": {**to_dict(config.agent),
                                                                         "total_timesteps": 2200}})
    train_agent(longer, "gmc", seed=0, out_dir=copy, resume=True, progress_bar=False)
    assert not (copy / "action_fit").exists()
    load_agent(copy)  # loads with its own encoder


@pytest.mark.parametrize("algo", ["sac", "dqn"])
def test_policy_output_reads_every_kind_of_policy(tmp_path, algo):
    env = "gmc_rl/PendulumSound-v0" if algo == "sac" else ENV
    config = tiny_config(env, ["state"], agent={"algo": algo, "total_timesteps": 120})
    agent = load_agent(train_agent(config, "state", seed=0, out_dir=tmp_path / algo, progress_bar=False))
    states = torch.zeros(3, agent.model.observation_space.shape[0])
    kind, output = policy_output(agent.model.policy, states)
    if algo == "sac":
        assert kind == "action" and output.shape == (3, 1) and float(output.abs().max()) <= 1.0
    else:
        assert kind == "logits" and output.shape == (3, 2)


def test_the_pipeline_fits_gmc_agents_in_a_stage_of_their_own(tmp_path):
    config = tiny_config(ENV, ["gmc", "state"], agent={"action_fit_rounds": 1, "action_fit_steps": 50,
                                                        "action_fit_epochs": 1})
    tasks, agents, evaluations = _plan(config, tmp_path, ["complete"])
    names = [task.label for task in tasks]
    assert "action fit gmc-seed0" in names and not any("action fit state" in name for name in names)
    fit = next(task for task in tasks if task.label == "action fit gmc-seed0")
    assert fit.after == (agents[("gmc", 0)].name,)
    assert fit.stage.output == agents[("gmc", 0)].output / "action_fit"
    assert next(t for t in tasks if t.label == "evaluate gmc-seed0").after == (fit.stage.name,)
    other = tiny_config(ENV, ["gmc", "state"], agent={"action_fit_rounds": 2, "action_fit_steps": 50,
                                                       "action_fit_epochs": 1})
    other_tasks, other_agents, _ = _plan(other, tmp_path, ["complete"])
    assert other_agents[("gmc", 0)].hash == agents[("gmc", 0)].hash  # the agent is not retrained
    assert next(t for t in other_tasks if t.label == "action fit gmc-seed0").stage.hash != fit.stage.hash
    off = tiny_config(ENV, ["gmc", "state"], agent={"action_fit_rounds": 0})
    off_tasks = _plan(off, tmp_path, ["complete"])[0]
    assert not any(task.label.startswith("action fit") for task in off_tasks)

    # The evaluation loads the fit only when the config's fit is on: one left in the agent directory by an earlier
    # run with the fit on is not used when it is off (the last argument of _evaluate).
    def loads_fit(planned, label):
        return next(t for t in planned if t.label == label).work.args[-1]

    assert loads_fit(tasks, "evaluate gmc-seed0") is True and loads_fit(tasks, "evaluate state-seed0") is False
    assert loads_fit(off_tasks, "evaluate gmc-seed0") is False
