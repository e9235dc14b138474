"""How long a finished pipeline run would take with N workers, replayed from the stage times it recorded.

Every done-marker (``RUN_DIR/stages/<stage>.json``) holds the seconds its stage took. This script rebuilds the
run's stage graph from its ``config.yaml`` (the pipeline's own plan: which stage reads which), then replays the
pipeline's scheduling rule (a free worker takes the first stage, in plan order, whose inputs are done) with 1, 2, 4,
... workers, each stage lasting what it lasted in the run. It prints the total stage time, the critical path (the
longest chain of stages that must run one after another: no number of workers beats it) and the replayed wall time
per worker count.

This is a projection, not a measurement: a stage's recorded time is what it took under the run's own conditions
(e.g. two stages sharing two cores, one torch thread each). On a machine or cluster where every worker has its own
cores, stage times stay about the same and the replay is a fair estimate; on fewer cores than workers it is not.

Usage::

    python benchmarks/pipeline_makespan.py experiments/results/pendulum_sound/run --workers 1 2 4 8 32
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gmc_rl.config import load_config
from gmc_rl.pipeline import _plan, env_modalities, read_run_config, resolve_conditions


def recorded_stages(run_dir: Path, config_path: Path | None = None
                    ) -> tuple[list[str], dict[str, tuple[str, ...]], dict[str, float]]:
    """The stages of the run's plan (of ``config_path``'s when given, else of the run's own ``config.yaml``, which
    is that of the last command run there) in order, what each waits for, and the seconds each took (from its
    done-marker).

    Raises:
        SystemExit: a stage of the plan has no done-marker with a time (the run is not finished).
    """
    config = load_config(config_path) if config_path is not None else read_run_config(run_dir)
    conditions = resolve_conditions(config.evaluate.conditions, env_modalities(config.env_id, config.env_kwargs))
    tasks, _, _ = _plan(config, run_dir, conditions)
    order = [task.stage.name for task in tasks]
    after = {task.stage.name: task.after for task in tasks}
    seconds: dict[str, float] = {}
    missing = []
    for task in tasks:
        stage = task.stage
        record = json.loads(stage.marker.read_text()) if stage.marker.is_file() else {}
        if (record.get("status") != "done" or record.get("hash") != stage.hash
                or not isinstance(record.get("seconds"), (int, float))):
            missing.append(stage.name)
        else:
            seconds[stage.name] = float(record["seconds"])
    if missing:
        raise SystemExit(f"{run_dir}: {len(missing)} stage(s) of the plan are not done with these settings "
                         "(or have no recorded time): "
                         f"{missing[:8]}{' ...' if len(missing) > 8 else ''}")
    return order, after, seconds


def critical_path(order: Sequence[str], after: dict[str, tuple[str, ...]], seconds: dict[str, float]) -> float:
    """The longest chain of stages that must run one after another (plan order lists inputs first)."""
    finish: dict[str, float] = {}
    for name in order:
        finish[name] = max((finish[dep] for dep in after[name]), default=0.0) + seconds[name]
    return max(finish.values(), default=0.0)


def replay(order: Sequence[str], after: dict[str, tuple[str, ...]], seconds: dict[str, float], workers: int) -> float:
    """Wall time of the run with ``workers`` stages at once under the pipeline's rule: whenever a worker is free,
    it takes the first stage in plan order whose inputs are done."""
    waiting = list(order)
    done: set[str] = set()
    running: list[tuple[float, str]] = []  # (finish time, stage), a heap
    now = 0.0
    while waiting or running:
        while len(running) < workers:
            ready = next((name for name in waiting if all(dep in done for dep in after[name])), None)
            if ready is None:
                break
            waiting.remove(ready)
            heapq.heappush(running, (now + seconds[ready], ready))
        if not running:
            raise SystemExit(f"stages wait for each other in a cycle: {waiting}")
        now, finished = heapq.heappop(running)
        done.add(finished)
    return now


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished gmc-rl pipeline run directory")
    parser.add_argument("--config", type=Path, default=None,
                        help="plan the stages of this config instead of the run's config.yaml (e.g. the full config "
                             "of a run that was made in several commands with --methods or --seeds)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                        help="worker counts to replay (default: 1 2 4 8 16 32)")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.workers):
        parser.error("--workers must be positive")
    order, after, seconds = recorded_stages(args.run_dir, args.config)
    total, path = sum(seconds.values()), critical_path(order, after, seconds)
    print(f"{args.run_dir}: {len(order)} stages, {total / 60:.1f} min of stage time, critical path {path / 60:.1f} min")
    print("| workers | replayed wall time (min) | speed-up vs 1 |")
    print("|---:|---:|---:|")
    for n in args.workers:
        wall = replay(order, after, seconds, n)
        print(f"| {n} | {wall / 60:.1f} | {total / wall:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
