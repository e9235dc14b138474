"""Long episodes in pipeline results: how many episodes of each agent ran over a step count, and its return without
them, beside the same seed's agent of another method.

On an env that pays -1 per step until it succeeds (AcrobotSensors), one failed episode of 20 moves a mean by about
20 %: this separates a controller that is slower on every start from one that fails on a few. Reads the
per-episode returns and lengths that a pipeline ``results.json`` keeps for the complete-observation condition::

    python experiments/long_episodes.py --against state --over 200 \\
        experiments/results/distill_tau01_latent32/grid/acrobot*/results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path


def episodes(path: Path, method: str) -> dict[str, tuple[list[float], list[int]]]:
    """Agent -> (episode returns, episode lengths) with every sensor, from a pipeline ``results.json``."""
    rows = json.loads(path.read_text())["results"][method]["complete"]["per_seed"]
    return {row["agent"]: ([float(r) for r in row["returns"]], [int(n) for n in row["lengths"]]) for row in rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="pipeline results.json files")
    parser.add_argument("--method", default="gmc", help="the row of a results.json (default gmc)")
    parser.add_argument("--against", default="state", help="the method compared with (default state)")
    parser.add_argument("--over", type=int, default=200, help="an episode longer than this is long (default 200)")
    args = parser.parse_args(argv)
    counts = {args.method: [0, 0], args.against: [0, 0]}  # method -> [long episodes, episodes]
    worst_mean = worst_median = 0.0
    for path in args.files:
        theirs = {agent.rsplit("-", 1)[-1]: run for agent, run in episodes(path, args.against).items()}
        for agent, (returns, lengths) in episodes(path, args.method).items():
            other_returns, other_lengths = theirs[agent.rsplit("-", 1)[-1]]
            kept = [r for r, n in zip(returns, lengths) if n <= args.over]
            mean_ratio = statistics.mean(kept) / statistics.mean(other_returns)
            median_ratio = statistics.median(returns) / statistics.median(other_returns)
            worst_mean, worst_median = max(worst_mean, mean_ratio), max(worst_median, median_ratio)
            for method, steps in ((args.method, lengths), (args.against, other_lengths)):
                counts[method][0] += sum(n > args.over for n in steps)
                counts[method][1] += len(steps)
            print(f"{path} {agent}: {len(returns) - len(kept)} of {len(returns)} episodes over {args.over} steps "
                  f"(longest {max(lengths)}; {args.against}'s longest {max(other_lengths)}); mean without them "
                  f"{statistics.mean(kept):.1f} against {statistics.mean(other_returns):.1f} (ratio {mean_ratio:.3f}),"
                  f" median ratio {median_ratio:.3f}")
    for method, (long, total) in counts.items():
        print(f"{method}: {long} of {total} episodes over {args.over} steps")
    print(f"worst ratio without long episodes {worst_mean:.3f}; worst median ratio {worst_median:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
