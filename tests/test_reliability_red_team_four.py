"""Bad input found by the fourth red-team pass, each fixed for its whole class.

Each case was accepted silently with another meaning (a YAML 1.1 number form), accepted without a bound (the
observations an agent's distillation or action fit keeps), or refused with a raw or misleading error. One test per
class, each in seconds: no training. The tests are the rows of the catalogue in docs/reliability.md that name
this file.
"""

from __future__ import annotations

import pytest

from gmc_rl.config import ExperimentConfig
from gmc_rl.errors import ConfigError

ENV = "gmc_rl/PendulumSound-v0"


# ----------------------------------------------------------------------------------------------------------------
# W8: run_pipeline's arguments are checked before anything is written.


@pytest.mark.parametrize(("arguments", "says"), [
    ({"jobs": 1.5}, "jobs must be an integer of at least 1, got float 1.5"),
    ({"jobs": True}, "jobs must be an integer of at least 1, got bool True"),
    ({"jobs": "2"}, "jobs must be an integer of at least 1, got str '2'"),
    ({"config": None}, "config must be an ExperimentConfig (gmc_rl.config.load_config reads one from YAML), got "
                       "NoneType None"),
    ({"config": {"name": "x"}}, "config must be an ExperimentConfig"),
    ({"run_dir": None}, "run_dir must be a path to the run directory, got NoneType None"),
    ({"run_dir": 5}, "run_dir must be a path to the run directory, got int 5"),
    ({"update": "no"}, "update must be True or False, got str 'no'"),
    ({"log": None}, "log must be a function taking one str"),
    ({"address": 6379}, "address must be None or a Ray address"),
])
def test_run_pipeline_checks_its_arguments_before_writing(tmp_path, arguments, says):
    """Before, ``jobs=1.5`` wrote the run directory (marker, config, lock) and then failed with a raw TypeError,
    ``jobs=True`` ran the pipeline with one job, and a None or dict config was an AttributeError."""
    from gmc_rl.pipeline import run_pipeline

    # An env id that does not exist: a wrong argument that slipped through would fail on it instead (quickly).
    call = {"config": ExperimentConfig(env_id="gmc_rl/NoSuchEnv-v0"), "run_dir": tmp_path / "run", "progress": False,
            "log": lambda message: None, **arguments}
    with pytest.raises(ConfigError) as error:
        run_pipeline(call.pop("config"), call.pop("run_dir"), **call)
    assert str(error.value).startswith(says), error.value
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------------------
# B1: YAML 1.1 number forms mean one thing in a file and in a flag, or are refused in both.


def _print_config(capsys, *argv: str) -> tuple[int, str, str]:
    from gmc_rl.cli import main

    try:
        code = main([*argv, "--print_config"])
    except SystemExit as exit_info:  # jsonargparse's way out for a refused flag
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("key", "text", "says"), [
    ("collect.steps", "1:30", "1:30 is a base-60 (sexagesimal) number, which YAML 1.1 reads as 90; write 90"),
    ("collect.seed", "010", "010 is a leading-zero number, which YAML 1.1 reads as octal (8) and a command-line flag "
                            "as decimal (10); write 10 (or 8) without the leading zero"),
    ("collect.steps", "0x1F", "0x1F is a hexadecimal number, which YAML 1.1 reads as 31; write 31"),
    ("collect.steps", "0b11", "0b11 is a binary number, which YAML 1.1 reads as 3; write 3"),
    ("collect.steps", "0o17", "0o17 is a YAML 1.2 octal number, which YAML 1.2 reads as 15 and YAML 1.1 as text"),
    ("pretrain.lr", "1:00", "1:00 is a base-60 (sexagesimal) number, which YAML 1.1 reads as 60; write 60"),
    ("seeds", "0x1F", "0x1F is a hexadecimal number"),
])
def test_yaml_one_one_number_forms_are_refused_in_files_and_flags_alike(tmp_path, capsys, key, text, says):
    """Before, ``steps: 1:30`` in a file was 90 steps, ``seed: 010`` seed 8 and ``seeds: [0x1F]`` seed 31, and the
    flag ``--collect.steps 010`` was 10 while the same text in a file was 8; ``--pretrain.lr 1:00`` was an lr of 60."""
    section, _, name = key.rpartition(".")
    value = f"[{text}]" if key == "seeds" else text
    config = tmp_path / "c.yaml"
    config.write_text(f"{section}:\n  {name}: {value}\n" if section else f"{name}: {value}\n")
    command = "pretrain" if section == "pretrain" else "pipeline"
    code, _, err = _print_config(capsys, command, "--config", str(config), "--out", str(tmp_path / "o"))
    where = f"{key}[0]" if key == "seeds" else key
    assert code == 2 and ("line 1, column" in err or "line 2, column" in err), err
    assert f"config key '{where}': {says}" in err and "quote it" in err, err
    code, _, err = _print_config(capsys, command, f"--{key}", text, "--out", str(tmp_path / "o"))
    assert code == 2 and f"config key '{where}': {says}" in err and err.count("\n") == 1, err
    section_file = tmp_path / "s.yaml"  # the same in a section file (--collect FILE) and an inline mapping
    if section:
        section_file.write_text(f"{name}: {text}\n")
        code, _, err = _print_config(capsys, command, f"--{section}", str(section_file), "--out", str(tmp_path / "o"))
        assert code == 2 and f"config key '{key}': {says}" in err, err
        code, _, err = _print_config(capsys, command, f"--{section}", f"{{{name}: {text}}}", "--out",
                                     str(tmp_path / "o"))
        assert code == 2 and f"config key '{key}': {says}" in err, err
    assert not (tmp_path / "o").exists()


