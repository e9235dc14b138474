"""The modality-fit stage (pretrain.modality_fit_epochs): its loss, what it trains, and its place in pretraining."""

import json
import math

import pytest
import torch

from gmc_rl import load_gmc
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig, pretrain_identity
from gmc_rl.data import load_dataset
from gmc_rl.errors import ConfigError
from gmc_rl.loss import modality_fit_loss
from gmc_rl.modality_fit import fit_modality_encoders, modality_cosines
from gmc_rl.model import GMCModel
from gmc_rl.pretrain import pretrain

SMALL = ModelConfig(latent_dim=8, common_dim=16, head_hidden=32, conv_channels=[4, 8], mlp_hidden=[16])


def test_modality_fit_loss_matches_a_hand_computed_value():
    joint = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    angle = math.pi / 3  # the first modality: row 0 exact, row 1 at 60 degrees (cosine 1/2)
    first = torch.tensor([[1.0, 0.0], [math.sin(angle), math.cos(angle)]])
    second = -joint  # opposite: 1 - cos = 2 on both rows
    expected = (0 + 0.5) / 2 + (2 + 2) / 2
    assert float(modality_fit_loss([first, second], joint)) == pytest.approx(expected, rel=1e-6)
    assert float(modality_fit_loss([joint.clone()], joint)) == 0.0


def test_modality_fit_loss_refuses_bad_inputs_naming_them():
    joint = torch.eye(2)
    with pytest.raises(ConfigError, match=r"modality_latents\[1\] has shape \(2, 3\)"):
        modality_fit_loss([joint, torch.zeros(2, 3)], joint)
    with pytest.raises(ConfigError, match="one per modality"):
        modality_fit_loss([], joint)
    with pytest.raises(ConfigError, match="one per modality"):
        modality_fit_loss(joint, joint)


def _config(**pretrain_settings):
    settings = {"epochs": 2, "batch_size": 32, "checkpoint_every": 1, "lr": 3e-3, "model": SMALL,
                "reference_latents": 0, "modality_fit_epochs": 0, **pretrain_settings}
    return ExperimentConfig(env_id="gmc_rl/CartPoleSensors-v0",
                            collect=CollectConfig(steps=320, n_envs=2, val_fraction=0.2, seed=1),
                            pretrain=PretrainConfig(**settings))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return collect(_config(), tmp_path_factory.mktemp("fit") / "data", progress=False)


def _observations(dataset, split):
    return {name: torch.from_numpy(array) for name, array in dataset.observations(split).items()}


def test_the_fit_brings_every_modality_closer_and_leaves_the_complete_latent_alone(data):
    dataset = load_dataset(data)
    torch.manual_seed(0)
    model = GMCModel(dataset.specs, SMALL, dataset.normalization)
    train, val = _observations(dataset, "train"), _observations(dataset, "val")
    joint_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("encoders.")}
    with torch.no_grad():
        complete_before = model.joint_latent(val)
    report = fit_modality_encoders(model, train, val, epochs=8, batch_size=32, lr=3e-3, seed=0, progress=False)
    assert set(report.cosine_after) == set(dataset.specs)
    assert report.cosine_before == pytest.approx(modality_cosines(_unfitted(dataset), val))
    for name in dataset.specs:  # the fit must close at least half of each modality's gap (1 - cosine)
        assert 1 - report.cosine_after[name] < (1 - report.cosine_before[name]) / 2, (name, report.to_json())
    assert report.train_loss[-1] < report.train_loss[0]
    after = model.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in joint_before.items())
    with torch.no_grad():
        assert torch.equal(model.joint_latent(val), complete_before)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def _unfitted(dataset):
    torch.manual_seed(0)
    return GMCModel(dataset.specs, SMALL, dataset.normalization)


def test_pretraining_with_the_fit_records_it_and_keeps_the_complete_path(data, tmp_path):
    plain = load_gmc(pretrain(_config(), data, tmp_path / "plain", progress=False))
    fitted_dir = pretrain(_config(modality_fit_epochs=3), data, tmp_path / "fitted", progress=False)
    fitted = load_gmc(fitted_dir)
    record = fitted.provenance["modality_fit"]
    assert record["epochs"] == 3 and len(record["train_loss"]) == 3
    assert "modality_fit" not in plain.provenance
    for name, after in record["val_cosine_after"].items():
        assert after > record["val_cosine_before"][name], record
    plain_state, fitted_state = plain.state_dict(), fitted.state_dict()
    same = [key for key in plain_state if torch.equal(plain_state[key], fitted_state[key])]
    assert sorted(same) == sorted(key for key in plain_state if not key.startswith("encoders."))
    alignment = json.loads((fitted_dir / "alignment.json").read_text())
    assert alignment["epoch"] == fitted.provenance["epoch"]

    # resuming the finished run runs the steps after the epochs again: the best model, already fitted, is kept
    pretrain(_config(modality_fit_epochs=3), data, tmp_path / "fitted", resume=True, progress=False)
    again = load_gmc(fitted_dir)
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in fitted_state.items())
    assert again.provenance["modality_fit"] == record


@pytest.mark.parametrize("bad", [-1, -5])
def test_a_negative_number_of_fit_epochs_is_refused_naming_the_key(bad):
    with pytest.raises(ConfigError, match="pretrain.modality_fit_epochs"):
        PretrainConfig(modality_fit_epochs=bad)


