"""Weak answers to bad input found by a red-team pass, each fixed for its whole class.

Every case here once got a misleading message (a FIFO called "a file", a directory inside an agent called "not
finished"), a raw error, or left something behind. Each test covers one class (every kind of path, every
spelling) and runs in seconds: no training. The tests are rows 122-131 of the catalogue in docs/reliability.md.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gmc_rl import io
from gmc_rl.cli import main
from gmc_rl.io import ensure_writable_dir, wrong_path

ENV = "gmc_rl/PendulumSound-v0"


@pytest.fixture
def kinds(tmp_path, monkeypatch):
    """One path of every kind under the working directory: ``fifo``, ``sock``, ``file``, ``folder``, ``broken``
    (a link to nowhere) and ``loop`` (a link to itself); ``/dev/null`` is the device."""
    monkeypatch.chdir(tmp_path)
    os.mkfifo("fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    Path("file").write_text("x")
    Path("folder").mkdir()
    Path("broken").symlink_to(tmp_path / "nowhere")
    Path("loop").symlink_to("loop")
    yield tmp_path
    server.close()


# ----------------------------------------------------------------------------------------------------------------
# Paths: every kind is named by what it is.

KIND_NAMES = {"fifo": "a FIFO (named pipe)", "sock": "a socket", "/dev/null": "a character device",
              "file": "a regular file", "folder": "a directory", "broken": "a broken symbolic link (to ",
              "loop": "a symbolic link loop"}


@pytest.mark.parametrize("name", list(KIND_NAMES))
def test_every_path_kind_is_named_by_what_it_is(kinds, capsys, name):
    """Before, a FIFO, a socket and a device given as an output directory were each called "a file", and as an
    input file "not a regular file or directory (a FIFO, socket or device)", whatever they were."""
    says = KIND_NAMES[name]
    if name != "folder":
        with pytest.raises(PermissionError, match=f"{name}: {name} is {says}".replace("(", r"\(").replace(")", r"\)")):
            ensure_writable_dir(name, "dataset directory")
        with pytest.raises(PermissionError, match=f"{name} is {says}".replace("(", r"\(").replace(")", r"\)")):
            ensure_writable_dir(f"{name}/sub", "dataset directory")
        assert main(["collect", "--out", name, "--collect.steps", "10"]) == 2
        err = capsys.readouterr().err
        assert f"{name} is {says}" in err and "is a file," not in err, err
        assert says in wrong_path(name, "thing")
    if name not in ("file", "broken", "loop"):
        expected = "a file" if name == "folder" else "a regular file"
        assert wrong_path(name, "thing", "file") == f"thing {name} is {says}, not {expected}"
    assert io.path_kind(name).startswith(says)
    assert io.path_kind("missing") is None


# ----------------------------------------------------------------------------------------------------------------
# Config files.


@pytest.mark.parametrize("flag", ["--config", "--config=", "--pretrain"])
def test_a_config_that_is_a_broken_link_names_the_link_and_its_target(kinds, capsys, flag):
    """Before, "config file not found: broken.yaml", as if nothing were there."""
    Path("broken.yaml").symlink_to(kinds / "gone" / "cfg.yaml")
    argv = ["pretrain", *([flag + "broken.yaml"] if flag.endswith("=") else [flag, "broken.yaml"]), "--out", "p"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"broken.yaml is a broken symbolic link (to {kinds / 'gone' / 'cfg.yaml'}); point the link at a YAML " \
           "file or pass the file itself" in err, err
    assert main(["pipeline", "--config", "loop"]) == 2
    assert "loop is a symbolic link loop" in capsys.readouterr().err
    assert not Path("p").exists()


# ----------------------------------------------------------------------------------------------------------------
# The files an artifact must hold: one that is there but not a regular file is named, not called missing.


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """A dataset, a GMC checkpoint and a tiny finished agent (64 steps, no gradient step), written once."""
    import gymnasium as gym
    from helpers import PAIR_ID, SMALL_MODEL, pair_config

    from gmc_rl.agents import train_agent
    from gmc_rl.checkpoint import save_gmc
    from gmc_rl.collect import collect
    from gmc_rl.config import AgentConfig, ExperimentConfig
    from gmc_rl.model import GMCModel

    root = tmp_path_factory.mktemp("weak_answers")
    model = GMCModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    config = ExperimentConfig(agent=AgentConfig(
        algo="sac", total_timesteps=64, eval_freq=0, checkpoint_freq=32, device="cpu",
        hyperparams={"learning_starts": 1000, "buffer_size": 200, "policy_kwargs": {"net_arch": [8]}}))
    return {"dataset": collect(pair_config(), root / "data", progress=False),
            "checkpoint": save_gmc(model, root / "gmc", {"env_id": PAIR_ID}),
            "agent": train_agent(config, "state", 0, root / "agent", progress_bar=False)}


def replace_with(path: Path, kind: str) -> str:
    """Replace the file ``path`` by a directory, a FIFO or a broken symbolic link; return how it is named."""
    path.unlink()
    if kind == "directory":
        path.mkdir()
        return "is a directory, not a file"
    if kind == "fifo":
        os.mkfifo(path)
        return r"is a FIFO \(named pipe\), not a regular file"
    path.symlink_to(path.parent / "gone")
    return r"is a broken symbolic link \(to "


def copy_of(source: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / source.name
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("kind", ["directory", "fifo", "broken"])
@pytest.mark.parametrize("artifact, name", [("dataset", "metadata.json"), ("dataset", "train.npz"),
                                            ("checkpoint", "config.json"), ("checkpoint", "model.safetensors"),
                                            ("agent", "agent.json"), ("run", "config.yaml"),
                                            ("state", "trainer_state.pt")])
def test_a_required_file_that_is_not_a_regular_file_is_named_not_missing(artifacts, tmp_path, capsys, kind,
                                                                          artifact, name):
    """Before, a dataset's metadata.json, a checkpoint's config.json or weights, an agent's agent.json, a run's
    config.yaml or a training state that was a directory or a FIFO was reported as missing ("not found",
    "is missing [...]", "not an agent directory (no agent.json)", "does not exist")."""
    from gmc_rl.checkpoint import load_gmc, load_training_state
    from gmc_rl.data import load_dataset
    from gmc_rl.errors import GMCError
    from gmc_rl.run_dir import read_run_config

    if artifact == "run":
        folder = tmp_path / "run"
        folder.mkdir()
        (folder / name).write_text("env_id: gmc_rl/PendulumSound-v0\n")
    elif artifact == "state":
        folder = tmp_path / "last"
        folder.mkdir()
        (folder / name).write_bytes(b"x")
    else:
        folder = copy_of(artifacts[artifact], tmp_path)
    says = replace_with(folder / name, kind)
    load = {"dataset": load_dataset, "checkpoint": load_gmc, "run": read_run_config, "state": load_training_state}
    if artifact == "agent":
        assert main(["evaluate", "--agent", str(folder), "--out", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err
        assert "not an agent directory" not in err and not (tmp_path / "e").exists(), err
        import re

        assert re.search(f"{name} {says}", err), err
        return
    with pytest.raises((GMCError, OSError), match=f"{name} {says}") as raised:
        load[artifact](folder)
    assert "missing" not in str(raised.value) and "does not exist" not in str(raised.value)


@pytest.mark.parametrize("kind", ["directory", "fifo", "broken"])
def test_an_agent_whose_agent_zip_is_not_a_file_is_not_called_unfinished(artifacts, tmp_path, capsys, kind):
    """Before, an agent whose agent.zip was replaced by a directory was "not finished training (64 of 64 steps)",
    with the advice to resume it; in every command that reads an agent (evaluate, train --teacher, train --resume,
    align --agent) and in evaluate_agent called with the agent's directory."""
    from gmc_rl.agent_evaluation import evaluate_agent
    from gmc_rl.agents import load_agent
    from gmc_rl.errors import CheckpointError

    agent = copy_of(artifacts["agent"], tmp_path)
    says = f"agent.zip {replace_with(agent / 'agent.zip', kind)}"
    commands = [["evaluate", "--agent", str(agent), "--out", str(tmp_path / "e")],
                ["train", "--method", "state", "--env", ENV, "--teacher", str(agent), "--out", str(tmp_path / "t")],
                ["train", "--resume", "--out", str(agent)],
                ["align", "--agent", str(agent)]]
    import re

    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(says, err) and "not finished" not in err, (argv, err)
    assert not (tmp_path / "e").exists() and not (tmp_path / "t").exists()
    with pytest.raises(CheckpointError, match=says):
        evaluate_agent(agent, ["complete"], 1, [0], 1, progress=False)
    with pytest.raises(CheckpointError, match=says):  # load_agent itself, called from Python
        load_agent(agent)


