"""How much of the true state a method's complete latent holds: a linear probe on the states a good controller visits.

For each agent directory given, the script runs the env with a true-state agent's policy (``--driver``, e.g.
``RUN_DIR/agents/state-seed0``: the states where control happens), encodes every complete observation with the
agent's frozen encoder, fits a ridge regression from the latent to the true state (``info["state"]``) on the first
two thirds of the steps and prints R^2 per state dimension on the last third. An R^2 near 1 means the controller
can read that quantity from the latent; near 0, it cannot.

Example::

    OMP_NUM_THREADS=1 python experiments/state_probe.py RUN/agents/gmc-seed0 RUN/agents/mvae-seed0 \\
        --driver RUN/agents/state-seed0 --steps 3000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch

import gmc_rl  # noqa: F401  (registers the gmc_rl/ ids)
from gmc_rl.agents import load_agent


def visited(driver_dir: str, steps: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Complete observations and true states of ``steps`` steps driven by the true-state agent in ``driver_dir``."""
    driver = load_agent(driver_dir)
    env = gym.make(driver.env_id, **driver.env_kwargs)
    observations: list[dict[str, np.ndarray]] = []
    states: list[np.ndarray] = []
    obs, info = env.reset(seed=seed)
    episode = 0
    while len(states) < steps:
        observations.append(obs)
        states.append(np.asarray(info["state"], dtype=np.float64))
        action, _ = driver.model.predict(info["state"][None], deterministic=True)
        obs, _, terminated, truncated, info = env.step(action[0])
        if terminated or truncated:
            episode += 1
            obs, info = env.reset(seed=seed + episode)
    env.close()
    batch = {name: np.stack([o[name] for o in observations]) for name in observations[0]}
    return batch, np.stack(states)


def probe_r2(latents: np.ndarray, states: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """R^2 per state dimension of a ridge regression (with intercept) fitted on the first 2/3, scored on the rest."""
    split = 2 * len(latents) // 3
    features = np.hstack([latents, np.ones((len(latents), 1))])
    train_x, test_x, train_y, test_y = features[:split], features[split:], states[:split], states[split:]
    weights = np.linalg.solve(train_x.T @ train_x + ridge * np.eye(features.shape[1]), train_x.T @ train_y)
    residual = ((test_y - test_x @ weights) ** 2).sum(axis=0)
    total = ((test_y - test_y.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - residual / np.maximum(total, 1e-12)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+", help="agent directories with an encoder (gmc, mvae, muse)")
    parser.add_argument("--driver", required=True, help="a true-state agent directory of the same env")
    parser.add_argument("--steps", type=int, default=3000, help="steps to collect (default 3000)")
    parser.add_argument("--seed", type=int, default=2000, help="first reset seed (default 2000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    observations, states = visited(args.driver, args.steps, args.seed)
    print(f"{len(states)} steps driven by {args.driver}; R^2 of a linear probe per state dimension (last third)")
    for agent_dir in args.agents:
        agent = load_agent(agent_dir)
        if agent.encoder is None:
            raise SystemExit(f"{agent_dir} has no encoder (method {agent.method})")
        with torch.no_grad():
            latents = np.concatenate([
                agent.encoder.encode({k: v[i:i + 256] for k, v in observations.items()}, None).cpu().numpy()
                for i in range(0, len(states), 256)])
        r2 = probe_r2(latents.astype(np.float64), states)
        print(f"{agent_dir} ({agent.method}): " + ", ".join(f"{value:.2f}" for value in r2)
              + f" | mean {r2.mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
