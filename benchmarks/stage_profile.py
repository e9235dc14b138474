"""Where the default pipeline's stages spend their time, and how far each is from what one core can compute.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/stage_profile.py                        # experiments/quick.yaml
    OMP_NUM_THREADS=1 python benchmarks/stage_profile.py --output profile.json  # also write the numbers

Runs a short slice of each stage of ``gmc-rl pipeline`` through the real code path, one torch thread, under
cProfile, in a temporary directory:

1. **collect**: ``collect`` with ``--collect-steps`` transitions (random policy);
2. **pretrain**: ``pretrain`` for one epoch on that data (the config's model and batch size);
3. **train**: ``train_agent`` for the GMC agent (the config's algorithm) for ``--train-steps`` steps on that
   encoder;
4. **evaluate**: ``evaluate_agent`` on that agent, with every sensor and with each sensor alone.

For each stage it prints the wall time and the share of the profiled time spent in each category, by the function
that spends it (cProfile's own time): **torch kernels** (torch's compiled functions: forward, backward, optimizer
maths), **torch Python** (torch's Python code around them: modules, autograd glue), **SB3** (stable-baselines3's
Python), **env** (the environments, Gymnasium and OpenCV drawing), **gmc-rl** (the project's other Python),
**numpy** and **other** (the interpreter, the standard library, everything else). cProfile makes Python calls
slower, so the Python categories are over-counted (compare the wall times with the unprofiled benchmarks).

It then measures the core's arithmetic limit (single-thread float32 matrix products, GFLOP/s) against the GMC model
at the config's batch size: the forward pass of a complete observation and a whole training step, each as FLOPs per
sample (counted by ``torch.utils.flop_counter``) times samples per second, unprofiled.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from pretrain_throughput import measure_throughput  # noqa: E402  (this folder's benchmark)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import gmc_rl  # noqa: E402,F401  (registers the env ids)
from gmc_rl.agents import load_agent, train_agent  # noqa: E402
from gmc_rl.collect import collect  # noqa: E402
from gmc_rl.config import from_dict, load_config, to_dict  # noqa: E402
from gmc_rl.dataset_sources import load_dataset  # noqa: E402
from gmc_rl.loss import gmc_loss  # noqa: E402
from gmc_rl.methods import get_method  # noqa: E402
from gmc_rl.model import GMCModel  # noqa: E402
from gmc_rl.pipeline import evaluate_agent  # noqa: E402
from gmc_rl.pretrain import pretrain  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("torch kernels", "torch Python", "SB3", "env", "gmc-rl", "numpy", "imports", "other")
IMPORT_BUILTINS = ("marshal.loads", "builtins.exec", "builtins.__build_class__")


def category(filename: str, function: str) -> str:
    """The category of a profiled function, from its file (or, for a compiled function, its name)."""
    if filename == "~":  # a built-in: its name says whose it is
        if any(name in function for name in IMPORT_BUILTINS):
            return "imports"
        if "torch" in function or "_C." in function or "_VariableFunctions" in function:
            return "torch kernels"
        if "numpy" in function:
            return "numpy"
        if "cv2" in function:
            return "env"
        return "other"
    path = filename.replace("\\", "/")
    if "importlib" in path or path.startswith("<frozen"):
        return "imports"
    if "/stable_baselines3/" in path:
        return "SB3"
    if "/torch/" in path:
        return "torch Python"
    if "/numpy/" in path:
        return "numpy"
    if "/gymnasium/" in path or "/envs/" in path or "cv2" in path:
        return "env"
    if "/gmc_rl/" in path or "/agents/" in path:
        return "gmc-rl"
    return "other"


def profile(work: Callable[[], Any]) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``work()`` under cProfile and the share of its profiled time per category."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    work()
    profiler.disable()
    seconds = time.perf_counter() - start
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for (filename, _, function), row in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        totals[category(filename, function)] += row[2]  # tottime: time in the function itself
    whole = sum(totals.values()) or 1.0
    return seconds, {name: value / whole for name, value in totals.items()}


def evaluate_each_sensor(agent_dir: Path, episodes: int) -> Any:
    """The pipeline's evaluation of the agent with every sensor and with each sensor alone."""
    agent = load_agent(agent_dir)
    return evaluate_agent(agent, ["complete", *agent.modalities], episodes, [0], n_envs=2, progress=False)


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """Single-thread float32 matrix-product rate (GFLOP/s), the core's practical arithmetic limit."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def forward_cost(encoder: Any, data_dir: Path, batch_size: int, repeats: int = 20) -> tuple[float, float]:
    """FLOPs per sample (counted by torch) and samples per second of the GMC model's complete-observation forward
    pass (inference mode) at ``batch_size``."""
    train = load_dataset(data_dir).observations("train")
    batch = {name: torch.as_tensor(array[:batch_size]) for name, array in train.items()}
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            encoder.encode(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            encoder.encode(batch)
    return counter.get_total_flops() / batch_size, batch_size * repeats / (time.perf_counter() - start)


def training_step_flops(config: Any, data_dir: Path) -> float:
    """FLOPs per sample of one GMC training step (every modality's and the joint forward pass, loss, backward)."""
    dataset = load_dataset(data_dir)
    settings = config.pretrain
    model = GMCModel(dataset.specs, settings.model, dataset.normalization)
    batch = {name: torch.from_numpy(dataset.train[name][:settings.batch_size]) for name in model.modalities}
    with FlopCounterMode(display=False) as counter:
        latents, joint = model.latents(batch)
        gmc_loss(list(latents.values()), joint, settings.temperature).backward()
    return counter.get_total_flops() / settings.batch_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "experiments" / "quick.yaml"))
    parser.add_argument("--collect-steps", type=int, default=4000)
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--episodes", type=int, default=2, help="evaluation episodes per condition")
    parser.add_argument("--output", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = to_dict(load_config(args.config))
    data["collect"]["steps"] = args.collect_steps
    data["pretrain"].update(epochs=1, device="cpu")
    data["agent"].update(total_timesteps=args.train_steps, eval_freq=0, checkpoint_freq=0, device="cpu")
    config = from_dict(type(load_config(args.config)), data)
    results: dict[str, Any] = {"config": args.config, "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stages: list[tuple[str, Callable[[], Any], int, str]] = [
            ("collect", lambda: collect(config, root / "data", progress=False), args.collect_steps, "step"),
            ("pretrain", lambda: pretrain(config, root / "data", root / "gmc", progress=False),
             args.collect_steps, "sample"),
            ("train", lambda: train_agent(config, "gmc", 0, root / "agent", root / "gmc", progress_bar=False),
             args.train_steps, "step"),
            ("evaluate", lambda: evaluate_each_sensor(root / "agent", args.episodes), 0, ""),
        ]
        print(f"{'stage':9} {'wall s':>7} {'rate':>16}  " + "  ".join(f"{c:>13}" for c in CATEGORIES))
        for name, work, amount, unit in stages:
            seconds, shares = profile(work)
            rate = f"{amount / seconds:,.0f} {unit}/s" if amount else ""
            results["stages"][name] = {"seconds": seconds, "shares": shares}
            print(f"{name:9} {seconds:7.1f} {rate:>16}  " + "  ".join(f"{100 * shares[c]:12.0f}%" for c in CATEGORIES),
                  flush=True)
        gflops = matmul_gflops()
        encoder = get_method("gmc").load_encoder(root / "gmc")
        forward_flops, forward_samples = forward_cost(encoder, root / "data", config.pretrain.batch_size)
        step_flops = training_step_flops(config, root / "data")
        step_samples = measure_throughput(config, load_dataset(root / "data"), batches=20)
    rows = {"forward (inference)": (forward_flops, forward_samples), "training step": (step_flops, step_samples)}
    results["limits"] = {"matmul_gflops": gflops, **{
        name: {"mflop_per_sample": flops / 1e6, "samples_per_s": rate, "gflops": flops * rate / 1e9}
        for name, (flops, rate) in rows.items()}}
    print(f"one core: {gflops:.1f} GFLOP/s in 1024 x 1024 float32 matrix products (the arithmetic limit)")
    for name, (flops, rate) in rows.items():
        achieved = flops * rate / 1e9
        print(f"GMC {name}, batch {config.pretrain.batch_size}: {flops / 1e6:.1f} MFLOP per sample (counted by "
              f"torch), {rate:,.0f} samples/s = {achieved:.1f} GFLOP/s, {100 * achieved / gflops:.0f} % of the limit")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