# ----------------------------------------------------------------------------------------------------------------
# A refused command leaves no new folder behind.


def test_a_refused_command_leaves_no_new_folder_behind(artifacts, kinds, capsys):
    """Before, ``collect --out NEW --collect.policy nonsense`` left NEW holding only its lock files. A bad value
    is now refused before the folder is made where it can be checked cheaply, and a folder that a command created
    and locked is removed when it is refused with nothing but the lock files in it (a policy of the wrong
    observation space is found only once the envs are built)."""
    from gmc_rl.errors import ConfigError
    from gmc_rl.locking import directory_lock

    policy = artifacts["agent"] / "agent.zip"  # acts on the true state, not on the env's Dict observations
    refused = [["collect", "--out", "new", "--collect.policy", "nonsense"],
               ["collect", "--out", "new/a/b", "--collect.policy", "sac:nonsense.zip"],
               ["collect", "--out", "new", "--collect.policy", "folder"],
               ["collect", "--out", "new/sub", "--collect.policy", str(policy), "--collect.steps", "10"],
               ["pretrain", "--data", "nonsense", "--env", ENV, "--out", "new"],
               ["pretrain", "--data", str(artifacts["dataset"]), "--env", ENV, "--out", "new"],
               ["train", "--method", "state", "--env", ENV, "--out", "new", "--agent.algo", "dqn"],
               ["train", "--method", "gmc", "--env", ENV, "--encoder", "nonsense", "--out", "new"],
               ["evaluate", "--agent", str(artifacts["agent"]), "--out", "new", "--conditions", "nonsense"],
               ["report", "nonsense", "--out", "new"]]
    for argv in refused:
        assert main(argv) == 2, argv
        assert "error:" in capsys.readouterr().err
        assert not Path("new").exists(), (argv, sorted(p.name for p in Path("new").rglob("*")))
    with pytest.raises(ConfigError, match="refused"), directory_lock("new/x/y"):
        raise ConfigError("refused")
    assert not Path("new").exists()
    with pytest.raises(ConfigError), directory_lock("folder"):  # a folder that was there is kept
        raise ConfigError("refused")
    assert Path("folder").is_dir()
    with pytest.raises(ConfigError), directory_lock("new") as locked:  # a folder written in is kept
        (locked / "part.json").write_text("{}")
        raise ConfigError("refused")
    assert (Path("new") / "part.json").is_file()


