"""Overhead of the GMC latent wrappers: raw env vs latent env, single and as a VecEnv, in one run.

Measures, in the same process:

- a single env: raw ``Dict`` observations vs :class:`~gmc_rl.wrappers.GMCLatent` (one forward pass per step);
- a ``DummyVecEnv`` of N envs (default 8): raw vs :class:`~gmc_rl.wrappers.VecGMCLatent` (one batched forward pass
  per vector step), with complete observations and with per-step dropout (p = 0.3, several availability patterns
  per step), plus, for comparison, N separate ``GMCLatent`` envs (N single forward passes per vector step);
- ``model.encode`` alone on a ready batch of 1 and of N observations: the part of the cost that is the GMC network.

Two clocks are reported. Wall-clock steps/s is what a user sees, but on a machine shared with other work it
mostly measures the others' load. CPU time of this process (``time.process_time``; torch runs on ``--threads``
threads, 1 by default) counts only the work done for the steps, so the cost ratios are taken from it. The issue-4
target is that the batched latent VecEnv costs at most 2x the raw VecEnv per step. Every configuration is timed
in several interleaved rounds and the median is kept. Without ``--checkpoint`` a randomly initialised GMC model of
the paper's architecture is built from the env's modalities: the cost of a forward pass does not depend on the
weights.

Usage::

    python benchmarks/latent_overhead.py                      # PendulumSound-v0, 8 envs, torch on 1 thread
    python benchmarks/latent_overhead.py --checkpoint runs/quick/gmc --threads 2 --json overhead.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv  # noqa: E402

from gmc_rl.checkpoint import load_gmc, resolve_device  # noqa: E402
from gmc_rl.config import ModelConfig  # noqa: E402
from gmc_rl.io import write_json_atomic  # noqa: E402
from gmc_rl.model import GMCModel  # noqa: E402
from gmc_rl.wrappers import GMCLatent, ModalityDropout, VecGMCLatent  # noqa: E402
from gmc_rl.wrappers.factory import make_env  # noqa: E402
from gmc_rl.wrappers.latent import encode_observations  # noqa: E402


@dataclass
class Timing:
    """``steps`` environment steps (or encoded observations) took ``wall`` seconds and ``cpu`` seconds of CPU."""

    steps: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        """Wall-clock steps per second."""
        return self.steps / self.wall

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per step."""
        return 1e6 * self.cpu / self.steps