def test_decimal_numbers_and_quoted_text_mean_the_same_in_files_and_flags(tmp_path, capsys):
    """``1e-3`` was text in a file (refused: "must be a number, got '1e-3'") and 0.001 as a flag; and jsonargparse
    parsed the strings inside a mapping again: a file's quoted ``label: "1e3"`` became 1000.0, ``"010"`` 10 and
    ``"off"`` false (a flag's JSON ``{"c": "010"}`` likewise)."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text('pretrain:\n  lr: 1e-3\n  temperature: 1_000\nenv_kwargs: {label: "1e3", c: "010", mode: "off", '
                      'n: 2E+2}\n')
    code, out, err = _print_config(capsys, "pretrain", "--config", str(config), "--out", str(tmp_path / "o"))
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["pretrain"]["lr"] == 0.001 and printed["pretrain"]["temperature"] == 1000.0
    assert printed["env_kwargs"] == {"label": "1e3", "c": "010", "mode": "off", "n": 200.0}
    code, out, err = _print_config(capsys, "pretrain", "--pretrain.lr", "1e-3", "--out", str(tmp_path / "o"),
                                   "--env-kwargs", '{"label": "1e3", "c": "010", "mode": "off", "n": 2E+2}')
    assert code == 0, err
    printed = yaml.safe_load(out)
    assert printed["pretrain"]["lr"] == 0.001
    assert printed["env_kwargs"] == {"label": "1e3", "c": "010", "mode": "off", "n": 200.0}
    # a section file is passed on to the flag parser as YAML: a string that reads as a number stays quoted
    section = tmp_path / "collect.yaml"
    section.write_text('focus_fraction: 0.5\nfocus_reset_options: {label: "1e3", x: 1e-1, seed: "09"}\n')
    code, out, err = _print_config(capsys, "collect", "--collect", str(section), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert yaml.safe_load(out)["collect"]["focus_reset_options"] == {"label": "1e3", "x": 0.1, "seed": "09"}


# ----------------------------------------------------------------------------------------------------------------
# W4: a key given twice in a mapping flag is named as such.


@pytest.mark.parametrize(("command", "flag", "value", "key", "twice"), [
    ("train", "--agent.hyperparams", '{"gamma": 0.9, "gamma": 0.5}', "agent.hyperparams", "gamma"),
    ("train", "--hyperparams", '{"gamma": 0.9, "gamma": 0.5}', "agent.hyperparams", "gamma"),
    ("train", "--env-kwargs", '{"image_size": 64, "image_size": 32}', "env_kwargs", "image_size"),
    ("train", "--agent.method_hyperparams", "{gmc: {gamma: 0.9, gamma: 0.5}}", "agent.method_hyperparams", "gamma"),
    ("collect", "--collect.focus_reset_options", "{x_init: 1, x_init: 2}", "collect.focus_reset_options", "x_init"),
    ("pretrain", "--pretrain.muse.bottom_latent_dims", "{image: 4, image: 8}", "pretrain.muse.bottom_latent_dims",
     "image"),
    ("train", "--agent", '{"total_timesteps": 5, "total_timesteps": 7}', "agent", "total_timesteps"),
])
def test_a_key_given_twice_in_a_mapping_flag_is_named(tmp_path, capsys, command, flag, value, key, twice):
    """Before, ``--agent.hyperparams '{"gamma":0.9,"gamma":0.5}'`` (and ``--env-kwargs`` likewise) was refused as
    "expected dict, got {...}": the strict loader's reason was hidden by jsonargparse."""
    code, _, err = _print_config(capsys, command, flag, value, "--out", str(tmp_path / "o"))
    assert code == 2, err
    assert err.startswith(f"gmc-rl {command}: error: config key '{key}': duplicate key '{twice}' in one mapping (YAML "
                          "would keep only the last)"), err
    assert "expected dict" not in err and "Unable to load" not in err and err.count("\n") == 1, err


