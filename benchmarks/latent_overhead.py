"""Overhead of the GMC latent wrappers: environment steps per second, raw env vs latent env, in one run.

Measures, on the same machine and in the same process:

- a single env: raw ``Dict`` observations vs :class:`~gmc_rl.wrappers.GMCLatent` (one forward pass per step);
- a ``DummyVecEnv`` of N envs (default 8): raw vs :class:`~gmc_rl.wrappers.VecGMCLatent` (one batched forward pass
  per vector step), with complete observations and with per-step dropout (p = 0.3, several availability patterns
  per step), plus, for comparison, N separate ``GMCLatent`` envs (N single forward passes per vector step).

The target of issue 4 is that the batched latent VecEnv costs at most 2x the raw VecEnv per step. Every
configuration is timed in several interleaved rounds and the median is reported, because CPU time on a shared
machine fluctuates. Without ``--checkpoint`` a randomly initialised GMC model of the paper's architecture is built
from the env's modalities: the cost of a forward pass does not depend on the weights.

Usage::

    python benchmarks/latent_overhead.py                      # PendulumSound-v0, 8 envs, torch on 1 thread
    python benchmarks/latent_overhead.py --checkpoint runs/pendulum/gmc --threads 2 --json overhead.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
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


def build_model(env_id: str, checkpoint: str | None, seed: int, device: str) -> tuple[GMCModel, str]:
    """The checkpoint's model, or a randomly initialised paper-architecture model for the env's modalities."""
    if checkpoint:
        return load_gmc(checkpoint, device=device), f"checkpoint {checkpoint}"
    env = make_env(env_id)
    torch.manual_seed(seed)
    model = load_gmc(GMCModel.from_space(env.observation_space, ModelConfig()).to(resolve_device(device)))
    env.close()
    return model, "randomly initialised GMC model (default ModelConfig; no --checkpoint given)"


def time_forward(model: GMCModel, env_id: str, n: int, steps: int, seed: int) -> float:
    """Observations per second of ``model.encode`` alone on a ready batch of ``n`` complete observations."""
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    batch = {name: np.repeat(np.asarray(obs[name])[None], n, axis=0) for name in model.modalities}
    with torch.inference_mode():
        for _ in range(10):
            model.encode(batch).cpu()
        start = time.perf_counter()
        for _ in range(steps):
            model.encode(batch).cpu()
    return steps * n / (time.perf_counter() - start)


def time_single(env: gym.Env, steps: int, seed: int) -> float:
    """Environment steps per second of a Gymnasium env under random actions (resets included)."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    for action in actions[:50]:  # warm-up
        if any(env.step(action)[2:4]):
            env.reset()
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def time_vec(venv: VecEnv, steps: int, seed: int) -> float:
    """Environment steps per second (vector steps x n_envs) of a VecEnv under random actions (auto-reset)."""
    venv.action_space.seed(seed)
    actions = [np.stack([venv.action_space.sample() for _ in range(venv.num_envs)]) for _ in range(steps)]
    venv.seed(seed)
    venv.reset()
    for action in actions[:20]:
        venv.step(action)
    start = time.perf_counter()
    for action in actions:
        venv.step(action)
    return steps * venv.num_envs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="gmc_rl/PendulumSound-v0", help="multimodal env id")
    parser.add_argument("--checkpoint", default=None, help="GMC checkpoint directory (default: random model)")
    parser.add_argument("--n-envs", type=int, default=8, help="envs in the VecEnv")
    parser.add_argument("--steps", type=int, default=2000, help="timed steps of the single env per round")
    parser.add_argument("--vec-steps", type=int, default=400, help="timed vector steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
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

    def raw_env() -> gym.Env:
        return make_env(args.env)

    def dropout_env(i: int) -> gym.Env:
        return ModalityDropout(make_env(args.env), p=0.3, per="step", seed=i)

    configs: dict[str, Callable[[], float]] = {
        "single raw": lambda: time_single(raw_env(), args.steps, args.seed),
        "single latent (GMCLatent)": lambda: time_single(GMCLatent(raw_env(), model), args.steps, args.seed),
        "model.encode alone, batch of 1": lambda: time_forward(model, args.env, 1, args.steps, args.seed),
        f"VecEnv x{n} raw": lambda: time_vec(DummyVecEnv([raw_env] * n), args.vec_steps, args.seed),
        f"VecEnv x{n} latent, batched (VecGMCLatent)": lambda: time_vec(
            VecGMCLatent(DummyVecEnv([raw_env] * n), model), args.vec_steps, args.seed
        ),
        f"VecEnv x{n} latent, batched, dropout p=0.3/step": lambda: time_vec(
            VecGMCLatent(DummyVecEnv([lambda i=i: dropout_env(i) for i in range(n)]), model), args.vec_steps, args.seed
        ),
        f"model.encode alone, batch of {n}": lambda: time_forward(model, args.env, n, args.vec_steps, args.seed),
        f"VecEnv x{n} latent, one GMCLatent per env": lambda: time_vec(
            DummyVecEnv([lambda: GMCLatent(raw_env(), model)] * n), args.vec_steps, args.seed
        ),
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, run in configs.items():
            rates[name].append(run())
    median = {name: statistics.median(values) for name, values in rates.items()}

    print(f"env {args.env}; model: {source}; latent size {model.latent_dim}")
    print(f"torch {torch.__version__} on {args.threads} thread(s), model on {model.device}; {os.cpu_count()} CPU cores visible; "
          f"{platform.processor() or platform.machine()}; median of {args.rounds} rounds")
    print("timings on a shared machine vary between runs; compare figures of the same run only")
    print()
    print(f"| {'configuration':<48} | {'env steps/s':>11} | {'us per env step':>15} |")
    print(f"|{'-' * 50}|{'-' * 13}|{'-' * 17}|")
    for name, rate in median.items():
        print(f"| {name:<48} | {rate:>11.0f} | {1e6 / rate:>15.1f} |")
    single_ratio = median["single raw"] / median["single latent (GMCLatent)"]
    vec_ratio = median[f"VecEnv x{n} raw"] / median[f"VecEnv x{n} latent, batched (VecGMCLatent)"]
    drop_ratio = median[f"VecEnv x{n} raw"] / median[f"VecEnv x{n} latent, batched, dropout p=0.3/step"]
    naive_ratio = median[f"VecEnv x{n} raw"] / median[f"VecEnv x{n} latent, one GMCLatent per env"]
    print()
    print(f"cost per step, latent / raw: single env {single_ratio:.2f}x; VecEnv x{n} batched {vec_ratio:.2f}x "
          f"(with dropout {drop_ratio:.2f}x); VecEnv x{n} unbatched {naive_ratio:.2f}x")
    verdict = "met" if vec_ratio <= 2.0 else "NOT met"
    print(f"target 'batched latent VecEnv <= 2x raw VecEnv per step': {verdict} ({vec_ratio:.2f}x)")
    floor = 1e6 / median[f"model.encode alone, batch of {n}"]
    print(f"of the batched latent cost, {floor:.0f} us per env step is the GMC forward pass itself "
          f"(model.encode on a ready batch of {n}); the raw env step costs {1e6 / median[f'VecEnv x{n} raw']:.0f} us")
    if args.json:
        write_json_atomic(args.json, {
            "env": args.env, "model": source, "device": str(model.device), "threads": args.threads, "n_envs": n, "rounds": args.rounds,
            "steps_per_second": rates, "median_steps_per_second": median,
            "cost_ratio": {"single": single_ratio, "vec_batched": vec_ratio, "vec_batched_dropout": drop_ratio,
                           "vec_unbatched": naive_ratio},
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