def test_identity_names_the_fit_only_for_gmc_and_only_when_used():
    # a run without the fit keeps the identity it had before the key existed
    assert "modality_fit_epochs" not in pretrain_identity(PretrainConfig(modality_fit_epochs=0), "gmc")
    assert pretrain_identity(PretrainConfig(), "gmc")["modality_fit_epochs"] == 5  # the default
    assert "modality_fit_epochs" not in pretrain_identity(PretrainConfig(modality_fit_epochs=5), "mvae")


def test_the_pipeline_trains_the_same_agent_with_the_fit_and_the_check_script_reads_it(tmp_path, capsys):
    """The fit leaves the complete latent alone, so the agent trained on it is the same agent (its weights are
    equal); experiments/modality_fit_check.py then evaluates that agent with its encoder fitted once more."""
    from helpers import tiny_config

    from gmc_rl.agents import load_agent
    from gmc_rl.experiments.modality_fit_check import main as check
    from gmc_rl.pipeline import run_pipeline

    env = "gmc_rl/PendulumSound-v0"
    runs = {}
    for epochs in (0, 2):
        config = tiny_config(env, ["gmc"], pretrain={"epochs": 1, "batch_size": 64, "device": "cpu",
                                                     "checkpoint_every": 1, "modality_fit_epochs": epochs})
        runs[epochs] = tmp_path / f"fit{epochs}"
        run_pipeline(config, runs[epochs], progress=False, log=lambda message: None)
    plain, fitted = (load_agent(runs[epochs] / "agents" / "gmc-seed0") for epochs in (0, 2))
    assert "modality_fit" in fitted.encoder.provenance and "modality_fit" not in plain.encoder.provenance
    plain_policy, fitted_policy = plain.model.policy.state_dict(), fitted.model.policy.state_dict()
    assert all(torch.equal(value, fitted_policy[key]) for key, value in plain_policy.items())
    assert not same_encoders(plain.encoder, fitted.encoder)

    out = tmp_path / "check.json"
    assert check([str(runs[2]), "--agents", "0", "--epochs", "1", "--episodes", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["fit"]["val_cosine_after"]) == {"image", "sound"}
    returns = result["agents"]["0"]
    expected = {"complete"} | {f"{which}-mean:{name}" for which in ("original", "fitted")  # no reference latents
                               for name in ("image", "sound")}
    assert set(returns) == expected and all(math.isfinite(value) for value in returns.values())
    assert check(["--summarize", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| 0 | " in table and "- fitted-mean: " in table and "of 2 pairs lose more than 10 %" in table


def same_encoders(first, second):
    a, b = first.state_dict(), second.state_dict()
    return all(torch.equal(a[key], b[key]) for key in a if key.startswith("encoders."))


def test_a_run_stored_before_the_key_existed_is_read_as_made_without_the_fit(data, tmp_path):
    """A config gmc-rl stored for a run (run.json, a run's config.yaml, agent.json) that lacks the key was made
    without the fit; a user's own config without it gets the default."""
    from gmc_rl.cli import main
    from gmc_rl.config import from_dict, stored_config, to_dict

    old = to_dict(_config())
    del old["pretrain"]["modality_fit_epochs"]
    assert stored_config(old).pretrain.modality_fit_epochs == 0
    assert from_dict(ExperimentConfig, old).pretrain.modality_fit_epochs == 5
    assert stored_config({**old, "pretrain": {**old["pretrain"], "modality_fit_epochs": 3}}).pretrain \
        .modality_fit_epochs == 3

    out = pretrain(_config(), data, tmp_path / "old", progress=False)  # made without the fit
    run_file = out / "run.json"
    run = json.loads(run_file.read_text())
    del run["experiment"]["pretrain"]["modality_fit_epochs"]  # as a run.json written before the key existed
    run_file.write_text(json.dumps(run))
    weights = load_gmc(out).state_dict()
    assert main(["pretrain", "--out", str(out), "--resume", "--no-progress"]) == 0  # resumes, not refused
    assert "modality_fit" not in load_gmc(out).provenance
    assert all(torch.equal(value, load_gmc(out).state_dict()[key]) for key, value in weights.items())


def test_a_pipeline_run_and_an_agent_stored_before_the_key_existed_read_as_made_without_the_fit(tmp_path):
    """The other two stored configs: a pipeline run's config.yaml and an agent's agent.json without the key."""
    import yaml
    from helpers import tiny_config

    from gmc_rl.agents import load_agent
    from gmc_rl.config import config_hash
    from gmc_rl.pipeline import read_run_config, run_pipeline

    config = tiny_config("gmc_rl/PendulumSound-v0", ["gmc"], pretrain={"epochs": 1, "batch_size": 64,
                                                                          "device": "cpu", "modality_fit_epochs": 0})
    run_dir = tmp_path / "run"
    run_pipeline(config, run_dir, progress=False, log=lambda message: None)
    run_config = yaml.safe_load((run_dir / "config.yaml").read_text())
    del run_config["pretrain"]["modality_fit_epochs"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config))
    assert read_run_config(run_dir).pretrain.modality_fit_epochs == 0

    agent_file = run_dir / "agents" / "gmc-seed0" / "agent.json"
    info = json.loads(agent_file.read_text())
    del info["config"]["pretrain"]["modality_fit_epochs"]
    info["config_hash"] = config_hash(info["config"])  # as written before the key existed
    agent_file.write_text(json.dumps(info))
    assert load_agent(agent_file.parent).config.pretrain.modality_fit_epochs == 0
