"""Red-team pass six, F6, F7, F11, F12: evaluation seeds whose episodes overlap, align's batch size and chance
level, align flags that do not apply to the chosen mode, and the bracket form of list flags. Each test failed
before its fix."""

from __future__ import annotations

import pytest
from helpers import printed_config

from gmc_rl.cli import main
from gmc_rl.errors import ConfigError


def test_f11_overlapping_evaluation_seeds_are_refused_before_any_episode(tmp_path):
    """`evaluate --seeds 0 1 2 --n-envs 2` ran seed 0's sub-env 1 and seed 1's sub-env 0 both with env seed 1: the
    same episodes twice, pooled as if independent. Seeds closer than the envs per seed (and duplicates) are now
    refused before anything runs; seeds far enough apart, or one env per seed, still run."""
    from gmc_rl.agent_evaluation import evaluate_agent
    from gmc_rl.evaluate import check_disjoint_seeds, evaluate_conditions

    calls = []

    def factory(condition, n_envs, seed):
        calls.append(seed)
        raise AssertionError("no env may be made for overlapping seeds")

    with pytest.raises(ConfigError, match=r"seeds 0 and 1 overlap.*sub-envs 0\.\.1.*at least 2 apart.*--seeds 0 2 4"):
        evaluate_conditions(factory, lambda obs: obs, ["complete"], episodes=4, seeds=[0, 1, 2], n_envs=2,
                            progress=False)
    assert calls == []
    with pytest.raises(ConfigError, match="seed 3 is given twice"):
        check_disjoint_seeds([3, 3], n_envs=1, episodes=5)
    with pytest.raises(ConfigError, match=r"seeds 0 and 9 overlap.*--seeds 0 10"):  # the documented 10 envs
        check_disjoint_seeds([9, 0], n_envs=10, episodes=100)
    check_disjoint_seeds([0, 10, 20], n_envs=10, episodes=100)
    check_disjoint_seeds([0, 1], n_envs=10, episodes=1)  # one episode per seed runs one env each
    # the Python entry point refuses before it loads the agent (a missing directory is never reached)
    with pytest.raises(ConfigError, match="seeds 0 and 1 overlap"):
        evaluate_agent(tmp_path / "no-agent", ["complete"], episodes=4, seeds=[0, 1], n_envs=2)


