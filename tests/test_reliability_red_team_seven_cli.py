"""Red-team pass seven, R3, R4, R7, R8: train's several-agent flags, the forms of list flags, evaluation seeds taken
from a config, and a partly deleted agent resume point. Each test failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers import printed_config, tiny_finished_sac_agent, tiny_state_config

from gmc_rl.cli import main


def test_r7_train_refuses_the_pipelines_seeds_and_methods_naming_the_flag_to_use(tmp_path, capsys):
    """`train --seeds 0 1` trained seed 0 only and exited 0; `train --methods state` was ignored and the refusal
    then named 'gmc'. Both are refused before anything is written, naming --seed / --method; --help lists neither."""
    out, config = tmp_path / "agent", tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_state_config("r7")))  # seconds, should the refusal ever be lost
    for argv, flag in ((["--method", "state", "--seeds", "0", "1"], "--seed N"),
                       (["--methods", "state"], "--method M"), (["--method", "state", "--seeds=3"], "--seed N")):
        assert main(["train", "--config", str(config), *argv, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"gmc-rl train makes one agent: give its {flag.split()[0][2:]} with {flag}" in err
        assert "gmc" not in err.replace("gmc-rl", "") and not out.exists()
    try:
        main(["train", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    assert "--seed SEED" in text and "--seeds SEED" not in text and "--methods METHOD" not in text


_printed = printed_config


SEEDS_FORMS = "separated by spaces (--seeds 0 10) or as one quoted list (--seeds '[0, 10]')"
CHANNELS_FORMS = ("separated by spaces (--pretrain.model.conv_channels 8 16) or as one quoted list "
                  "(--pretrain.model.conv_channels '[8, 16]')")


@pytest.mark.parametrize(("argv", "says"), [
    (["--seeds", "{0}"], f"config key 'seeds': --seeds {{0}} is a mapping, not a list; give the values {SEEDS_FORMS}"),
    (["--seeds", "{1:2}"], "--seeds {1:2} is a mapping, not a list"),
    (["--pretrain.model.conv_channels", "{4}"], f"--pretrain.model.conv_channels {{4}} is a mapping, not a list; "
                                                f"give the values {CHANNELS_FORMS}"),
    (["--seeds", '["0"]'], "config key 'seeds[0]': must be an integer, got the quoted text '0', which a config file "
                           f"refuses too; write the numbers without quotes, {SEEDS_FORMS}"),
    (["--seeds", "0", "'1'"], "config key 'seeds[1]': must be an integer, got the quoted text '1'"),
    (["--pretrain.model.conv_channels", '[4, "8"]'], "'pretrain.model.conv_channels[1]': must be an integer, got the "
                                                     "quoted text '8'"),
    (["--seeds", "0", "x"], f"config key 'seeds[1]': expected int, got x; give the values {SEEDS_FORMS}"),
    (["--evaluate.conditions", "[complete,1]"], "expected str, got 1; give the values separated by spaces "
                                                "(--evaluate.conditions complete sound) or as one quoted list"),
])
def test_r3_a_list_flag_refuses_a_mapping_and_a_quoted_number_showing_both_forms(capsys, argv, says):
    """`--seeds '{0}'` was refused with a Python TypeError's text, `--pretrain.model.conv_channels '{4}'` with
    "keys must be strings; quote it" (which cannot help), and `--seeds '["0"]'` was seed 0 though a config file
    refuses `seeds: ["0"]`. Each is refused in one line naming the key, with the forms a list flag takes."""
    code, _, err = _printed(capsys, "pipeline", *argv)
    assert code == 2 and says in err and err.count("\n") == 1
    assert "operand" not in err and "quote it" not in err


def test_r3_dotted_list_flags_take_words_as_the_other_list_flags_do(capsys):
    """`--evaluate.conditions complete sound` was "expected list, got complete" though `--seeds 0 1` and the short
    forms take words; every list flag now takes both forms, meaning the same."""
    code, config, err = _printed(capsys, "pipeline", "--evaluate.conditions", "complete", "sound",
                                 "--pretrain.model.conv_channels", "4", "8", "--seeds", "[0, 10]")
    assert code == 0, err
    assert config["evaluate"]["conditions"] == ["complete", "sound"] and config["seeds"] == [0, 10]
    assert config["pretrain"]["model"]["conv_channels"] == [4, 8]
    assert _printed(capsys, "pipeline", "--evaluate.conditions=sound")[1]["evaluate"]["conditions"] == ["sound"]
    assert _printed(capsys, "pipeline", "--methods", '["gmc"]')[1]["methods"] == ["gmc"]  # text stays text


def test_r8_seeds_taken_from_a_config_are_named_as_the_configs_not_as_evaluation_seeds_given():
    """`evaluate --config experiments/pendulum_sound.yaml` (no --seeds) was refused with "evaluation seeds 0 and 1
    overlap", blaming seeds the user never typed: the config's agent seeds. Given their source, the message names
    the config and its seeds, and the --seeds to pass; seeds given with --seeds keep the earlier words."""
    from gmc_rl.errors import ConfigError
    from gmc_rl.evaluate import check_disjoint_seeds

    config = "--config experiments/pendulum_sound.yaml"
    with pytest.raises(ConfigError) as refused:
        check_disjoint_seeds([0, 1, 2, 3, 4], n_envs=20, episodes=100, source=config)
    message = str(refused.value)
    assert message.startswith(f"the seeds [0, 1, 2, 3, 4] of {config}, used as evaluation seeds (no --seeds "
                              "given): seeds 0 and 1 overlap: with 20 envs per seed")
    assert "evaluation seeds 0 and 1" not in message
    assert message.endswith("pass evaluation seeds at least 20 apart, e.g. --seeds 0 20 40 60 80")
    with pytest.raises(ConfigError, match=r"^evaluation seeds 0 and 1 overlap"):  # typed with --seeds
        check_disjoint_seeds([0, 1], n_envs=2, episodes=4)
    check_disjoint_seeds([0, 1, 2, 3, 4], n_envs=1, episodes=100, source=config)  # one env per seed: disjoint


@pytest.fixture(scope="module")
def finished_agent(tmp_path_factory) -> Path:
    """A tiny finished SAC agent (64 steps, no gradient step) whose checkpoint step_64/ holds its replay buffer."""
    return tiny_finished_sac_agent(tmp_path_factory.mktemp("r4") / "agent")


def _resumed_further(agent: Path, tmp_path: Path, capsys, remove: str) -> tuple[Path, str, dict[str, bytes]]:
    """A copy of ``agent`` without its checkpoint file ``remove``, resumed to 96 steps: (copy, error, its files
    before)."""
    copy = tmp_path / agent.name
    shutil.copytree(agent, copy)
    (copy / "checkpoints" / remove).unlink()
    before = {name: (copy / name).read_bytes() for name in ("agent.zip", "agent.json")}
    assert main(["train", "--resume", "--out", str(copy), "--agent.total_timesteps", "96", "--no-progress"]) == 2
    return copy, capsys.readouterr().err, before


def test_r4_a_missing_checkpoint_index_is_named_with_the_folders_still_there(finished_agent, tmp_path, capsys):
    """After `rm checkpoints/latest.json` a resume said "resume point .../checkpoints is gone" though the folder
    held step_64/. The message names the missing index, the folder it left, and the way on; the agent is kept."""
    copy, err, before = _resumed_further(finished_agent, tmp_path, capsys, "latest.json")
    checkpoints = copy / "checkpoints"
    assert (f"whose checkpoint index {checkpoints / 'latest.json'} is missing ({checkpoints} still holds step_64/; "
            "a checkpoint is resumed only through that index)") in err, err
    assert "is gone" not in err and "Put latest.json back (from a backup of the agent) to resume" in err
    assert {name: (copy / name).read_bytes() for name in before} == before


def test_r4_a_missing_replay_buffer_is_named_as_missing_with_the_way_on(finished_agent, tmp_path, capsys):
    """A deleted step_64/replay_buffer.npz was "cannot read ...: [Errno 2] ...; the file is truncated or
    corrupted", with no way on. It is named as missing, with what needs it and what to do; nothing is written."""
    copy, err, before = _resumed_further(finished_agent, tmp_path, capsys, "step_64/replay_buffer.npz")
    buffer = copy / "checkpoints" / "step_64" / "replay_buffer.npz"
    assert f"{buffer} is missing: the checkpoint index" in err and "holds the replay buffer" in err, err
    assert "truncated" not in err and "Errno" not in err
    assert err.rstrip().endswith("put an intact copy back (from a backup of the agent) to resume, or train a new "
                                 "agent into another --out")
    assert {name: (copy / name).read_bytes() for name in before} == before