# ----------------------------------------------------------------------------------------------------------------
# MINARI_DATASETS_PATH.


@pytest.mark.parametrize("value, says", [
    ("file", "'file': file is a regular file, not a directory"),
    ("file/sub", "'file/sub': file/sub lies under file, which is a regular file, not a directory"),
    ("fifo", "'fifo': fifo is a FIFO (named pipe), not a directory"),
    ("broken", "'broken': broken is a broken symbolic link (to "),
    ("", "'' is empty, which names no directory"),
])
def test_a_minari_datasets_path_that_is_no_directory_is_named_with_the_variable(kinds, capsys, monkeypatch, value,
                                                                                   says):
    """Before, a raw "[Errno 17] File exists: 'file'" from Minari, naming neither the variable nor its value."""
    pytest.importorskip("minari")
    from gmc_rl.dataset_sources import load_dataset
    from gmc_rl.errors import ConfigError

    Path("file").write_text("x")
    monkeypatch.setenv("MINARI_DATASETS_PATH", value)
    fix = "set MINARI_DATASETS_PATH to a directory for Minari's datasets, or unset it to use ~/.minari/datasets"
    for argv in (["collect", "--minari", "gmc_rl/weak-v0", "--collect.steps", "10"],
                 ["pretrain", "--data", "minari:gmc_rl/weak-v0", "--out", "p"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"error: MINARI_DATASETS_PATH={says}" in err and fix in err and "Errno" not in err, err
    with pytest.raises(ConfigError, match="MINARI_DATASETS_PATH="):
        load_dataset("minari:gmc_rl/weak-v0")
    assert not Path("p").exists()


# ----------------------------------------------------------------------------------------------------------------
# The modalities argument of encode.


@pytest.mark.parametrize("modalities, says", [
    (b"vec", r"modalities must be a list of names \(str\), got bytes b'vec'; use \['vec'\]"),
    (bytearray(b"vec"), r"got bytearray bytearray\(b'vec'\); use \['vec'\]"),
    ("vec", r"got the string 'vec'; use \['vec'\]"),
    ({"vec"}, r"got set \{'vec'\}; use a list such as \['vec'\]"),
    (frozenset({"vec"}), r"got frozenset .*; use a list such as \['vec'\]"),
    ({"vec": 1}, r"modalities must be a list of names \(str\) .*got dict"),
    (5, r"modalities must be a list of names \(str\) .*got int 5"),
    (["vec", 3], r"modality names must be strings, got int 3 in the list of modalities"),
    (["vec", b"image"], r"modality names must be strings, got bytes b'image' .*; use 'image'"),
    ([None], r"modality names must be strings, got NoneType None"),
    ([["vec"]], r"modality names must be strings, got list \['vec'\]"),
    (["vex"], r"unknown modality 'vex'; available modalities are \['image', 'vec'\]. Did you mean 'vec'\?"),
])
def test_encode_refuses_modalities_of_the_wrong_type_with_what_it_takes(modalities, says):
    """Before, ``encode(obs, modalities=b"vec")`` said "unknown modality 118" (the first byte), a set was used as
    if it were a list, and an int raised a bare TypeError ("'int' object is not iterable")."""
    import gymnasium as gym
    import numpy as np
    from helpers import SMALL_MODEL, TINY_ID

    from gmc_rl.errors import ModalityError
    from gmc_rl.model import GMCModel

    model = GMCModel.from_space(gym.make(TINY_ID).observation_space, SMALL_MODEL)
    obs = {"image": np.zeros((1, 1, 8, 8), np.uint8), "vec": np.zeros((1, 3), np.float32)}
    with pytest.raises(ModalityError, match=says):
        model.encode(obs, modalities=modalities)
    with pytest.raises(ModalityError, match=says):
        model.modality_latents(obs, modalities)
    assert model.encode(obs, modalities=("vec",)).shape == (1, SMALL_MODEL.latent_dim)
    assert model.encode(obs, modalities=np.array(["vec"])).shape == (1, SMALL_MODEL.latent_dim)


# ----------------------------------------------------------------------------------------------------------------
# Reference latents in a low-precision dtype.


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64", "numpy float16"])
def test_unit_reference_latents_pass_the_unit_check_in_every_float_dtype(dtype):
    """Before, bfloat16 latents of unit rows were refused ("row 1 has norm 0.99863"): bfloat16's rounding alone
    moves a unit vector's norm by up to 0.004, more than the 1e-3 allowed. Rows that are not unit vectors are still
    refused in every dtype, with the tolerance named."""
    import gymnasium as gym
    import numpy as np
    import torch
    from helpers import SMALL_MODEL, TINY_ID

    from gmc_rl.errors import ModalityError
    from gmc_rl.model import GMCModel

    model = GMCModel.from_space(gym.make(TINY_ID).observation_space, SMALL_MODEL)
    generator = torch.Generator().manual_seed(0)
    unit = torch.nn.functional.normalize(torch.randn(2000, SMALL_MODEL.latent_dim, generator=generator), dim=-1)

    def as_dtype(latents):
        if dtype.startswith("numpy"):
            return latents.numpy().astype(np.float16)
        return latents.to(getattr(torch, dtype))

    model.set_reference_latents(as_dtype(unit), neighbours=3)
    assert model.single_sensor_rule == "projection"
    obs = {"image": np.zeros((2, 1, 8, 8), np.uint8), "vec": np.zeros((2, 3), np.float32)}
    assert model.encode(obs, ["vec"]).shape == (2, SMALL_MODEL.latent_dim)
    for scale, says in ((1.05, r"norm 1\.0[45]"), (0.9, r"norm 0\.[89]")):
        with pytest.raises(ModalityError, match=rf"must be unit vectors .*{says}.* allowed for .*normalise them"):
            model.set_reference_latents(as_dtype(unit * scale))


# ----------------------------------------------------------------------------------------------------------------
# An empty value says what the flag takes.


@pytest.mark.parametrize("command", ["collect", "pretrain", "align", "train", "evaluate", "pipeline", "report", "envs"])
@pytest.mark.parametrize("spelling", [["--import", ""], ["--import="], ["--import", " "], ["--import= \t"]])
def test_an_empty_value_says_what_the_flag_takes(kinds, capsys, command, spelling):
    """Before, every empty value got the hint for a path ("give a path or value (use . for the current
    directory)"), --import "" too, which takes a module name; and ``--agent.distill_from ""``, which is a value
    (the default: every agent learns by RL), was refused."""
    assert main([command, *spelling]) == 2
    err = capsys.readouterr().err
    assert f"gmc-rl {command}: error: flag --import is given an empty value" in err, err
    assert "give a module name such as mypkg.envs" in err and "give a path" not in err, err
    for argv, says in ((["--env", ""], "give an environment id such as gmc_rl/PendulumSound-v0"),
                       (["--collect.policy="], "give 'random' or the path of an SB3 agent .zip"),
                       (["--pretrain.epochs", ""], "give a value (`--help` lists what --pretrain.epochs takes)"),
                       (["--out", ""], "give a path (use . for the current directory)")):
        assert main(["pretrain", *argv]) == 2
        assert says in capsys.readouterr().err
    assert main(["train", "--agent.distill_from", "", "--print-config"]) == 0
    assert "distill_from: ''" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# A user's results in --out are refused before anything is evaluated.


@pytest.mark.parametrize("name, content", [("results.png", b"\x89PNG\r\n\x1a\n a user's own figure"),
                                           ("results.md", b"my notes\n"), ("results.json", b"{}"),
                                           ("results.png", None)])
def test_a_users_results_in_out_are_refused_before_anything_is_evaluated(artifacts, kinds, capsys, monkeypatch,
                                                                           name, content):
    """Before, ``evaluate --out DIR`` with a user's results.png in DIR ran the whole evaluation (minutes) and was
    refused only when it came to write; report pooled its runs first. Now both refuse at once, with the check
    write_results makes (results.check_earlier_results), and leave DIR as it was."""
    from helpers import fake_run

    import gmc_rl.pipeline

    def never(*args, **kwargs):
        raise AssertionError("evaluated or pooled before --out was checked")

    monkeypatch.setattr(gmc_rl.pipeline, "evaluate_agent", never)
    monkeypatch.setattr(gmc_rl.pipeline, "merge_runs", never)
    out = Path("mine")
    out.mkdir()
    if content is None:
        (out / name).mkdir()  # not even a file
    else:
        (out / name).write_bytes(content)
    before = sorted(p.name for p in out.iterdir())
    fake_run(Path("run"), "gmc-seed0", [1.0, 2.0])
    for argv in (["evaluate", "--agent", str(artifacts["agent"]), "--out", "mine", "--episodes", "1"],
                 ["report", "run", "--out", "mine"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"mine already holds ['{name}'], which gmc-rl did not write" in err and "choose another --out" in err
        assert sorted(p.name for p in out.iterdir()) == before  # no lock files either
