"""``python -m gmc_rl.zoo SCRIPT ARGS``: refusals that need no rl-zoo3 run (the runs are in test_rl_zoo.py)."""

import importlib.util

import pytest

from gmc_rl.zoo import main


@pytest.mark.parametrize("argv", [[], ["../record_video"], ["rl_zoo3.train"], ["no_such_script_here"]])
def test_bad_scripts_exit_2_with_a_message(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: python -m gmc_rl.zoo" in err or "rl_zoo3" in err


def test_help_and_a_missing_script_are_named(capsys):
    assert main(["--help"]) == 0
    assert "SCRIPT" in capsys.readouterr().out
    assert main(["no_such_script_here"]) == 2
    expected = "no script 'no_such_script_here'" if importlib.util.find_spec("rl_zoo3") else "zoo extra"
    assert expected in capsys.readouterr().err


# Packing a latent run: the encoder copied into the run, config.yml pointed at the copy (runs in test_rl_zoo.py).

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import gmc_rl  # noqa: E402,F401  (registers the gmc_rl ids)
from gmc_rl.checkpoint import save_gmc  # noqa: E402
from gmc_rl.config import ModelConfig  # noqa: E402
from gmc_rl.errors import CheckpointError, ConfigError  # noqa: E402
from gmc_rl.model import GMCModel  # noqa: E402
from gmc_rl.zoo import RUN_ENV_VARIABLE, ZooRunLatent, pack_run_encoder, read_run_config  # noqa: E402

ENV_ID = "gmc_rl/PendulumSound-v0"
# What rl-zoo3 writes into a run's config.yml (yaml.dump of an OrderedDict of the hyperparameters).
ZOO_CONFIG = """!!python/object/apply:collections.OrderedDict
- - - batch_size
    - 128
  - - env_wrapper
    - - gmc_rl.wrappers.NonFiniteGuard
      - gmc_rl.wrappers.ModalityDropout:
          p: 0.0
      - gmc_rl.wrappers.GMCLatent:
          checkpoint_or_model: {checkpoint}
          modalities: [image, sound]
  - - policy_kwargs
    - net_arch: !!python/tuple [256, 256]
"""


@pytest.fixture()
def latent_run(tmp_path):
    torch.manual_seed(0)
    model = GMCModel.from_space(gym.make(ENV_ID).observation_space, ModelConfig())
    checkpoint = save_gmc(model, tmp_path / "gmc", {"env_id": ENV_ID})
    params = tmp_path / "logs" / "sac" / "gmc_rl-PendulumSound-v0_1" / "gmc_rl-PendulumSound-v0"
    params.mkdir(parents=True)
    (params / "config.yml").write_text(ZOO_CONFIG.format(checkpoint=checkpoint))
    return checkpoint, params


def test_pack_copies_the_encoder_and_points_the_run_at_it(latent_run, monkeypatch):
    checkpoint, params = latent_run
    encoder = pack_run_encoder(params)
    assert encoder == params / "encoder"
    assert (encoder / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    hyperparams = read_run_config(params / "config.yml")
    assert hyperparams["batch_size"] == 128 and hyperparams["policy_kwargs"] == {"net_arch": [256, 256]}
    assert hyperparams["env_wrapper"][-1] == {"gmc_rl.zoo.ZooRunLatent": {"encoder": "encoder",
                                                                           "modalities": ["image", "sound"]}}
    assert pack_run_encoder(params) is None  # packed once: nothing left to copy
    # The run no longer needs the checkpoint it was trained with.
    (checkpoint / "model.safetensors").unlink()
    monkeypatch.setenv(RUN_ENV_VARIABLE, str(params))
    env = ZooRunLatent(gym.make(ENV_ID), encoder="encoder", modalities=["image", "sound"])
    assert env.observation_space.shape == (10,)


def test_the_run_latent_needs_the_launcher_and_a_folder_name(latent_run, monkeypatch):
    _, params = latent_run
    pack_run_encoder(params)
    monkeypatch.delenv(RUN_ENV_VARIABLE, raising=False)
    with pytest.raises(ConfigError, match="python -m gmc_rl.zoo"):
        ZooRunLatent(gym.make(ENV_ID))
    monkeypatch.setenv(RUN_ENV_VARIABLE, str(params))
    for name in ("../encoder", "/tmp/encoder", "", "..", "a/b"):
        with pytest.raises(ConfigError, match="folder name inside the zoo run"):
            ZooRunLatent(gym.make(ENV_ID), encoder=name)
    monkeypatch.setenv(RUN_ENV_VARIABLE, str(params.parent))  # another folder: no encoder there
    with pytest.raises(CheckpointError, match="checkpoint not found: "):
        ZooRunLatent(gym.make(ENV_ID))


def test_pack_leaves_raw_runs_and_refuses_what_it_cannot_read(latent_run, tmp_path):
    checkpoint, params = latent_run
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "config.yml").write_text(yaml.safe_dump({"env_wrapper": "gmc_rl.wrappers.NonFiniteGuard"}))
    assert pack_run_encoder(raw) is None
    assert not (raw / "encoder").exists()
    # Python objects other than the zoo's OrderedDict and tuples are never constructed.
    (raw / "config.yml").write_text("!!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(ConfigError, match="cannot read the zoo run's"):
        read_run_config(raw / "config.yml")
    for text in ("", "[1, 2]\n", "a: [\n"):
        (raw / "config.yml").write_text(text)
        with pytest.raises(ConfigError):
            pack_run_encoder(raw)
    # A checkpoint that is gone is named; the run's config.yml is left as it was.
    before = (params / "config.yml").read_text()
    (checkpoint / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        pack_run_encoder(params)
    assert (params / "config.yml").read_text() == before and not (params / "encoder").exists()
