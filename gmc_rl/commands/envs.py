"""``gmc-rl envs``: list the registered multimodal environments and their modalities."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list the registered gmc_rl environments (and those of the --import modules) with their modalities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all", action="store_true", help="also list every other registered Gymnasium id")


def _entry_module(spec: Any) -> str:
    """The module an env spec's entry point lives in ("" when unknown)."""
    entry = spec.entry_point
    if isinstance(entry, str):
        return entry.partition(":")[0]
    return str(getattr(entry, "__module__", ""))


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym  # importing gmc_rl registered the gmc_rl ids with it

    from gmc_rl.env_ids import REGISTERED_BY_IMPORT
    from gmc_rl.modalities import modality_specs

    imported = list(getattr(args, "import_modules", None) or [])
    registered = {env_id for name in imported for env_id in REGISTERED_BY_IMPORT.get(name, [])}
    for env_id in sorted(gym.registry):
        module = _entry_module(gym.registry[env_id])
        ours = env_id.startswith("gmc_rl/") and env_id != "gmc_rl/GMCLatent-v0"  # the latent id needs a checkpoint
        theirs = env_id in registered or any(module == name or module.startswith(name + ".") for name in imported)
        if not (ours or theirs):
            if args.all:
                print(env_id)
            continue
        env = gym.make(env_id)
        specs = modality_specs(env.observation_space)
        mods = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in specs.values())
        print(f"{env_id}: action {env.action_space}; modalities {mods}")
        env.close()
    return 0
