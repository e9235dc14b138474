"""Run the gmc-rl pipeline on a user-defined 3-modality environment and print its robustness table.

    python experiments/custom_env_example/run.py [--out runs/sensor_reach] [--seeds 0 1]

What a user does to bring their own env (see ``sensor_reach.py``):

1. write a ``gymnasium.Env`` whose observation space is a ``Dict`` of ``Box`` modalities and register it with
   ``gymnasium.register`` when its module is imported;
2. write an experiment config naming the env as ``"<module>:<id>"`` (``config.yaml`` next to this script);
3. call :func:`gmc_rl.pipeline.run_pipeline` (as below) or run ``gmc-rl pipeline --config <that yaml>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, when run from a source checkout

from gmc_rl.config import load_config  # noqa: E402
from gmc_rl.pipeline import run_pipeline  # noqa: E402
from gmc_rl.results import markdown_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "config.yaml"), help="experiment config (default: ours)")
    parser.add_argument("--out", default="runs/sensor_reach", help="run directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="agent seeds (default: the config's)")
    args = parser.parse_args()

    config = load_config(args.config)
    if args.seeds:
        config.seeds = list(args.seeds)
    results = run_pipeline(config, args.out, log=lambda message: print(message, flush=True))
    print()
    print("Mean episode return (rows: methods trained with all three sensors; columns: sensors at evaluation):")
    print(markdown_table(results, "episode_return"))
    print()
    print("Mean per-step reward:")
    print(markdown_table(results, "per_step_reward"))
    module = config.env_id.partition(":")[0]
    print()
    print(f"Inspect an agent with: gmc-rl align --import {module} --agent {Path(args.out) / 'agents' / 'gmc-seed0'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
