"""Robustness results as files a person can read: ``results.json``, ``results.md`` and ``results.png``.

A results document is a dict (the content of ``results.json``)::

    {
      "format": "gmc-rl-results", "version": 1, "gmc_rl_version": "...", "created": "<ISO time>",
      "env_id": "gmc_rl/PendulumSound-v0",
      "methods": ["gmc", "raw"],                 # table rows, in order
      "conditions": ["complete", "image", ...],  # table columns, in order
      "settings": {"episodes": 100, "n_envs": 10, ...},
      "agents": {"gmc": ["runs/x/agents/gmc-seed0", ...], ...},
      "results": {"gmc": {"complete": <summary>, ...}, ...}
    }

where a ``<summary>`` is what :func:`gmc_rl.evaluate.summarize` returns (pooled metrics with 95 % intervals,
per-seed values and their spread, and the raw episode returns and lengths). Several agents of one method (one per
training seed) are pooled into one row by :func:`pool_runs`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gmc_rl.artifacts import check_results_folder
from gmc_rl.errors import ConfigError
from gmc_rl.evaluate import LOSS_THRESHOLD, format_loss, relative_loss, summarize
from gmc_rl.io import (
    RESULTS_FIGURE,
    UNMARKED,
    png_kind,
    png_not_own,
    write_bytes_atomic,
    write_text_atomic,
)
from gmc_rl.results_figure import plot_results, results_figure  # noqa: F401  (re-exported)
from gmc_rl.results_files import (  # noqa: F401  (re-exported: gmc_rl.results is where callers import them)
    _DIAGNOSTICS,
    _INTERVAL,
    _UNIT,
    FORMAT,
    RECORD_FIELDS,
    RESULTS_FIELDS,
    VERSION,
    check_results,
    check_summary,
    load_results,
    read_evaluation_record,
)
from gmc_rl.results_losses import (  # noqa: F401  (re-exported: gmc_rl.results is where callers import them)
    condition_losses,
    robustness_losses,
    robustness_summary,
    robustness_warnings,
)

METRIC_TITLES = {
    "per_step_reward": "Mean per-step reward",
    "episode_return": "Mean episode return",
}


def pool_runs(runs: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Pool the evaluations of several agents of one method into one summary per condition.

    ``runs`` lists ``(agent_name, evaluation)`` with ``evaluation`` as returned by
    :func:`gmc_rl.evaluate.evaluate_conditions`. Every (agent, evaluation seed) pair becomes one unit, so
    ``across_seeds`` measures the spread over training seeds too. Conditions are kept in first-seen order; a
    condition missing from some agent is pooled over the agents that have it.
    """
    if not runs:
        raise ValueError("pool_runs needs at least one evaluation")
    conditions: list[str] = []
    for _, evaluation in runs:
        conditions.extend(c for c in evaluation if c not in conditions)
    pooled = {}
    for condition in conditions:
        units = []
        for name, evaluation in runs:
            if condition not in evaluation:
                continue
            for unit in evaluation[condition]["per_seed"]:
                units.append(({"agent": name, "seed": unit["seed"]}, unit["returns"], unit["lengths"]))
        pooled[condition] = summarize(units)
    return pooled


