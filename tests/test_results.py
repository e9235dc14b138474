"""Tests of the results files (gmc_rl.results): JSON, Markdown tables, PNG plot, pooling of agents."""

from __future__ import annotations

import copy
import json
import math

import pytest

from gmc_rl.errors import ConfigError
from gmc_rl.evaluate import summarize
from gmc_rl.results import (
    build_results,
    format_estimate,
    load_results,
    markdown_report,
    markdown_table,
    pool_runs,
    write_results,
)


def evaluation(offset: float, seeds=(0, 1)) -> dict:
    """An evaluate_conditions-shaped result with fixed episodes (100-step episodes)."""
    out = {}
    for k, condition in enumerate(["complete", "image", "sound"]):
        units = [({"seed": s}, [offset - 100 * k - 10 * s - i for i in range(4)], [100] * 4) for s in seeds]
        out[condition] = summarize(units)
    return out


@pytest.fixture
def results():
    gmc = pool_runs([("gmc-seed0", evaluation(-100.0)), ("gmc-seed1", evaluation(-120.0))])
    raw = pool_runs([("raw-seed0", evaluation(-300.0))])
    return build_results({"gmc": gmc, "raw": raw}, env_id="gmc_rl/Test-v0",
                         settings={"episodes": 4, "seeds": [0, 1]}, agents={"gmc": ["a", "b"], "raw": ["c"]})


def test_pool_runs_makes_agent_seed_units():
    pooled = pool_runs([("a", evaluation(-1.0)), ("b", evaluation(-2.0))])
    units = pooled["complete"]["per_seed"]
    assert [(u["agent"], u["seed"]) for u in units] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert pooled["complete"]["episodes"] == 16
    assert pooled["complete"]["across_seeds"]["per_step_reward"]["n"] == 4


def test_pool_runs_keeps_condition_order_and_partial_conditions():
    first = evaluation(-1.0)
    second = {"sound": evaluation(-2.0)["sound"]}
    pooled = pool_runs([("a", first), ("b", second)])
    assert list(pooled) == ["complete", "image", "sound"]
    assert pooled["complete"]["episodes"] == 8 and pooled["sound"]["episodes"] == 16


def test_build_results_orders_and_metadata(results):
    assert results["methods"] == ["gmc", "raw"]
    assert results["conditions"] == ["complete", "image", "sound"]
    assert results["format"] == "gmc-rl-results" and results["env_id"] == "gmc_rl/Test-v0"
    with pytest.raises(ValueError):
        build_results({})


def test_format_estimate():
    assert format_estimate(-1.23456, 0.0523) == "-1.235 ± 0.052"
    assert format_estimate(-1234.5, 12.3) == "-1234 ± 12"
    assert format_estimate(-0.5, None) == "-0.500"
    assert format_estimate(1.0, 0.0) == "1.00 ± 0"


def test_markdown_tables(results):
    table = markdown_table(results, "per_step_reward")
    lines = table.splitlines()
    assert lines[0] == "| method | complete | image | sound |"
    assert lines[2].startswith("| gmc | ") and lines[3].startswith("| raw | ")
    mean = results["results"]["gmc"]["complete"]["per_step_reward"]["mean"]
    assert f"{mean:.2f}"[:4] in lines[2]
    report = markdown_report(results)
    assert "Mean per-step reward" in report and "Mean episode return" in report
    assert "spread over seeds" in report and "relative to complete" in report
    with pytest.raises(ValueError):
        markdown_table(results, "nonsense")


def test_missing_cell_is_a_dash(results):
    del results["results"]["raw"]["sound"]
    assert markdown_table(results).splitlines()[3].endswith("| – |")


def test_write_and_load_results(tmp_path, results):
    paths = write_results(results, tmp_path / "eval")
    assert sorted(paths) == ["json", "md", "png"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["md"].read_text().startswith("# Robustness of gmc, raw on gmc_rl/Test-v0")
    loaded = load_results(tmp_path / "eval")
    assert loaded["results"]["gmc"]["image"]["per_step_reward"]["mean"] == pytest.approx(
        results["results"]["gmc"]["image"]["per_step_reward"]["mean"])
    for method in loaded["methods"]:
        for summary in loaded["results"][method].values():
            assert math.isfinite(summary["per_step_reward"]["mean"])
    assert not list((tmp_path / "eval").glob(".tmp-*"))


def test_an_interrupted_write_leaves_the_earlier_results_whole(tmp_path, results, monkeypatch):
    """Before, Ctrl-C while the figure was drawn left the new results.json/md beside the earlier results.png."""
    import gmc_rl.results as results_module

    out = tmp_path / "eval"
    write_results(results, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    changed = copy.deepcopy(results)
    changed["results"]["gmc"]["image"]["per_step_reward"]["mean"] += 1.0

    def interrupted(_):
        raise KeyboardInterrupt

    monkeypatch.setattr(results_module, "plot_results", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_results(changed, out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_results_without_a_figure_remove_gmc_rls_earlier_figure_only(tmp_path, results):
    out = tmp_path / "eval"
    write_results(results, out)
    write_results(results, out, plot=False)  # the earlier figure would show other numbers: removed
    assert sorted(path.name for path in out.iterdir()) == ["results.json", "results.md"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.png").write_bytes(b"a user's figure")
    write_results(results, mine, plot=False)  # no gmc-rl results.json there: the user's figure stays
    assert (mine / "results.png").read_bytes() == b"a user's figure"


def test_load_results_rejects_other_files(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="not a gmc-rl results file"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{trunc")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nowhere")


def test_robustness_results_reach_tensorboard(results, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gmc_rl.results import write_tensorboard

    log_dir = write_tensorboard(results, tmp_path / "tb")
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    scalars = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    table = results["results"]["gmc"]
    complete, sound = (table[c]["episode_return"]["mean"] for c in ("complete", "sound"))
    assert scalars["robustness_per_step/gmc/sound"] == pytest.approx(table["sound"]["per_step_reward"]["mean"])
    assert scalars["robustness_return/gmc/sound"] == pytest.approx(sound)
    assert scalars["robustness_loss/gmc/sound"] == pytest.approx((complete - sound) / abs(complete))
    assert scalars["robustness_loss/raw/complete"] == pytest.approx(0.0)
    assert {"robustness/table/text_summary", "robustness/check/text_summary"} <= set(events.Tags()["tensors"])


def test_the_check_sees_a_loss_the_per_step_reward_hides():
    """CartPole-like episodes (+1 per step until failure): the per-step reward is 1 however long the agent lasts."""
    from gmc_rl.results import robustness_losses, robustness_summary

    def evaluation_of(lengths: dict[str, list[int]]) -> dict:
        return {condition: summarize([({"seed": 0}, [float(n) for n in ns], ns)]) for condition, ns in lengths.items()}

    runs = pool_runs([("gmc-seed0", evaluation_of({"complete": [180, 182], "image": [57, 58], "sound": [175, 176]}))])
    results = build_results({"gmc": runs}, env_id="x")
    assert {c: results["results"]["gmc"][c]["per_step_reward"]["mean"] for c in ("complete", "image")} == \
        {"complete": 1.0, "image": 1.0}
    losses = robustness_losses(results)
    assert [(item["condition"], round(item["loss"], 3)) for item in losses] == [("image", round(1 - 57.5 / 181, 3))]
    assert "loses 68 % of its mean episode return under 'image'" in robustness_summary(results)