# ----------------------------------------------------------------------------------------------------------------
# W9: the help shows types, never a function's repr.


@pytest.mark.parametrize("command", ["collect", "pretrain", "train", "evaluate", "pipeline", "report", "align", "envs"])
def test_help_shows_each_flags_type_not_a_function(capsys, command):
    """Before, ``gmc-rl train --help`` showed the type of ``--verbose`` as ``<function <locals>.<lambda> at 0x...>``
    (jsonargparse's wrapper for a flag with choices)."""
    from gmc_rl.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "<function" not in out and "<lambda>" not in out and " at 0x" not in out, out
    if command == "train":
        assert "SB3 verbosity (type: int, default: 0)" in " ".join(out.split())


# ----------------------------------------------------------------------------------------------------------------
# B3: the observations a distillation or an action fit keeps are bounded when the config is made, and their bytes
# are checked against memory before anything is written.


def test_gathered_observations_are_bounded_and_checked_against_memory(tmp_path, capsys, monkeypatch):
    """Before, ``agent.action_fit_steps`` and ``agent.distill_steps`` had no bound (10**14 was accepted) and no
    memory check: the fit appended every raw observation until the machine ran out of memory, after training (in a
    pipeline, after collection and pretraining too)."""
    from gmc_rl.agents.action_fit import ActionFitSettings
    from gmc_rl.agents.distillation import DistillSettings
    from gmc_rl.config import AgentConfig, limits
    from gmc_rl.pipeline import run_pipeline

    for fields, says in (
            ({"action_fit_steps": 10**14}, "config key 'agent.action_fit_steps': must be at most 100000000 "
                                           "(MAX_GATHERED_STEPS), got 100000000000000"),
            ({"distill_steps": 10**14}, "config key 'agent.distill_steps': must be at most 100000000"),
            ({"distill_rounds": 10**9, "distill_steps": 1000},
             "config key 'agent.distill_steps': agent.distill_rounds x agent.distill_steps = 1000000000 x 1000 = "
             "1000000000000 observations, all kept in memory, must be at most 100000000 (MAX_GATHERED_STEPS)"),
            ({"action_fit_rounds": 10**6, "action_fit_steps": 1000},
             "config key 'agent.action_fit_steps': agent.action_fit_rounds x agent.action_fit_steps = "),
            ({"action_fit_check_episodes": 1000}, "config key 'agent.action_fit_check_episodes': must be at most 256 "
                                                  "(MAX_ENVS)")):
        with pytest.raises(ConfigError) as error:
            AgentConfig(**fields)
        assert str(error.value).startswith(says), error.value
    with pytest.raises(ConfigError, match="MAX_GATHERED_STEPS"):
        ActionFitSettings(steps=10**14)
    with pytest.raises(ConfigError, match="MAX_ENVS"):
        ActionFitSettings(check_episodes=1000)
    with pytest.raises(ConfigError, match="MAX_GATHERED_STEPS"):
        DistillSettings(rounds=2, steps=10**8)
    code, _, err = _print_config(capsys, "train", "--agent.action_fit_steps", "100000000000000", "--out",
                                 str(tmp_path / "o"))
    assert code == 2 and "(MAX_GATHERED_STEPS), got 100000000000000" in err and err.count("\n") == 1, err

    # Within the bound but not within memory: refused from the env's spaces before the run directory is made.
    monkeypatch.setattr(limits, "system_memory", lambda: (8 * 2**30, 4 * 2**30))
    fit = ExperimentConfig(env_id=ENV, agent=AgentConfig(action_fit_rounds=3, action_fit_steps=1_000_000))
    with pytest.raises(ConfigError) as error:
        run_pipeline(fit, tmp_path / "run", progress=False, log=lambda message: None)
    assert str(error.value).startswith(
        "config key 'agent.action_fit_steps': the action fit's observations (3 rounds x 1,000,000 steps of 7.1 KiB, "
        "kept and joined for each refit) needs about 40.5 GiB, more than the limit of 4.0 GiB (memory available now: "
        "4.0 GiB; cap MAX_DATA_BYTES: 64.0 GiB); lower agent.action_fit_steps to at most "), error.value
    distill = ExperimentConfig(env_id=ENV, methods=["state", "gmc"], agent=AgentConfig(
        distill_from="state", action_fit_rounds=0, distill_rounds=10, distill_steps=5_000_000))
    distill.pretrain.model.latent_dim = 4096
    with pytest.raises(ConfigError, match=r"^config key 'agent.distill_steps': the distillation's observations and "
                                          r"teacher actions \(10 rounds x 5,000,000 steps of 16.0 KiB"):
        run_pipeline(distill, tmp_path / "run", progress=False, log=lambda message: None)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------------------------
