"""The loss of mean episode return against complete observations: the robustness check and the plotted losses.

Each (agent, evaluation seed) pair evaluated with every sensor and under a condition is one unit; its loss is
``(R_complete - R_condition) / |R_complete|`` (:func:`gmc_rl.evaluate.relative_loss`). :func:`robustness_losses`
lists the units that lose more than ``LOSS_THRESHOLD`` (the warnings of ``results.md`` and the commands);
:func:`condition_losses` pools the units per method and condition for the figure (:mod:`gmc_rl.results_figure`).
:mod:`gmc_rl.results` re-exports every public name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gmc_rl.evaluate import LOSS_THRESHOLD, format_loss, relative_loss

# ---------------------------------------------------------------------------------------------------------------
# Robustness check: which agents lose more than LOSS_THRESHOLD under a condition.


def _unit_key(unit: Mapping[str, Any]) -> tuple[str, Any]:
    return str(unit.get("agent", "")), unit.get("seed")


def robustness_losses(results: Mapping[str, Any], threshold: float = LOSS_THRESHOLD) -> list[dict[str, Any]]:
    """Every (agent, evaluation seed, condition) whose mean episode return is more than ``threshold`` (a
    fraction) worse than the same agent's with complete observations, worst first.

    The episode return, not the per-step reward: with episodes of fixed length (Pendulum) the two give the same
    loss, but where episodes end early (CartPole's +1 per step until the pole falls, Acrobot's -1 per step until
    the goal) the per-step reward stays the same while the agent fails, and only the return shows it.

    Each item: ``method``, ``agent``, ``seed``, ``condition``, ``complete`` and ``value`` (mean episode returns),
    ``loss`` (fraction of ``|complete|``) and, when the results carry them (``results["diagnostics"]``), the
    agent's transfer ``diagnostics`` for that condition (:mod:`gmc_rl.transfer`).
    """
    table, diagnostics = results["results"], results.get("diagnostics") or {}
    found = []
    for method in results["methods"]:
        complete = table[method].get("complete")
        if complete is None:
            continue
        reference = {_unit_key(unit): unit["episode_return"] for unit in complete["per_seed"]}
        for condition, summary in table[method].items():
            if condition == "complete":
                continue
            for unit in summary["per_seed"]:
                key = _unit_key(unit)
                if key not in reference:
                    continue
                loss = relative_loss(reference[key], unit["episode_return"])
                if loss > threshold:
                    agent = key[0] or method
                    found.append({"method": method, "agent": agent, "seed": key[1], "condition": condition,
                                  "complete": reference[key], "value": unit["episode_return"], "loss": loss,
                                  "diagnostics": diagnostics.get(method, {}).get(agent, {}).get(condition)})
    return sorted(found, key=lambda item: -item["loss"])


def robustness_warnings(results: Mapping[str, Any], threshold: float = LOSS_THRESHOLD) -> list[str]:
    """One plain sentence per agent and condition that loses more than ``threshold`` (see :func:`robustness_losses`)."""
    lines = []
    for item in robustness_losses(results, threshold):
        seed = "" if item["seed"] is None else f", evaluation seed {item['seed']}"
        text = (f"WARNING: {item['agent']} ({item['method']}{seed}) loses {100 * item['loss']:.0f} % of its "
                f"mean episode return under '{item['condition']}': {item['value']:.4g} against {item['complete']:.4g} "
                "with every sensor")
        gaps = item["diagnostics"]
        if gaps:
            text += (f"; its paired short episodes lose {format_loss(gaps['reward_loss'], '.0f')} (closed-loop drift "
                     f"{gaps['drift']:.3f}, latent gap {gaps['latent_gap']:.3f}, action gap {gaps['action_gap']:.3f})")
        lines.append(text + ".")
    return lines


def robustness_summary(results: Mapping[str, Any], threshold: float = LOSS_THRESHOLD) -> str:
    """The warnings of :func:`robustness_warnings`, or one line saying that every agent stays within ``threshold``."""
    lines = robustness_warnings(results, threshold)
    if lines:
        return "\n".join(lines)
    return (f"Every agent stays within {100 * threshold:.0f} % of its complete-observation episode return under "
            "every condition.")


def condition_losses(results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The loss of mean episode return against complete observations, per method and condition (in percent).

    For each (agent, evaluation seed) pair ("unit") that was evaluated both with every sensor and under the
    condition, its loss is ``100 * (R_complete - R_condition) / |R_complete|`` (positive: worse; the robustness
    check's measure, :func:`robustness_losses`). Returned per method and condition (``complete`` left out):
    ``loss`` (the mean of the units' losses), ``half_width`` (the 95 % t-interval over units; with one unit, the
    delta-method interval from the two episode-return intervals, or None without one), ``units`` (each unit's
    loss) and ``n``. A method without ``complete`` results has no entry.

    Example:
        >>> unit = lambda seed, r: {"agent": "a", "seed": seed, "episode_return": r}
        >>> table = {"m": {"complete": {"per_seed": [unit(0, -100.0), unit(1, -200.0)]},
        ...                "image": {"per_seed": [unit(0, -110.0), unit(1, -200.0)]}}}
        >>> entry = condition_losses({"methods": ["m"], "results": table})["m"]["image"]
        >>> entry["units"], entry["loss"], entry["n"]
        ([10.0, 0.0], 5.0, 2)
    """
    from gmc_rl.evaluate import mean_interval

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in results["methods"]:
        per_condition = results["results"][method]
        complete = per_condition.get("complete")
        if complete is None:
            continue
        reference = {_unit_key(unit): unit["episode_return"] for unit in complete["per_seed"]}
        out[method] = {}
        for condition, summary in per_condition.items():
            if condition == "complete":
                continue
            units = [100.0 * relative_loss(reference[_unit_key(u)], u["episode_return"])
                     for u in summary["per_seed"] if _unit_key(u) in reference]
            units = [value for value in units if math.isfinite(value)]
            if not units:
                continue
            interval = mean_interval(units)
            half_width = interval["half_width"]
            if len(units) == 1 and "episode_return" in complete and "episode_return" in summary:
                base, value = complete["episode_return"], summary["episode_return"]
                if base["half_width"] is not None and value["half_width"] is not None and base["mean"] != 0:
                    # delta method for 1 - value/|base|: both intervals' relative widths in quadrature
                    half_width = 100.0 * math.hypot(value["half_width"] / abs(base["mean"]),
                                                    value["mean"] * base["half_width"] / base["mean"] ** 2)
            out[method][condition] = {"loss": interval["mean"], "half_width": half_width, "units": units,
                                      "n": len(units)}
    return out
