"""``gmc-rl report``: one robustness table from the agent evaluations of several pipeline runs."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "pool the agent evaluations of several pipeline run directories into one results table"

EPILOG = """\
examples:
  gmc-rl report runs/pendulum_sound runs/pendulum_sound_raw --out runs/pendulum_sound_all
  gmc-rl report runs/a runs/b --methods gmc raw state --out cmp

Agents of the same method are pooled across the runs into one row (as one run with more seeds would be). Nothing
is re-evaluated: the per-agent evaluations the pipeline wrote (RUN_DIR/eval/runs/*.json) are read.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="pipeline run directories of the same env")
    parser.add_argument("--out", required=True, metavar="DIR", help="where results.json/.md/.png go")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="rows to keep, in this order (default: every method found)")


def run(args: argparse.Namespace) -> int:
    from gmc_rl.agent_evaluation import remove_earlier_videos
    from gmc_rl.commands.common import print_tables
    from gmc_rl.locking import RESULTS_LOCK, directory_lock
    from gmc_rl.pipeline import check_results_out, merge_runs
    from gmc_rl.results import TENSORBOARD_DIR, check_earlier_results, write_results
    from gmc_rl.results_events import remove_results_events

    check_results_out(args.out, "report")
    check_earlier_results(args.out)  # a user's own results.png in --out: refused before the runs are pooled
    results = merge_runs(args.runs, args.methods)
    with directory_lock(args.out, RESULTS_LOCK):  # one report (or evaluate) at a time writes into --out
        paths = write_results(results, Path(args.out))
        # gmc-rl's TensorBoard events and videos of earlier results there (a `gmc-rl evaluate --out`) go with them
        remove_results_events(Path(args.out) / TENSORBOARD_DIR)
        remove_earlier_videos(Path(args.out) / "videos")
    counts = ", ".join(f"{method}: {len(names)} agents" for method, names in results["agents"].items())
    print_tables(results, f"Mean per-step reward on {results['env_id']} (95 % CI; {counts}):")
    print(f"Results: {paths['md']} (.json, .png)")
    return 0