# W6: Agent.make_vec_env (make_method_vec_env) checks its arguments.


@pytest.mark.parametrize(("n_envs", "seed", "says"), [
    (1.5, 0, "n_envs must be an integer in [1, 256] (MAX_ENVS), got float 1.5"),
    (True, 0, "n_envs must be an integer in [1, 256] (MAX_ENVS), got bool True"),
    ("2", 0, "n_envs must be an integer in [1, 256] (MAX_ENVS), got str '2'"),
    (257, 0, "n_envs must be an integer in [1, 256] (MAX_ENVS), got int 257"),
    (0, 0, "n_envs must be an integer in [1, 256] (MAX_ENVS), got int 0"),
    (1, "0", "seed must be a non-negative integer (env i is seeded with seed + i), got str '0'"),
    (1, True, "seed must be a non-negative integer (env i is seeded with seed + i), got bool True"),
    (1, -1, "seed must be a non-negative integer (env i is seeded with seed + i), got int -1"),
])
def test_make_vec_env_refuses_wrong_types_and_too_many_envs(n_envs, seed, says):
    """Before, ``make_vec_env('complete', 1.5)`` and ``('complete', 1, "0")`` were raw TypeErrors, ``n_envs=True``
    built one env and 257 envs were built although the config's limit is 256."""
    from gmc_rl.agents.observations import make_method_vec_env

    with pytest.raises(ConfigError) as error:
        make_method_vec_env("raw", ENV, {}, "complete", n_envs, seed).close()
    assert str(error.value) == says


def test_a_run_directory_stores_text_that_reads_as_a_number_quoted(tmp_path):
    """A pipeline run's ``config.yaml`` is read back by the strict loader, which reads ``1e3`` as a float: the
    stored config quotes such text (StrictDumper), so a run named "1e3" is the same config when it is continued."""
    from gmc_rl.run_dir import prepare_run_dir, read_run_config

    config = ExperimentConfig(name="1e3", env_kwargs={"label": "2E-5", "code": "09", "octal": "0o17", "n": 1e-3})
    prepare_run_dir(config, tmp_path / "run")
    assert read_run_config(tmp_path / "run") == config


def test_print_config_output_reads_back_as_the_same_config(tmp_path, capsys, monkeypatch):
    """Before, --print_config wrote text such as '1e3' unquoted (yaml.safe_dump), and that output given as
    --config read back as the number 1000.0."""
    from gmc_rl.cli import main
    from gmc_rl.config import load_config

    monkeypatch.chdir(tmp_path)
    kwargs = '{"label": "1e3", "code": "0o17", "n": 1e-3}'
    assert main(["collect", "--env-kwargs", kwargs, "--out", "zz", "--print_config"]) == 0
    (tmp_path / "printed.yaml").write_text(capsys.readouterr().out)
    assert load_config(tmp_path / "printed.yaml").env_kwargs == {"label": "1e3", "code": "0o17", "n": 0.001}
    assert not (tmp_path / "zz").exists()


def test_yaml_one_one_messages_name_what_the_user_wrote(tmp_path, capsys):
    """Before, --seeds '[010]' escaped the number check and was refused as "expected int, got [8]" (a number the
    user never wrote), and 0:30, which YAML 1.1 reads as text, was called a base-60 number to be written '0:30'."""
    from gmc_rl.config import number_problem

    code, _, err = _print_config(capsys, "pipeline", "--seeds", "[010]", "--out", str(tmp_path / "o"))
    assert code == 2 and "config key 'seeds[0]': 010 is a leading-zero number" in err and "[8]" not in err, err
    assert number_problem("0:30") is None and number_problem("1:30") is not None
    code, _, err = _print_config(capsys, "pipeline", "--pretrain.lr", "0:30", "--out", str(tmp_path / "o"))
    assert code == 2 and "expected float, got 0:30" in err and "base-60" not in err, err
