"""Soak benchmark: step a latent env with sensor dropout for a long time and watch memory and speed.

Builds ``make_latent_env(env, checkpoint, p=..., per="step")`` (NaN guard -> per-step dropout -> GMC encoder), or
with ``--n-envs N > 1`` a ``VecGMCLatent`` over a ``DummyVecEnv`` of N ``make_sensor_env`` stacks (one batched
forward pass per vector step, the training set-up), steps it with random actions (resetting at episode ends) and
reports the resident memory (RSS) after a warm-up, at regular checkpoints (printed as they are taken, so an
interrupted run still shows them) and at the end, plus steps per second.
``--steps`` counts environment steps (vector steps x N). A leak in the wrapper stack (e.g. observations or
tensors kept across steps) shows as RSS growing with the number of steps; a healthy run stays flat up to noise
(allocator and page-cache jitter of a few MB).

Without ``--checkpoint`` a randomly initialised GMC model of the paper's architecture is built from the env's
modalities: this measures the wrapper stack, not the accuracy of any representation.

Usage::

    python benchmarks/soak.py --steps 1000000
    python benchmarks/soak.py --steps 1000000 --n-envs 8
    python benchmarks/soak.py --steps 200000 --checkpoint runs/pendulum/gmc --json soak.json
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402
from tqdm import tqdm  # noqa: E402

from gmc_rl.checkpoint import load_gmc, resolve_device  # noqa: E402
from gmc_rl.config import ModelConfig  # noqa: E402
from gmc_rl.io import write_json_atomic  # noqa: E402
from gmc_rl.model import GMCModel  # noqa: E402
from gmc_rl.wrappers import VecGMCLatent, make_latent_env, make_sensor_env  # noqa: E402
from gmc_rl.wrappers.factory import make_env  # noqa: E402


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="environment steps to run")
    parser.add_argument("--env", default="gmc_rl/PendulumSound-v0", help="multimodal env id")
    parser.add_argument("--checkpoint", default=None, help="GMC checkpoint directory (default: random model)")
    parser.add_argument("--n-envs", type=int, default=1, help="1: a single GMCLatent env; N > 1: VecGMCLatent of N")
    parser.add_argument("--p", type=float, default=0.3, help="per-step dropout probability of each modality")
    parser.add_argument("--warmup", type=int, default=2_000, help="steps before the starting RSS is taken")
    parser.add_argument("--reports", type=int, default=10, help="number of intermediate RSS readings")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="where the GMC model runs: cpu, cuda, auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    for key in ("steps", "reports", "threads", "n_envs"):
        if getattr(args, key) <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    torch.set_num_threads(args.threads)

    if args.checkpoint:
        model, source = load_gmc(args.checkpoint, device=args.device), f"checkpoint {args.checkpoint}"
    else:
        probe = make_env(args.env)
        torch.manual_seed(args.seed)
        model = load_gmc(GMCModel.from_space(probe.observation_space, ModelConfig()).to(resolve_device(args.device)))
        probe.close()
        source = ("randomly initialised GMC model (default ModelConfig; no --checkpoint given) - measures the wrapper "
                  "stack, not accuracy")
    n = args.n_envs
    if n == 1:
        env = make_latent_env(args.env, model, p=args.p, per="step", seed=args.seed)
        stack = "make_latent_env (GMCLatent), single env"
    else:
        fns = [lambda i=i: make_sensor_env(args.env, p=args.p, per="step", seed=args.seed + i) for i in range(n)]
        env = VecGMCLatent(DummyVecEnv(fns), model)
        stack = f"VecGMCLatent over DummyVecEnv of {n} make_sensor_env stacks"
    env.action_space.seed(args.seed)
    modalities = list(model.modalities)
    print(f"env {args.env}; {stack}; dropout p={args.p} per step (keep one); model: {source}")
    print(f"torch {torch.__version__} on {args.threads} thread(s), model on {model.device}; {os.cpu_count()} CPU cores "
          f"visible, shared with other work (load average {os.getloadavg()[0]:.1f}): steps/s are indicative only")

    present_counts = np.zeros(len(modalities))
    counters = {"episodes": 0, "nonfinite": 0}

    def record(latents: np.ndarray, infos: list[dict], dones: np.ndarray) -> None:
        for info in infos:
            for name in info["available_modalities"]:
                present_counts[modalities.index(name)] += 1
        counters["nonfinite"] += int((~np.isfinite(latents).all(axis=-1)).sum())
        counters["episodes"] += int(np.sum(dones))

    if n == 1:
        env.reset(seed=args.seed)

        def advance() -> None:
            latent, _, terminated, truncated, info = env.step(env.action_space.sample())
            record(latent[None], [info], np.array([terminated or truncated]))
            if terminated or truncated:
                env.reset()
    else:
        env.seed(args.seed)
        env.reset()

        def advance() -> None:
            latents, _, dones, infos = env.step(np.stack([env.action_space.sample() for _ in range(n)]))
            record(latents, infos, dones)

    vector_steps = max(1, args.steps // n)
    total = vector_steps * n
    for _ in range(max(0, args.warmup // n)):
        advance()
    present_counts[:] = 0
    counters.update(episodes=0, nonfinite=0)
    gc.collect()
    start_rss = rss_mb()
    readings = [(0, start_rss, 0.0)]
    every = max(1, vector_steps // args.reports)
    print()
    print(f"| {'steps':>9} | {'RSS MiB':>8} | {'steps/s so far':>14} |")
    print(f"|{'-' * 11}|{'-' * 10}|{'-' * 16}|")
    print(f"| {0:>9} | {start_rss:>8.1f} | {'-':>14} |", flush=True)
    start = time.perf_counter()
    with tqdm(total=total, unit="step", mininterval=2.0, smoothing=0.05) as bar:
        for step in range(1, vector_steps + 1):
            advance()
            if step % every == 0 or step == vector_steps:
                gc.collect()
                readings.append((step * n, rss_mb(), time.perf_counter() - start))
                bar.set_postfix(rss_mb=f"{readings[-1][1]:.1f}")
                done, rss, seconds = readings[-1]
                tqdm.write(f"| {done:>9} | {rss:>8.1f} | {done / seconds:>14.0f} |", file=sys.stdout)
                sys.stdout.flush()
            if step % 1000 == 0:
                bar.update(1000 * n)
        bar.update((vector_steps % 1000) * n)
    elapsed = time.perf_counter() - start
    env.close()
    episodes, nonfinite_latents = counters["episodes"], counters["nonfinite"]
    modality_index = {name: i for i, name in enumerate(modalities)}

    end_rss = readings[-1][1]
    later = [rss for _, rss, _ in readings[len(readings) // 2:]]
    dropped = 1.0 - present_counts / total
    print()
    print(f"{total} env steps in {elapsed:.1f} s: {total / elapsed:.0f} steps/s; {episodes} episodes; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"RSS after warm-up {start_rss:.1f} MiB, at the end {end_rss:.1f} MiB: growth {end_rss - start_rss:+.1f} MiB "
          f"({100 * (end_rss - start_rss) / start_rss:+.2f} %); "
          f"spread over the second half {max(later) - min(later):.1f} MiB; "
          f"peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    print("fraction of steps each modality was dropped: "
          + ", ".join(f"{name} {dropped[i]:.3f}" for name, i in modality_index.items())
          + f" (target p={args.p}); steps with a non-finite latent: {nonfinite_latents}")
    if args.json:
        write_json_atomic(args.json, {
            "env": args.env, "stack": stack, "model": source, "p": args.p, "steps": total, "seconds": elapsed,
            "steps_per_second": total / elapsed, "episodes": episodes,
            "rss_mib": [{"step": s, "rss": r, "seconds": t} for s, r, t in readings],
            "rss_growth_mib": end_rss - start_rss,
            "dropped_fraction": {name: float(dropped[i]) for name, i in modality_index.items()},
            "nonfinite_latents": nonfinite_latents,
        })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
