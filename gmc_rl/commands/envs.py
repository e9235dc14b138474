"""``gmc-rl envs``: list the registered multimodal environments and their modalities."""

from __future__ import annotations

import argparse

HELP = "list the registered gmc_rl environments and their modalities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="also list every other registered Gymnasium id")


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym  # importing gmc_rl registered the gmc_rl ids with it

    from gmc_rl.modalities import modality_specs

    for env_id in sorted(gym.registry):
        if not env_id.startswith("gmc_rl/"):
            if args.all:
                print(env_id)
            continue
        env = gym.make(env_id)
        specs = modality_specs(env.observation_space)
        mods = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in specs.values())
        print(f"{env_id}: action {env.action_space}; modalities {mods}")
        env.close()
    return 0