def build_results(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    env_id: str | None = None,
    settings: Mapping[str, Any] | None = None,
    agents: Mapping[str, Sequence[str]] | None = None,
    diagnostics: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble a results document from ``{method: {condition: summary}}`` (row and column order kept).

    ``diagnostics`` (optional): ``{method: {agent: {condition: transfer diagnostics}}}`` (:mod:`gmc_rl.transfer`).
    """
    from gmc_rl import __version__

    if not results:
        raise ValueError("no results to write")
    conditions: list[str] = []
    for per_condition in results.values():
        conditions.extend(c for c in per_condition if c not in conditions)
    return {
        "format": FORMAT,
        "version": VERSION,
        "gmc_rl_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "env_id": env_id,
        "methods": list(results),
        "conditions": conditions,
        "settings": dict(settings or {}),
        "agents": {method: [str(a) for a in names] for method, names in (agents or {}).items()},
        "results": {method: dict(per_condition) for method, per_condition in results.items()},
        "diagnostics": {method: dict(per_agent) for method, per_agent in (diagnostics or {}).items()},
    }



def rule_row(method: str, rule: str) -> str:
    """The table row of ``method``'s agents evaluated with the single-sensor encoding rule ``rule``."""
    return f"{method}-{rule}"


def record_rows(record: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(row, evaluation)`` pairs of an agent's evaluation record: its method's row (the encoder's own rule), then
    one :func:`rule_row` per rule of ``record["rules"]`` (``evaluate.encoding_rules``), e.g. ``gmc-mean``."""
    rows = [(str(record["method"]), dict(record["evaluation"]))]
    for rule, evaluation in (record.get("rules") or {}).items():
        rows.append((rule_row(str(record["method"]), str(rule)), dict(evaluation)))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Markdown.


def format_estimate(mean: float, half_width: float | None) -> str:
    """``mean ± half_width`` rounded to the precision of the interval (2 significant digits of the half width)."""
    if half_width is None or half_width == 0 or not math.isfinite(half_width):
        digits = 3 if abs(mean) < 1 else max(0, 3 - int(math.floor(math.log10(abs(mean)))) - 1)
        text = f"{mean:.{digits}f}"
        return text if half_width is None else f"{text} ± 0"
    decimals = max(0, 1 - int(math.floor(math.log10(abs(half_width)))))
    return f"{mean:.{decimals}f} ± {half_width:.{decimals}f}"


def _table(header: str, methods: Sequence[str], conditions: Sequence[str], cell) -> str:
    lines = [f"| {header} | " + " | ".join(conditions) + " |", "|---|" + "---:|" * len(conditions)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(cell(method, c) for c in conditions) + " |")
    return "\n".join(lines)


def markdown_table(results: Mapping[str, Any], metric: str = "per_step_reward", spread: str = "episodes") -> str:
    """A Markdown table (rows methods, columns conditions) of ``metric`` as "mean ± 95 % half width".

    ``spread="episodes"`` uses the interval over all episodes pooled; ``spread="seeds"`` the interval over the
    per-seed means.
    """
    if metric not in METRIC_TITLES:
        raise ValueError(f"unknown metric {metric!r}; valid: {list(METRIC_TITLES)}")
    table = results["results"]

    def cell(method: str, condition: str) -> str:
        summary = table[method].get(condition)
        if summary is None:
            return "–"
        stats = summary[metric] if spread == "episodes" else summary["across_seeds"][metric]
        return format_estimate(stats["mean"], stats["half_width"])

    return _table("method", results["methods"], results["conditions"], cell)


def relative_table(results: Mapping[str, Any], reference: str = "complete",
                   metric: str = "episode_return") -> str | None:
    """Table of the change of ``metric`` relative to the ``reference`` condition, in percent of its magnitude
    (None if no method has the reference). For episodes of fixed length the change of the episode return equals the
    change of the per-step reward; with early termination (e.g. CartPole) only the return shows it."""
    table = results["results"]
    if not any(reference in table[m] for m in results["methods"]):
        return None

    def cell(method: str, condition: str) -> str:
        base = table[method].get(reference)
        summary = table[method].get(condition)
        if base is None or summary is None or base[metric]["mean"] == 0:
            return "–"
        return f"{-100.0 * relative_loss(base[metric]['mean'], summary[metric]['mean']):+.1f} %"

    return _table("method", results["methods"], results["conditions"], cell)


def _max_units(results: Mapping[str, Any]) -> int:
    return max(
        (len(summary["per_seed"]) for per in results["results"].values() for summary in per.values()), default=0
    )


TENSORBOARD_DIR = "tb"


def _hparam_value(value: Any) -> Any:
    """A value TensorBoard's hparams plugin takes (bool, int, float or str); lists, dicts and None as JSON."""
    import json

    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def flat_hparams(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys with hparams values: ``{"agent": {"algo": "sac"}}`` -> ``{"agent.algo": "sac"}``.

    Example:
        >>> flat_hparams({"env_id": "e", "agent": {"algo": "sac", "hyperparams": {}}, "seeds": [0, 1]})
        {'env_id': 'e', 'agent.algo': 'sac', 'agent.hyperparams': '{}', 'seeds': '[0, 1]'}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out.update(flat_hparams(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = _hparam_value(value)
    return out


def write_tensorboard(results: Mapping[str, Any], log_dir: str | os.PathLike,
                      config: Mapping[str, Any] | None = None) -> Path:
    """Write the robustness results as TensorBoard data into ``log_dir``; return it.

    Scalars (step 0), per method and condition: ``robustness_per_step/<method>/<condition>`` the mean per-step
    reward, ``robustness_return/<method>/<condition>`` the mean episode return, and
    ``robustness_loss/<method>/<condition>`` the return's loss against the same method with every sensor (a
    fraction: 0.1 = 10 % worse; the robustness check's measure). Text: ``robustness/table`` (the per-step reward
    table) and ``robustness/check`` (the agents that lose more than 10 %, or the line saying none does).

    Hparams (TensorBoard's HPARAMS tab, one row per results directory, so that runs and their configs can be
    compared side by side): the env id, the evaluation settings and, when given, every key of ``config`` (the
    experiment config as a dict, dotted keys) as hyperparameters; as metrics ``hparams/loss/<method>/<condition>``
    and ``hparams/return/<method>/<condition>``. Open with ``tensorboard --logdir <log_dir>``, or with the parent
    folder of several runs' ``eval/tb`` to compare them.

    The event files of earlier results that gmc-rl wrote into ``log_dir`` are replaced (TensorBoard would show
    both results' values at step 0); a user's files there stay (:mod:`gmc_rl.results_events`).
    """
    from gmc_rl.results_events import replace_results_events

    return replace_results_events(log_dir, lambda staging: _write_events(results, staging, config))


def _write_events(results: Mapping[str, Any], log_dir: Path, config: Mapping[str, Any] | None) -> None:
    """Write :func:`write_tensorboard`'s scalars, texts and hparams into the empty folder ``log_dir``."""
    from torch.utils.tensorboard import SummaryWriter  # torch only when TensorBoard data is written

    writer = SummaryWriter(str(log_dir))
    try:
        for method in results["methods"]:
            table = results["results"][method]
            complete = table.get("complete", {}).get("episode_return", {}).get("mean")
            for condition, summary in table.items():
                value = summary["episode_return"]["mean"]
                writer.add_scalar(f"robustness_per_step/{method}/{condition}", summary["per_step_reward"]["mean"], 0)
                writer.add_scalar(f"robustness_return/{method}/{condition}", value, 0)
                if complete is not None:
                    writer.add_scalar(f"robustness_loss/{method}/{condition}", relative_loss(complete, value), 0)
        writer.add_text("robustness/table", markdown_table(results, "per_step_reward"), 0)
        writer.add_text("robustness/check", robustness_summary(results), 0)
        hparams = {"env_id": str(results.get("env_id") or ""), "methods": _hparam_value(list(results["methods"])),
                   **flat_hparams(results.get("settings") or {}, "settings."), **flat_hparams(config or {})}
        metrics: dict[str, float] = {}
        for method in results["methods"]:
            table = results["results"][method]
            complete = table.get("complete", {}).get("episode_return", {}).get("mean")
            for condition, summary in table.items():
                metrics[f"hparams/return/{method}/{condition}"] = float(summary["episode_return"]["mean"])
                if complete is not None and condition != "complete":
                    metrics[f"hparams/loss/{method}/{condition}"] = relative_loss(complete, summary["episode_return"]
                                                                                 ["mean"])
        writer.add_hparams(hparams, metrics, run_name=".")
    finally:
        writer.close()


def markdown_report(results: Mapping[str, Any]) -> str:
    """The whole ``results.md``: per-step reward and episode return tables, seed spread, change vs complete."""
    settings = results.get("settings", {})
    env = results.get("env_id") or "the environment"
    units = _max_units(results)
    parts = [
        f"# Robustness of {', '.join(results['methods'])} on {env}",
        "",
        "Rows are methods, columns are sensor conditions at evaluation time (agents were trained on complete "
        "observations). Cells are the mean ± the half width of the 95 % confidence interval (Student t) over all "
        "evaluation episodes pooled across seeds"
        + (f"; {settings['episodes']} episodes per seed" if "episodes" in settings else "")
        + (f", seeds {settings['seeds']}" if "seeds" in settings else "")
        + ".",
        "",
        f"## {METRIC_TITLES['per_step_reward']} (total reward / total steps)",
        "",
        markdown_table(results, "per_step_reward"),
        "",
        f"## {METRIC_TITLES['episode_return']}",
        "",
        markdown_table(results, "episode_return"),
    ]
    if units > 1:
        parts += [
            "",
            "## Mean per-step reward, spread over seeds",
            "",
            "Mean of the per-seed (agent x evaluation seed) means ± the half width of their 95 % t-interval.",
            "",
            markdown_table(results, "per_step_reward", spread="seeds"),
        ]
    relative = relative_table(results)
    if relative is not None and len(results["conditions"]) > 1:
        parts += ["", "## Change of the mean episode return relative to complete observations", "",
                  "Positive is better. With episodes of fixed length this is also the change of the per-step reward.",
                  "", relative]
        parts += ["", "## Robustness check", "",
                  f"Each agent (and evaluation seed) under each condition against itself with every sensor; a loss of "
                  f"more than {100 * LOSS_THRESHOLD:.0f} % of the mean episode return is listed.", "",
                  robustness_summary(results)]
    diagnostics = diagnostics_table(results)
    if diagnostics:
        parts += ["", "## Transfer diagnostics", "",
                  "Measured on the states each agent visits with every sensor (gmc_rl.transfer): latent gap "
                  "||z_S - z_complete||, action gap |pi(z_S) - pi(z_complete)| / half the action range, and, from "
                  "paired short episodes (same start, complete vs S), the closed-loop drift and the reward loss. "
                  "Of these only the reward loss of the paired episodes predicted which agents lose more than 10 % "
                  "(README: robustness).", "", diagnostics]
    return "\n".join(parts) + "\n"


def diagnostics_table(results: Mapping[str, Any]) -> str | None:
    """Markdown table of the transfer diagnostics in ``results["diagnostics"]`` (None if there are none)."""
    rows = []
    for per_agent in (results.get("diagnostics") or {}).values():
        for agent, per_condition in per_agent.items():
            for condition, gaps in per_condition.items():
                rows.append(f"| {agent} | {condition} | {gaps['latent_gap']:.3f} | {gaps['action_gap']:.3f} | "
                            f"{gaps['drift']:.3f} | {format_loss(gaps['reward_loss'])} |")
    if not rows:
        return None
    return "\n".join(["| agent | condition | latent gap | action gap | drift | reward loss (paired) |",
                      "|---|---|---:|---:|---:|---:|", *rows])



def _check_earlier_are_ours(earlier: Mapping[str, Any], out: Path) -> None:
    """Raise ValueError unless the ``results.md`` and ``results.png`` beside gmc-rl's ``results.json`` in ``out``
    are gmc-rl's too: the table's title is the one that ``results.json`` gives, the figure is a PNG gmc-rl marked
    as a results figure (:func:`gmc_rl.io.png_kind`). A user's file that took one of the names, or another gmc-rl
    figure (a latents PCA plot saved there with ``align --plot``), is never overwritten.

    A PNG gmc-rl wrote before its figures said what they show is taken for the results figure it almost surely is:
    it stands at ``results.png`` beside gmc-rl's own ``results.json`` and the table written for it, and every
    evaluation folder made before the marks holds one; refusing them would stop every rerun into such a folder.
    (The plot writers, which cannot tell an old PCA plot from an old results figure, refuse such PNGs.)"""
    table, figure = out / "results.md", out / "results.png"
    if table.exists() or table.is_symlink():
        title = markdown_report(earlier).splitlines()[0]
        first = ""
        try:
            if table.is_file():
                with table.open(encoding="utf-8") as handle:  # the first line only: a huge file is not read whole
                    first = handle.readline(len(title) + 1).removesuffix("\n")
        except UnicodeDecodeError:
            pass
        if table.is_symlink() or first != title:
            raise ValueError(f"{table.name} is not the table gmc-rl wrote for {out / 'results.json'}")
    if (figure.exists() or figure.is_symlink()) and png_kind(figure) not in (RESULTS_FIGURE, UNMARKED):
        raise ValueError(f"{figure.name} {png_not_own(figure, RESULTS_FIGURE)}")


def _result_paths(out: Path, plot: bool) -> dict[str, Path]:
    paths = {"json": out / "results.json", "md": out / "results.md"}
    if plot:
        paths["png"] = out / "results.png"
    return paths


def check_earlier_results(out_dir: str | os.PathLike, plot: bool = True) -> bool:
    """Whether ``out_dir`` holds earlier results of gmc-rl's (True) or none of its ``results.*`` (False); raise a
    ConfigError when it holds a ``results.json``, ``.md`` or ``.png`` that gmc-rl did not write, which
    :func:`write_results` will not overwrite. Cheap (nothing is evaluated): ``gmc-rl evaluate`` and ``report``
    call it before they evaluate or pool anything, so that a user's own ``results.png`` is refused at once, not
    after minutes of evaluation."""
    out = Path(out_dir)
    paths = _result_paths(out, plot)
    existing = sorted(path.name for path in paths.values() if path.exists() or path.is_symlink())
    if not existing:
        return False
    try:
        if not (paths["json"].exists() or paths["json"].is_symlink()):
            raise ValueError("no results.json of gmc-rl's beside them")
        earlier = load_results(paths["json"])
        _check_earlier_are_ours(earlier, out)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{out} already holds {existing}, which gmc-rl did not write ({exc}); they are not overwritten: "
            "choose another --out"
        ) from None
    return True


def write_results(results: Mapping[str, Any], out_dir: str | os.PathLike, plot: bool = True,
                  replace: bool = False) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (with ``plot``) ``results.png`` atomically into ``out_dir``.

    Earlier results are replaced only if they are gmc-rl's (``results.json`` loads as a results file) or
    ``replace`` says so (the pipeline's report stage, which owns its run directory): a user's own ``results.*``
    in ``out_dir`` are never overwritten (ConfigError naming them). Without ``replace``, ``out_dir`` may not be an
    artifact's directory or lie in one of its folders, a pipeline run's ``eval/`` included
    (:func:`gmc_rl.artifacts.check_results_folder`): results put there would stand as the artifact's own.
    """
    if isinstance(out_dir, bytes) or not isinstance(out_dir, (str, os.PathLike)):
        raise ConfigError(f"out_dir must be the path of a folder (str or os.PathLike), got {type(out_dir).__name__} "
                          f"{out_dir!r:.80}")
    out = Path(out_dir)
    check_results(results, "results given to write_results")  # before anything is made: a bad value leaves nothing
    try:
        text = json.dumps(results, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:  # a value JSON cannot hold (a NumPy array, a set...)
        raise ConfigError(f"results given to write_results cannot be written as JSON: {exc}") from None
    if not replace:
        check_results_folder(out_dir, "out_dir", "write_results")
    paths = _result_paths(out, plot)
    earlier_are_ours = replace or check_earlier_results(out, plot)
    # Everything is rendered before the first file is replaced: an interrupt while the figure is drawn (seconds)
    # leaves the earlier results whole, not new tables beside the old figure. The three renames follow each other.
    markdown = markdown_report(results)
    figure = plot_results(results) if plot else None
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(paths["json"], text)
    write_text_atomic(paths["md"], markdown)
    if figure is not None:
        write_bytes_atomic(paths["png"], figure)
    elif earlier_are_ours and (out / "results.png").is_file():  # gmc-rl's earlier figure shows other numbers
        (out / "results.png").unlink()
    return paths