def test_f11_evaluate_command_refuses_overlapping_seeds_first(tmp_path, capsys):
    """The command names the seeds and a spacing that works before it loads an agent or writes --out."""
    out = tmp_path / "out"
    code = main(["evaluate", "--agent", str(tmp_path / "missing"), "--seeds", "0", "1", "2", "--n-envs", "2",
                 "--episodes", "4", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "evaluation seeds 0 and 1 overlap" in err and "--seeds 0 2 4" in err
    assert "missing" not in err and not out.exists()


@pytest.fixture(scope="module")
def tiny_gmc(tmp_path_factory):
    """A one-epoch GMC model and the dataset it was pretrained on (a few seconds): ``(model_dir, data_dir)``."""
    from helpers import TINY_ID

    root = tmp_path_factory.mktemp("align")
    data, model = root / "data", root / "gmc"
    assert main(["collect", "--env", TINY_ID, "--steps", "80", "--seed", "3", "--n-envs", "2", "--out", str(data),
                 "--quiet"]) == 0
    assert main(["pretrain", "--data", str(data), "--out", str(model), "--epochs", "1", "--quiet", "--latent-dim",
                 "4", "--common-dim", "8", "--head-hidden", "8", "--conv-channels", "4", "--mlp-hidden", "8",
                 "--batch-size", "16", "--checkpoint-every", "1"]) == 0
    return model, data


def test_f6_align_reports_the_batch_size_it_used_and_its_chance_level(tiny_gmc, capsys):
    """`align --batch-size 100000` on a split of a few samples retrieved among them all but printed "batches of
    100000; chance retrieval@1 = 0.000" (and recorded batch_size 100000 in --json), so chance-level retrieval read
    as far above chance. The report now holds the batch it used, and the chance level is one over that."""
    import json

    from gmc_rl.dataset_sources import load_dataset

    model, data = tiny_gmc
    split = len(load_dataset(data).observations("val")["vec"])
    capsys.readouterr()
    assert main(["align", "--model", str(model), "--data", str(data), "--batch-size", "100000"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"batches of {split};" in out and f"chance retrieval@1 = {1 / split:.3f}" in out
    assert f"--batch-size 100000 is more than the {split} samples of the val split" in out
    assert main(["align", "--model", str(model), "--data", str(data), "--batch-size", "100000", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["batch_size"] == split == report["n_samples"]
    assert report["chance_retrieval_at_1"] == pytest.approx(1 / split)
    assert main(["align", "--model", str(model), "--data", str(data), "--batch-size", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_size"] == 4  # a size that fits is kept


def test_f7_align_refuses_flags_its_mode_ignores(tiny_gmc, tmp_path, capsys):
    """`align --agent A --model OTHER --data D --plot P` reported A's own encoder, exit 0, and wrote no plot: the
    dataset flags were silently ignored (and --episodes/--horizon without --agent). Each is now refused, named, in
    one line, before anything is loaded (the agent here does not even exist); a flag at its default counts too."""
    model, data = tiny_gmc
    plot = tmp_path / "x.png"
    assert main(["align", "--agent", str(tmp_path / "no-agent"), "--model", str(model), "--data", str(data),
                 "--plot", str(plot), "--split=val", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-agent" not in err and not plot.exists()
    assert "--model, --data, --split, --plot do not apply with --agent" in err
    assert main(["align", "--model", str(model), "--data", str(data), "--horizon", "100"]) == 2
    assert "--horizon does not apply without --agent" in capsys.readouterr().err


_printed = printed_config


def test_f12_a_bracket_list_means_the_same_as_words_for_every_list_flag(capsys):
    """`--seeds '[010]'` said "write 10", but `--seeds '[10]'` was then refused as "element 1: expected int, got
    [10]", and `--methods '[gmc,state]'` was read as one method "[gmc,state]" ("Did you mean 'state'?"). A flat
    bracket list now means its words, for --seeds, --methods and the short list flags, so the advice works."""
    code, config, err = _printed(capsys, "pipeline", "--seeds", "[010]")
    assert code == 2 and "config key 'seeds[0]': 010 is a leading-zero number" in err and "quote" not in err
    assert _printed(capsys, "pipeline", "--seeds", "[10]")[1]["seeds"] == [10]  # the advice, followed
    code, config, err = _printed(capsys, "pipeline", "--seeds=[0, 10]", "--methods", "[gmc, 'state']")
    assert (code, config["seeds"], config["methods"]) == (0, [0, 10], ["gmc", "state"]), err
    config = _printed(capsys, "evaluate", "--agent", "a", "--conditions", "[complete,sound]", "--seeds", "[0]")[1]
    assert config["evaluate"]["conditions"] == ["complete", "sound"] and config["seeds"] == [0]
    assert _printed(capsys, "pretrain", "--conv-channels", "[4,8]")[1]["pretrain"]["model"]["conv_channels"] == [4, 8]


@pytest.mark.parametrize(("words", "says"), [
    (["[[0]]"], "--seeds [[0]] is not a flat list of values"),
    (["[]"], "--seeds [] lists no value"),
    (["[0,", "1]"], "--seeds [0, is half a list (quote a list that holds spaces)"),
])
def test_f12_a_list_that_is_not_flat_gets_one_line_with_the_accepted_forms(capsys, words, says):
    code, _, err = _printed(capsys, "pipeline", "--seeds", *words)
    assert code == 2 and err.count("\n") == 1
    assert f"config key 'seeds': {says}" in err and "(--seeds 0 10) or as one quoted list (--seeds '[0, 10]')" in err


def test_f12_jsonargparse_list_errors_name_the_element_from_zero(capsys):
    """jsonargparse's 'Parser key "seeds" element 2' (counted from 1) is now config key 'seeds[1]'."""
    code, _, err = _printed(capsys, "pipeline", "--seeds", "0", "abc")
    assert code == 2 and "config key 'seeds[1]': expected int, got abc" in err and "Parser key" not in err