def timed(steps: int, body: Callable[[], None]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    body()
    return Timing(steps, time.perf_counter() - wall, time.process_time() - cpu)


def build_model(env_id: str, checkpoint: str | None, seed: int, device: str) -> tuple[GMCModel, str]:
    """The checkpoint's model, or a randomly initialised paper-architecture model for the env's modalities."""
    if checkpoint:
        return load_gmc(checkpoint, device=device), f"checkpoint {checkpoint}"
    env = make_env(env_id)
    torch.manual_seed(seed)
    model = load_gmc(GMCModel.from_space(env.observation_space, ModelConfig()).to(resolve_device(device)))
    env.close()
    return model, "randomly initialised GMC model (default ModelConfig; no --checkpoint given)"


def time_forward(model: GMCModel, env_id: str, n: int, steps: int, seed: int) -> Timing:
    """``model.encode`` alone on a ready batch of ``n`` complete observations (result copied to the CPU)."""
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    batch = {name: np.repeat(np.asarray(obs[name])[None], n, axis=0) for name in model.modalities}

    def body() -> None:
        for _ in range(steps):
            model.encode(batch).cpu()

    with torch.inference_mode():
        for _ in range(10):
            model.encode(batch).cpu()
        return timed(steps * n, body)


def time_encode_path(model: GMCModel, env_id: str, n: int, steps: int, seed: int) -> Timing:
    """The wrappers' encoding path (:func:`encode_observations`: masks, grouping, forward, copy) on a ready batch."""
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    batch = {name: np.repeat(np.asarray(obs[name])[None], n, axis=0) for name in model.modalities}
    names = list(model.modalities)

    def body() -> None:
        for _ in range(steps):
            encode_observations(model, batch, names)

    for _ in range(10):
        encode_observations(model, batch, names)
    return timed(steps * n, body)


def time_single(env: gym.Env, steps: int, seed: int) -> Timing:
    """A Gymnasium env under random actions (resets included)."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    for action in actions[:50]:  # warm-up
        if any(env.step(action)[2:4]):
            env.reset()

    def body() -> None:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return timed(steps, body)


def time_vec(venv: VecEnv, steps: int, seed: int) -> Timing:
    """A VecEnv under random actions (auto-reset); counts vector steps x n_envs environment steps."""
    venv.action_space.seed(seed)
    actions = [np.stack([venv.action_space.sample() for _ in range(venv.num_envs)]) for _ in range(steps)]
    venv.seed(seed)
    venv.reset()
    for action in actions[:20]:
        venv.step(action)

    def body() -> None:
        for action in actions:
            venv.step(action)

    return timed(steps * venv.num_envs, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="gmc_rl/PendulumSound-v0", help="multimodal env id")
    parser.add_argument("--checkpoint", default=None, help="GMC checkpoint directory (default: random model)")
    parser.add_argument("--n-envs", type=int, default=8, help="envs in the VecEnv")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps of the single env per round")
    parser.add_argument("--vec-steps", type=int, default=400, help="timed vector steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="where the GMC model runs: cpu, cuda, auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    for key in ("n_envs", "steps", "vec_steps", "rounds", "threads"):
        if getattr(args, key) <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    torch.set_num_threads(args.threads)
    model, source = build_model(args.env, args.checkpoint, args.seed, args.device)
    n = args.n_envs
    load_before = os.getloadavg()

    def raw_env() -> gym.Env:
        return make_env(args.env)

    def dropout_env(i: int) -> gym.Env:
        return ModalityDropout(make_env(args.env), p=0.3, per="step", seed=i)

    single_raw, single_latent = "single env, raw", "single env, latent (GMCLatent)"
    vec_raw, vec_latent = f"VecEnv x{n}, raw", f"VecEnv x{n}, latent batched (VecGMCLatent)"
    vec_dropout, vec_naive = f"VecEnv x{n}, latent batched, dropout p=0.3/step", f"VecEnv x{n}, one GMCLatent per env"
    forward_1, forward_n = "model.encode alone, batch of 1", f"model.encode alone, batch of {n}"
    path_n = f"wrapper encoding path, batch of {n}"
    configs: dict[str, Callable[[], Timing]] = {
        single_raw: lambda: time_single(raw_env(), args.steps, args.seed),
        single_latent: lambda: time_single(GMCLatent(raw_env(), model), args.steps, args.seed),
        forward_1: lambda: time_forward(model, args.env, 1, args.steps, args.seed),
        vec_raw: lambda: time_vec(DummyVecEnv([raw_env] * n), args.vec_steps, args.seed),
        vec_latent: lambda: time_vec(VecGMCLatent(DummyVecEnv([raw_env] * n), model), args.vec_steps, args.seed),
        vec_dropout: lambda: time_vec(
            VecGMCLatent(DummyVecEnv([lambda i=i: dropout_env(i) for i in range(n)]), model), args.vec_steps, args.seed
        ),
        forward_n: lambda: time_forward(model, args.env, n, args.vec_steps, args.seed),
        path_n: lambda: time_encode_path(model, args.env, n, args.vec_steps, args.seed),
        vec_naive: lambda: time_vec(DummyVecEnv([lambda: GMCLatent(raw_env(), model)] * n), args.vec_steps, args.seed),
    }
    timings: dict[str, list[Timing]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, run in configs.items():
            timings[name].append(run())
    rate = {name: statistics.median(t.rate for t in values) for name, values in timings.items()}
    cpu_us = {name: statistics.median(t.cpu_us for t in values) for name, values in timings.items()}
    load_after = os.getloadavg()

    print(f"env {args.env}; model: {source}; latent size {model.latent_dim}")
    print(f"torch {torch.__version__} on {args.threads} thread(s), model on {model.device}; {os.cpu_count()} CPU cores "
          f"visible; {platform.processor() or platform.machine()}; median of {args.rounds} interleaved rounds")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after: the machine is shared, so "
          "wall-clock rates depend on other work; CPU time per step is the robust figure")
    print()
    print(f"| {'configuration':<50} | {'steps/s (wall)':>14} | {'CPU us per step':>15} |")
    print(f"|{'-' * 52}|{'-' * 16}|{'-' * 17}|")
    for name in configs:
        print(f"| {name:<50} | {rate[name]:>14.0f} | {cpu_us[name]:>15.1f} |")
    ratios = {
        "single": cpu_us[single_latent] / cpu_us[single_raw],
        "vec_batched": cpu_us[vec_latent] / cpu_us[vec_raw],
        "vec_batched_dropout": cpu_us[vec_dropout] / cpu_us[vec_raw],
        "vec_unbatched": cpu_us[vec_naive] / cpu_us[vec_raw],
    }
    wall_ratio = rate[vec_raw] / rate[vec_latent]
    print()
    print(f"CPU cost per step, latent / raw: single env {ratios['single']:.2f}x; VecEnv x{n} batched "
          f"{ratios['vec_batched']:.2f}x (with dropout {ratios['vec_batched_dropout']:.2f}x); VecEnv x{n} unbatched "
          f"{ratios['vec_unbatched']:.2f}x; batching saves {cpu_us[vec_naive] / cpu_us[vec_latent]:.1f}x")
    verdict = "met" if ratios["vec_batched"] <= 2.0 else "NOT met"
    print(f"target 'batched latent VecEnv <= 2x raw VecEnv per step': {verdict} ({ratios['vec_batched']:.2f}x CPU, "
          f"{wall_ratio:.2f}x wall-clock)")
    print(f"per env step of the batched latent VecEnv: raw env {cpu_us[vec_raw]:.0f} us, GMC forward pass "
          f"{cpu_us[forward_n]:.0f} us, wrapper bookkeeping around it {cpu_us[path_n] - cpu_us[forward_n]:+.0f} us "
          f"(CPU; the last is within timing noise when it is small)")
    if args.json:
        write_json_atomic(args.json, {
            "env": args.env, "model": source, "device": str(model.device), "threads": args.threads, "n_envs": n,
            "rounds": args.rounds, "load_average_1min": [load_before[0], load_after[0]],
            "steps_per_second_wall": {k: [t.rate for t in v] for k, v in timings.items()},
            "cpu_us_per_step": {k: [t.cpu_us for t in v] for k, v in timings.items()},
            "median_steps_per_second_wall": rate, "median_cpu_us_per_step": cpu_us, "cpu_cost_ratio": ratios,
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
