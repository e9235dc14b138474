"""results.png: the loss against complete observations per method and condition (dot and 95 % interval, a point
per agent x evaluation-seed pair), the episode return on a scale fitted to the data, labels and a legend outside."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from gmc_rl.results import build_results, condition_losses, plot_results, pool_runs, results_figure


def evaluation(seed: int, returns: dict[str, list[float]]) -> dict:
    """One agent's evaluation: for each condition the episodes of one evaluation seed (100 steps each)."""
    return {condition: {"per_seed": [{"seed": seed, "returns": values, "lengths": [100] * len(values)}]}
            for condition, values in returns.items()}


@pytest.fixture
def results() -> dict:
    # gmc: two agents, complete -100 and -200; with the image alone -110 (10 % worse) and -200 (0 %).
    gmc = pool_runs([
        ("gmc-seed0", evaluation(0, {"complete": [-99.0, -101.0], "image": [-109.0, -111.0],
                                     "sound": [-100.0, -100.0]})),
        ("gmc-seed1", evaluation(1, {"complete": [-199.0, -201.0], "image": [-199.0, -201.0],
                                     "sound": [-220.0, -220.0]})),
    ])
    # raw: one agent, loses 900 % with the image alone.
    raw = pool_runs([("raw-seed0", evaluation(0, {"complete": [-100.0, -102.0, -98.0],
                                                 "image": [-1000.0, -980.0, -1020.0], "sound": [-101.0]}))])
    return build_results({"gmc": gmc, "raw": raw}, env_id="gmc_rl/PendulumSound-v0",
                         settings={"episodes": 2, "seeds": [0, 1]}, agents={"gmc": ["a", "b"], "raw": ["c"]})


def test_losses_per_pair_with_a_t_interval(results):
    losses = condition_losses(results)
    image = losses["gmc"]["image"]
    assert image["units"] == pytest.approx([10.0, 0.0]) and image["n"] == 2
    assert image["loss"] == pytest.approx(5.0)
    assert image["half_width"] == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(50.0) / math.sqrt(2))
    assert losses["gmc"]["sound"]["units"] == pytest.approx([0.0, 10.0])
    assert "complete" not in losses["gmc"]


def test_one_pair_gets_the_delta_method_interval_of_the_two_episode_intervals(results):
    entry = condition_losses(results)["raw"]["image"]
    assert entry["units"] == pytest.approx([900.0]) and entry["n"] == 1
    complete = results["results"]["raw"]["complete"]["episode_return"]
    image = results["results"]["raw"]["image"]["episode_return"]
    expected = 100 * math.hypot(image["half_width"] / 100.0, image["mean"] * complete["half_width"] / 100.0 ** 2)
    assert entry["half_width"] == pytest.approx(expected)


def test_figure_shows_the_losses_with_labels_and_the_legend_outside(results):
    figure = results_figure(results)
    loss_ax, return_ax = figure.axes
    assert "loss of mean episode return" in loss_ax.get_ylabel()
    assert return_ax.get_ylabel() == "mean episode return"
    for ax in (loss_ax, return_ax):
        assert ax.get_xlabel().startswith("sensors at evaluation")
    assert [t.get_text() for t in loss_ax.get_xticklabels()] == ["image", "sound"]
    assert [t.get_text() for t in return_ax.get_xticklabels()] == ["complete", "image", "sound"]
    # the dots are the losses (errorbar containers in method order)
    losses = condition_losses(results)
    for container, method in zip(loss_ax.containers, ("gmc", "raw")):
        dots = container.lines[0].get_ydata()
        assert list(dots) == pytest.approx([losses[method][c]["loss"] for c in ("image", "sound")])
    assert loss_ax.get_yscale() == "symlog"  # 900 % and 5 % on one axis
    # the returns are dots and whiskers on an axis fitted to them (margins only): no bars hanging from zero
    assert not return_ax.patches
    ends = []
    for per_condition in results["results"].values():
        for summary in per_condition.values():
            interval = summary["episode_return"]
            ends += [interval["mean"] - (interval["half_width"] or 0), interval["mean"] + (interval["half_width"] or 0)]
            ends += [unit["episode_return"] for unit in summary["per_seed"]]
    low, high = return_ax.get_ylim()
    margin = 0.06 * (max(ends) - min(ends))
    assert min(ends) - margin < low < min(ends) and max(ends) < high < max(ends) + margin
    caption = figure._suptitle.get_text()
    assert "2 episodes per agent" in caption and "pairs: gmc 2, raw 1" in caption
    figure.canvas.draw()
    (legend,) = figure.legends
    box = legend.get_window_extent()
    for ax in figure.axes:
        assert not box.overlaps(ax.get_window_extent())  # the legend covers no data
    assert [t.get_text() for t in legend.get_texts()] == ["gmc", "raw"]


def test_small_losses_keep_a_linear_axis_and_png_renders(results):
    del results["results"]["raw"]
    results["methods"] = ["gmc"]
    figure = results_figure(results)
    assert figure.axes[0].get_yscale() == "linear"
    assert figure.axes[0].get_ylim()[1] > 10  # the 10 % line is in view
    assert plot_results(results).startswith(b"\x89PNG")


def test_without_complete_results_only_the_returns_are_drawn(results):
    for method in results["methods"]:
        del results["results"][method]["complete"]
    results["conditions"] = ["image", "sound"]
    figure = results_figure(results)
    assert len(figure.axes) == 1 and figure.axes[0].get_ylabel() == "mean episode return"


def test_tensorboard_gets_the_results_as_hparams_with_the_config(results, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from gmc_rl.results import write_tensorboard

    config = {"env_id": "gmc_rl/PendulumSound-v0", "agent": {"algo": "sac", "total_timesteps": 30000,
                                                              "hyperparams": {"gamma": 0.98}}, "seeds": [0, 1]}
    log_dir = write_tensorboard(results, tmp_path / "tb", config=config)
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["agent.algo"].string_value == "sac"
    assert hparams["agent.total_timesteps"].number_value == 30000
    assert hparams["agent.hyperparams.gamma"].number_value == 0.98
    assert hparams["settings.episodes"].number_value == 2
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {"hparams/loss/gmc/image", "hparams/loss/raw/sound", "hparams/return/gmc/complete"} <= metrics
    scalars = {tag: events.Scalars(tag)[0].value for tag in events.Tags()["scalars"]}
    assert scalars["hparams/loss/gmc/image"] == pytest.approx(5 / 150, rel=1e-6)  # pooled: -155 against -150


def test_docstring_examples_run():
    import doctest

    import gmc_rl.results
    import gmc_rl.results_losses

    for module in (gmc_rl.results, gmc_rl.results_losses):  # flat_hparams; condition_losses
        result = doctest.testmod(module)
        assert result.attempted >= 1 and result.failed == 0
