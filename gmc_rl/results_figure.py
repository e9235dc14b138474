"""The robustness figure of a results document (``results.png``): the loss against every sensor and the mean episode
return, per method and condition.

Drawn with matplotlib's object API (no pyplot: no GUI backend, no global state), imported only when a figure is
made. :mod:`gmc_rl.results` writes the PNG with the other result files and re-exports every public name.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from gmc_rl.evaluate import LOSS_THRESHOLD
from gmc_rl.io import RESULTS_FIGURE, png_metadata
from gmc_rl.results_losses import condition_losses


def _figure_caption(results: Mapping[str, Any]) -> str:
    """What the figure pools: episodes per evaluation, and the (agent, evaluation seed) pairs per method."""
    settings = results.get("settings") or {}
    episodes = settings.get("episodes")
    if isinstance(episodes, Mapping):
        episodes = "/".join(str(value) for value in sorted(set(episodes.values())))
    counts = []
    for method in results["methods"]:
        complete = results["results"][method].get("complete") or next(iter(results["results"][method].values()))
        counts.append(f"{method} {len(complete['per_seed'])}")
    parts = [f"{episodes} episodes per agent, evaluation seed and condition" if episodes else "",
             "agent x evaluation-seed pairs: " + ", ".join(counts)]
    return "\n".join(part for part in parts if part)


def results_figure(results: Mapping[str, Any]) -> Any:
    """The robustness figure (a matplotlib ``Figure``; :func:`plot_results` renders it as PNG).

    Top: the loss of mean episode return against every sensor, per method and condition, as a dot (the mean over
    agent x evaluation-seed pairs) with its 95 % interval and a faint point per pair; the robustness check's 10 %
    line is drawn, and the axis turns logarithmic beyond +-10 % when some loss exceeds 50 % (so a few percent and a
    thousand percent are both visible). Bottom: the mean episode return with its 95 % interval and the per-pair
    means, on a scale fitted to the data (no bars from zero). Axis labels, the episodes and pairs pooled, and a
    legend outside the data.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    methods, conditions = results["methods"], results["conditions"]
    losses = condition_losses(results)
    loss_conditions = [c for c in conditions if c != "complete" and any(c in losses.get(m, {}) for m in methods)]
    panels = (["loss"] if loss_conditions else []) + ["episode_return"]
    width = max(7.0, 0.9 * len(conditions) * max(1, len(methods)) ** 0.5 + 4.0)
    figure = Figure(figsize=(width, 3.3 * len(panels) + 0.9), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    handles: list[Any] = []
    for ax, panel in zip(axes, panels):
        columns = loss_conditions if panel == "loss" else conditions
        panel_handles = _draw_panel(ax, results, losses, panel, columns)
        if panel == panels[0]:
            handles = panel_handles
        _style_axis(ax, panel, columns, losses)
    figure.suptitle(f"{results.get('env_id') or 'robustness'}\n{_figure_caption(results)}", fontsize="medium")
    figure.legend(handles=handles, labels=list(methods), loc="outside right upper", title="method")
    return figure


def _panel_value(results: Mapping[str, Any], losses: Mapping[str, Any], panel: str, method: str,
                 condition: str) -> tuple[float, float | None, list[float]] | None:
    """``(mean, half width, per-pair values)`` of one method and condition in ``panel`` ("loss" or
    "episode_return"); None where the results have no such entry."""
    if panel == "loss":
        entry = losses.get(method, {}).get(condition)
        if entry is None:
            return None
        return entry["loss"], entry["half_width"], entry["units"]
    summary = results["results"][method].get(condition)
    if summary is None:
        return None
    return (summary["episode_return"]["mean"], summary["episode_return"]["half_width"],
            [unit["episode_return"] for unit in summary["per_seed"]])


def _draw_panel(ax: Any, results: Mapping[str, Any], losses: Mapping[str, Any], panel: str,
                columns: Sequence[str]) -> list[Any]:
    """Draw every method's dots, 95 % intervals and faint per-pair points of ``panel`` on ``ax``, side by side within
    each condition's group; return the legend handles (one per method)."""
    methods = results["methods"]
    spread = 0.7
    step = spread / max(1, len(methods))

    def x_of(i: int, j: int) -> float:
        return i - spread / 2 + step * (j + 0.5)

    handles = []
    for j, method in enumerate(methods):
        color = f"C{j % 10}"
        xs, ys, errors, point_x, point_y = [], [], [], [], []
        for i, condition in enumerate(columns):
            value = _panel_value(results, losses, panel, method, condition)
            if value is None:
                continue
            mean, half, units = value
            xs.append(x_of(i, j))
            ys.append(mean)
            errors.append(half if half is not None else 0.0)
            if len(units) > 1:
                point_x.extend([x_of(i, j) + 0.25 * step] * len(units))
                point_y.extend(units)
        if point_x:
            ax.scatter(point_x, point_y, s=9, color=color, alpha=0.35, linewidths=0, zorder=2)
        handles.append(ax.errorbar(xs, ys, yerr=errors, fmt="o", color=color, markersize=5, capsize=3,
                                   elinewidth=1.2, zorder=3, label=method))
    return handles


def _style_axis(ax: Any, panel: str, columns: Sequence[str], losses: Mapping[str, Any]) -> None:
    """Ticks, group separators, grid, labels and title of one panel; the loss panel also gets its zero line, the
    robustness check's threshold line and its scale (logarithmic beyond +-10 % when some loss exceeds 50 %)."""
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([c.replace("+", "+\n") for c in columns], ha="center")  # under their groups
    ax.set_xlim(-0.6, len(columns) - 0.4)
    for boundary in range(1, len(columns)):
        ax.axvline(boundary - 0.5, color="0.85", linewidth=0.6, zorder=0)
    ax.grid(axis="y", alpha=0.3)
    if panel == "loss":
        ax.axhline(0.0, color="black", linewidth=0.7)
        ax.axhline(100 * LOSS_THRESHOLD, color="tab:red", linewidth=0.8, linestyle="--")
        ax.text(len(columns) - 0.45, 100 * LOSS_THRESHOLD, f" {100 * LOSS_THRESHOLD:.0f} % loss", color="tab:red",
                fontsize="x-small", va="bottom", ha="right")
        extreme = max((abs(u) for m in losses.values() for e in m.values() for u in [e["loss"], *e["units"]]),
                      default=0.0)
        if extreme > 50:
            ax.set_yscale("symlog", linthresh=10)
        else:  # the 10 % line stays in view, with room for its label
            low, high = ax.get_ylim()
            ax.set_ylim(low, max(high, 125 * LOSS_THRESHOLD))
        ax.set_ylabel("loss of mean episode return\nagainst every sensor (%)")
        ax.set_title("Loss against complete observations (dot: mean, bar: 95 % interval, faint: each pair)",
                     fontsize="medium")
    else:
        ax.set_ylabel("mean episode return")
        ax.set_title("Mean episode return (dot: pooled episodes, bar: 95 % interval, faint: each pair)",
                     fontsize="medium")
    ax.set_xlabel("sensors at evaluation (every agent trained with all sensors)")


def plot_results(results: Mapping[str, Any]) -> bytes:
    """PNG of :func:`results_figure`: the loss against complete observations and the mean episode return, per
    method and condition, as dots with 95 % intervals and the per-seed points."""
    buffer = io.BytesIO()
    results_figure(results).savefig(buffer, format="png", dpi=110, metadata=png_metadata(RESULTS_FIGURE))
    return buffer.getvalue()
