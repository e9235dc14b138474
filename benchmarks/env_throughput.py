"""Throughput of the gmc_rl environments (steps per second), next to Gymnasium's ``Pendulum-v1`` in the same run.

Usage::

    python benchmarks/env_throughput.py                      # every gmc_rl id + Pendulum-v1, 3 repeats
    python benchmarks/env_throughput.py --envs gmc_rl/PendulumSound-v0 --repeats 5 --output runs/throughput.json

For each environment it measures, on pre-sampled random actions (resetting at episode ends):

- ``class``: the bare environment class (``gym.make(...).unwrapped``), one process, one core;
- ``make``: ``gym.make(id)`` with its wrappers (TimeLimit, OrderEnforcing, PassiveEnvChecker);
- ``dummy8``: an SB3 ``DummyVecEnv`` of 8 (8 env steps per ``step`` call, counted as 8);
- ``subproc8``: an SB3 ``SubprocVecEnv`` of 8 worker processes (needs free cores to shine).

Each figure is the best of ``--repeats`` timed runs (the run least disturbed by other processes), with the median
in brackets. Two clocks: wall-clock time, and (for the in-process modes) the CPU time of this process, which
approximates "steps per second on one free core" on a machine shared with other work. Vectorised envs are built and
reset before the clock starts. Workers build envs from the id ``"gmc_rl:gmc_rl/..."`` so that each worker process
imports (and registers) the package itself.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gmc_rl (gmc_rl.envs: pip install -e .)

from gmc_rl import envs  # noqa: E402  (registers the gmc_rl ids)

REFERENCE_ID = "Pendulum-v1"
MODES = ("class", "make", "dummy8", "subproc8")


def _make_id(env_id: str) -> str:
    """The id a worker process can resolve on its own (Gymnasium imports the module before the colon)."""
    return f"gmc_rl:{env_id}" if env_id.startswith(f"{envs.NAMESPACE}/") else env_id


def _actions(env_id: str, count: int, seed: int = 0) -> list:
    space = gym.make(env_id).action_space
    space.seed(seed)
    return [space.sample() for _ in range(count)]


class Clock:
    """Wall-clock and process CPU time elapsed since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, steps: int) -> tuple[float, float]:
        """``steps`` per second of wall-clock and of CPU time."""
        return steps / (time.perf_counter() - self.wall), steps / max(time.process_time() - self.cpu, 1e-9)


def time_single(env: gym.Env, actions: list) -> tuple[float, float]:
    """Steps per second (wall, CPU) of one environment stepping through ``actions``."""
    env.reset(seed=0)
    clock = Clock()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return clock.rates(len(actions))


def time_vec(venv, actions: list, n_envs: int) -> tuple[float, float]:
    """Environment steps per second (wall, CPU of this process) of a VecEnv (``n_envs`` steps per call)."""
    batches = [np.stack(actions[i : i + n_envs]) for i in range(0, len(actions) - n_envs + 1, n_envs)]
    venv.seed(0)
    venv.reset()
    clock = Clock()
    for batch in batches:
        venv.step(batch)
    return clock.rates(len(batches) * n_envs)


def measure(env_id: str, mode: str, steps: int, n_envs: int, repeats: int) -> list[tuple[float, float]]:
    """``repeats`` timings ``(wall, cpu)`` in steps/s of ``env_id`` in ``mode``."""
    actions = _actions(env_id, steps)
    if mode in ("class", "make"):
        env = gym.make(env_id)
        env = env.unwrapped if mode == "class" else env
        results = [time_single(env, actions) for _ in range(repeats)]
        env.close()
        return results
    factory: Callable[[], gym.Env] = functools.partial(gym.make, _make_id(env_id))
    vec_cls = DummyVecEnv if mode.startswith("dummy") else SubprocVecEnv
    venv = vec_cls([factory] * n_envs)
    try:
        return [time_vec(venv, actions, n_envs) for _ in range(repeats)]
    finally:
        venv.close()


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join(lines)


def _cell(values: list[float]) -> str:
    return f"{max(values):,.0f} [{statistics.median(values):,.0f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=[*envs.ENV_IDS, REFERENCE_ID], help="ids to measure")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--steps", type=int, default=10_000, help="environment steps per timed run")
    parser.add_argument("--n-envs", type=int, default=8, help="size of the vectorised envs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell; the best is reported")
    parser.add_argument("--output", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.steps < args.n_envs or args.repeats < 1:
        parser.error("--steps must be >= --n-envs and --repeats >= 1")

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(
        f"# Environment throughput (steps/s), best of {args.repeats} x {args.steps} steps [median]\n"
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
        f"load average {load[0]:.2f} at start; numpy {np.__version__}, gymnasium {gym.__version__}\n"
        "# class/make: one env in this process; dummy8: DummyVecEnv(8) in this process; "
        "subproc8: SubprocVecEnv(8), 8 worker processes.",
        flush=True,
    )
    record: dict[str, dict] = {}
    for env_id in args.envs:
        record[env_id] = {}
        for mode in args.modes:
            print(f"  measuring {env_id} [{mode}] ...", file=sys.stderr, flush=True)
            timings = measure(env_id, mode, args.steps, args.n_envs, args.repeats)
            wall, cpu = [t[0] for t in timings], [t[1] for t in timings]
            record[env_id][mode] = {
                "wall_best": max(wall),
                "wall_median": statistics.median(wall),
                "cpu_best": max(cpu),
                "cpu_median": statistics.median(cpu),
                "wall_runs": wall,
                "cpu_runs": cpu,
            }

    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nWall-clock steps/s (load average {end_load:.2f} at the end):")
    rows = [[env_id, *(_cell(record[env_id][m]["wall_runs"]) for m in args.modes)] for env_id in args.envs]
    print(_table(["env", *args.modes], rows))
    in_process = [m for m in args.modes if m != "subproc8"]
    if in_process:
        print("\nSteps per CPU-second of this process (in-process modes; ~ one free core):")
        rows = [[env_id, *(_cell(record[env_id][m]["cpu_runs"]) for m in in_process)] for env_id in args.envs]
        print(_table(["env", *in_process], rows))
    if args.output is not None:
        from gmc_rl.io import write_json_atomic

        write_json_atomic(args.output, {"settings": vars(args) | {"output": str(args.output)}, "results": record})
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
