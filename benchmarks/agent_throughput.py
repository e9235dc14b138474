"""Training throughput of agents on the GMC latent env (environment steps per second, learning included).

Usage::

    python benchmarks/agent_throughput.py                         # SAC and DDPG on gmc_rl/PendulumSound-v0
    python benchmarks/agent_throughput.py --gmc runs/pendulum/gmc --steps 3000 --algos sac --output sac.json

Without ``--gmc`` it first makes a GMC checkpoint with the paper's architecture by the real code path (collect
2,000 random transitions, pretrain 1 epoch); its quality does not matter for throughput. Then, for each algorithm:

- ``rollout``: the latent env alone (PendulumSound -> ModalityDropout -> VecGMCLatent), random actions;
- ``train``: ``model.learn`` after ``learning_starts`` (one gradient step per env step, as configured), timed from
  the first learning step to the end. SAC uses SB3's defaults with a 256x256 network (batch 256); DDPG uses the
  hyperparameters of experiments/pendulum_sound_ddpg.yaml (256x256, batch 128, OU noise).

Both wall-clock and process CPU time are reported: on a machine shared with other work, CPU time approximates the
rate on one free core. Torch runs single-threaded unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's gmc_rl (gmc_rl.agents: pip install -e .)

from gmc_rl.agents.observations import make_method_vec_env  # noqa: E402
from gmc_rl.agents.registry import build_algorithm  # noqa: E402
from gmc_rl.checkpoint import load_gmc  # noqa: E402
from gmc_rl.config import ExperimentConfig, from_dict, load_config  # noqa: E402

ENV = "gmc_rl/PendulumSound-v0"
HYPERPARAMS = {
    "sac": {"policy_kwargs": {"net_arch": [256, 256]}},
    "ddpg": None,  # read from experiments/pendulum_sound_ddpg.yaml
}


class _StartClock(BaseCallback):
    """Record wall and CPU time when learning starts (num_timesteps reaches learning_starts)."""

    def __init__(self, learning_starts: int):
        super().__init__()
        self.learning_starts = learning_starts
        self.start: tuple[float, float, int] | None = None

    def _on_step(self) -> bool:
        if self.start is None and self.num_timesteps >= self.learning_starts:
            self.start = (time.perf_counter(), time.process_time(), self.num_timesteps)
        return True


def make_checkpoint(root: Path) -> Path:
    from gmc_rl.collect import collect
    from gmc_rl.pretrain import pretrain

    config = from_dict(ExperimentConfig, {"env_id": ENV, "collect": {"steps": 2000, "n_envs": 4},
                                          "pretrain": {"epochs": 1, "device": "cpu"}})
    data = collect(config, root / "data", progress=False)
    return pretrain(config, data, root / "gmc", progress=False)


def rollout_rate(encoder, steps: int) -> dict:
    venv = make_method_vec_env("gmc", ENV, {}, "complete", n_envs=1, seed=0, encoder=encoder)
    venv.reset()
    actions = np.random.default_rng(0).uniform(-2, 2, size=(steps, 1, 1)).astype(np.float32)
    wall, cpu = time.perf_counter(), time.process_time()
    for action in actions:
        venv.step(action)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    venv.close()
    return {"steps": steps, "wall_steps_per_s": steps / wall, "cpu_steps_per_s": steps / cpu}


def train_rate(algo: str, encoder, steps: int, warmup: int) -> dict:
    hyperparams = HYPERPARAMS[algo]
    if hyperparams is None:
        config_file = Path(__file__).resolve().parents[1] / "experiments" / "pendulum_sound_ddpg.yaml"
        hyperparams = dict(load_config(config_file).agent.hyperparams)
    hyperparams = {**hyperparams, "learning_starts": warmup}
    venv = make_method_vec_env("gmc", ENV, {}, "complete", n_envs=1, seed=0, encoder=encoder)
    model = build_algorithm(algo, venv, hyperparams, seed=0, tensorboard_log=None, device="cpu")
    clock = _StartClock(warmup)
    model.learn(warmup + steps, callback=clock)
    wall, cpu = time.perf_counter() - clock.start[0], time.process_time() - clock.start[1]
    done = model.num_timesteps - clock.start[2]
    venv.close()
    return {"steps": done, "batch_size": model.batch_size, "wall_steps_per_s": done / wall,
            "cpu_steps_per_s": done / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmc", default=None, help="GMC checkpoint (default: make one with the paper's architecture)")
    parser.add_argument("--algos", nargs="+", default=["sac", "ddpg"], choices=sorted(HYPERPARAMS))
    parser.add_argument("--steps", type=int, default=2000, help="timed learning steps per algorithm")
    parser.add_argument("--warmup", type=int, default=300, help="learning_starts (untimed random steps)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--output", default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        gmc = Path(args.gmc) if args.gmc else make_checkpoint(Path(tmp))
        encoder = load_gmc(gmc)
        results = {
            "env": ENV,
            "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "torch_threads": args.threads,
                        "python": platform.python_version(), "torch": torch.__version__},
            "latent_dim": encoder.latent_dim,
            "rollout": rollout_rate(encoder, 2000),
            "train": {algo: train_rate(algo, encoder, args.steps, args.warmup) for algo in args.algos},
        }
    results["machine"]["load_average_after"] = os.getloadavg()
    r = results["rollout"]
    print(f"{ENV}, GMC latent (k={results['latent_dim']}), {args.threads} torch thread(s), "
          f"load average {results['machine']['load_average'][0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  rollout only (random actions): {r['wall_steps_per_s']:.0f} steps/s wall, "
          f"{r['cpu_steps_per_s']:.0f} per CPU-s")
    for algo, t in results["train"].items():
        print(f"  {algo} training (batch {t['batch_size']}, {t['steps']} steps): {t['wall_steps_per_s']:.1f} steps/s "
              f"wall, {t['cpu_steps_per_s']:.1f} per CPU-s")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