def test_r8_the_evaluate_command_names_seeds_taken_from_its_config(tmp_path, capsys):
    """The command passes where the seeds came from: the config's agent seeds when no --seeds is given."""
    config = tmp_path / "cfg.yaml"
    config.write_text("seeds: [0, 1]\nevaluate:\n  n_envs: 10\n  episodes: 10\n")
    assert main(["evaluate", "--agent", str(tmp_path / "agent"), "--config", str(config)]) == 2
    assert f"the seeds [0, 1] of --config {config}, used as evaluation seeds (no --seeds given)" in \
        capsys.readouterr().err
    assert main(["evaluate", "--agent", str(tmp_path / "agent"), "--config", str(config), "--seeds", "0", "1"]) == 2
    assert capsys.readouterr().err.startswith("gmc-rl evaluate: error: evaluation seeds 0 and 1 overlap")


def test_an_unfinished_agent_without_its_checkpoint_index_is_not_started_over(finished_agent, tmp_path, capsys):
    """An agent interrupted after a checkpoint (here: no agent.zip yet) whose checkpoints/latest.json was deleted
    was trained again from step 0 without a word, over its step_<N>/ folders. It is refused as R4's finished one."""
    copy = tmp_path / finished_agent.name
    shutil.copytree(finished_agent, copy)
    (copy / "agent.zip").unlink()  # as a run killed before it finished
    (copy / "checkpoints" / "latest.json").unlink()
    kept = (copy / "checkpoints" / "step_64" / "model.zip").read_bytes()
    assert main(["train", "--resume", "--out", str(copy), "--agent.total_timesteps", "96", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {copy}: its checkpoint index {copy / 'checkpoints' / 'latest.json'} is missing" in err, err
    assert (copy / "checkpoints" / "step_64" / "model.zip").read_bytes() == kept
    assert not (copy / "agent.zip").exists()
