"""CPU cost of the raw-observation SAC agent per training step, with SB3's default CNN and with the cheaper ones.

The raw baseline reads PendulumSound's 2x60x60 image through a CNN at every gradient step (a batch of 128, for the
actor, the critic and the target critic), which makes it the most expensive agent of the comparison. Three
variants of the same agent (the hyperparameters of ``experiments/pendulum_sound.yaml``) are timed:

- ``nature``: SB3's ``MultiInputPolicy`` defaults: NatureCNN, one copy in the actor and one in the critic;
- ``nature-shared``: one NatureCNN shared by actor and critic (``share_features_extractor: true``);
- ``compact-shared``: the config's ``agent.method_hyperparams.raw``: one shared :class:`CompactCNN`.

Each variant fills ``--warmup`` random steps (untimed), then learns ``--steps`` steps (one gradient step each);
the CPU time of this process (torch on one thread) over those steps is reported per 1,000 steps, because on a
machine shared with other work the wall clock mostly measures the others' load. Whether the cheaper agent is still
as strong is not measured here but by training it (docs/results.md: the PendulumSound comparison).

Usage::

    python benchmarks/raw_agent_cost.py                 # 1,000 timed steps per variant
    python benchmarks/raw_agent_cost.py --steps 300 --json raw_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import gmc_rl  # noqa: E402,F401  (registers the env ids)
from gmc_rl.agents.registry import build_algorithm  # noqa: E402
from gmc_rl.config import load_config, merge_hyperparams  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "pendulum_sound.yaml"


def variants(config_file: Path) -> dict[str, dict[str, Any]]:
    """The hyperparameters of each variant, from the config's agent section."""
    agent = load_config(config_file).agent
    base = {key: value for key, value in agent.hyperparams.items() if key != "policy_kwargs"}
    net = {"net_arch": agent.hyperparams.get("policy_kwargs", {}).get("net_arch", [256, 256])}
    return {
        "nature": {**base, "policy_kwargs": net},
        "nature-shared": {**base, "policy_kwargs": {**net, "share_features_extractor": True}},
        "compact-shared": merge_hyperparams({**base, "policy_kwargs": net}, agent.method_hyperparams.get("raw")),
    }


def cost(env_id: str, hyperparams: dict[str, Any], steps: int, warmup: int) -> dict[str, float]:
    """CPU and wall seconds per 1,000 learning steps of SAC with ``hyperparams``."""
    env = gym.make(env_id)
    params = {**hyperparams, "learning_starts": warmup, "buffer_size": warmup + steps}
    model = build_algorithm("sac", env, params, seed=0, tensorboard_log=None, device="cpu")
    model.learn(warmup)
    cpu, wall = time.process_time(), time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    parameters = sum(p.numel() for p in model.policy.parameters())
    env.close()
    return {"cpu_s_per_1000_steps": 1000 * cpu / steps, "wall_s_per_1000_steps": 1000 * wall / steps,
            "parameters": parameters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="experiment YAML (agent section)")
    parser.add_argument("--env", default="gmc_rl/PendulumSound-v0")
    parser.add_argument("--steps", type=int, default=1000, help="timed learning steps per variant")
    parser.add_argument("--warmup", type=int, default=300, help="untimed random steps before learning")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    results = {name: cost(args.env, params, args.steps, args.warmup) for name, params in variants(args.config).items()}
    reference = results["nature"]["cpu_s_per_1000_steps"]
    print(f"raw SAC agent on {args.env}, {args.steps} learning steps per variant, torch on 1 thread, "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    for name, row in results.items():
        print(f"  {name:15s} {row['cpu_s_per_1000_steps']:7.1f} CPU-s per 1,000 steps "
              f"({reference / row['cpu_s_per_1000_steps']:.2f}x cheaper than nature), "
              f"{row['wall_s_per_1000_steps']:7.1f} s wall, {row['parameters']:,} parameters")
    if args.json:
        args.json.write_text(json.dumps({"env": args.env, "steps": args.steps, "load_average": load,
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
