"""Which ``agent.vec_env`` trains faster: the envs in the training process (dummy) or in worker processes (subproc).

Usage::

    python benchmarks/vec_env_choice.py                          # every built-in env, n_envs 2 and 4, 3 repeats
    python benchmarks/vec_env_choice.py --envs gmc_rl/PendulumSound-v0 --n-envs 4 --steps 500

For each env and number of envs it steps the training VecEnv that ``gmc-rl train`` builds
(:func:`gmc_rl.agents.observations.make_method_vec_env`, method ``raw``: the full ``Dict`` observation, every
sensor rendered) with random actions and reports environment steps per wall-clock second, best of ``--repeats`` runs
(median in brackets), for DummyVecEnv and SubprocVecEnv. An agent's own cost (forward passes, gradient steps) comes
on top and is the same for both, so this is the part that the choice changes. The load average is printed first:
SubprocVecEnv needs free cores to gain anything, so compare figures only from one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import gmc_rl  # noqa: F401  (registers the ids)
from gmc_rl.agents.observations import make_method_vec_env

ENVS = ("gmc_rl/PendulumSound-v0", "gmc_rl/CartPoleSensors-v0", "gmc_rl/AcrobotSensors-v0")


def rate(env_id: str, n_envs: int, kind: str, steps: int) -> float:
    """Environment steps per second of ``steps`` VecEnv steps (``n_envs`` env steps each), built and reset first."""
    venv = make_method_vec_env("raw", env_id, {}, "complete", n_envs, seed=0, vec_env=kind)
    try:
        venv.reset()
        venv.action_space.seed(0)
        actions = [np.stack([venv.action_space.sample() for _ in range(n_envs)]) for _ in range(min(steps, 64))]
        start = time.perf_counter()
        for i in range(steps):
            venv.step(actions[i % len(actions)])
        return steps * n_envs / (time.perf_counter() - start)
    finally:
        venv.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--n-envs", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--steps", type=int, default=300, help="VecEnv steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print("| env | n_envs | dummy (env steps/s) | subproc (env steps/s) | faster |")
    print("|---|---:|---:|---:|---|")
    for env_id in args.envs:
        for n_envs in args.n_envs:
            best = {}
            for kind in ("dummy", "subproc"):
                runs = [rate(env_id, n_envs, kind, args.steps) for _ in range(args.repeats)]
                best[kind] = (max(runs), statistics.median(runs))
            faster = max(best, key=lambda k: best[k][0])
            ratio = best[faster][0] / min(b[0] for b in best.values())
            cells = [f"{best[k][0]:,.0f} ({best[k][1]:,.0f})" for k in ("dummy", "subproc")]
            print(f"| {env_id} | {n_envs} | {cells[0]} | {cells[1]} | {faster} ({ratio:.2f}x) |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
