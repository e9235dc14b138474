"""Mean episode return of trained encoder agents with an evaluation loop of their own: every sensor, then each alone.

No gmc-rl wrapper or evaluation harness: a plain ``gymnasium.make`` env, the agent's frozen encoder
(``encoder.encode(obs, [modality])``, i.e. its own rule for missing modalities) and its SB3 policy
(deterministic), episodes reset with seeds 1000, 1001, ... (seeds the pipeline's evaluation does not use). Use it
to check the pipeline's robustness table with an independent loop; episode returns suit every env (CartPole's
per-step reward is always 1).

Example::

    OMP_NUM_THREADS=1 python experiments/independent_returns.py RUN/agents/gmc-seed0 RUN/agents/gmc-seed1 \\
        --episodes 20 --json returns.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import gmc_rl  # noqa: F401  (registers the gmc_rl/ ids)
from gmc_rl.agents import load_agent
from gmc_rl.io import write_json_atomic


def mean_episode_return(env: gym.Env, encoder: Any, policy: Any, subset: list[str] | None, episodes: int,
                        transform: Callable[[np.ndarray], np.ndarray] | None = None) -> float:
    """Mean return of ``episodes`` episodes (reset seeds 1000, 1001, ...) acting on ``encoder.encode(obs, subset)``.

    ``policy`` is an SB3 model (deterministic ``predict``); ``transform``, when given, maps each latent batch to
    what the policy was trained on (e.g. a standardisation).
    """
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=1000 + episode)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                latent = encoder.encode({k: v[None] for k, v in obs.items()}, subset).cpu().numpy()
            action, _ = policy.predict(latent if transform is None else transform(latent), deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def episode_returns(agent_dir: str, episodes: int, action_fit: bool = True) -> dict[str, float]:
    """Mean episode return of the agent in ``agent_dir`` with every sensor and with each modality alone.

    ``action_fit`` false reads the encoder the agent was trained on instead of its action fit (if it has one).
    """
    agent = load_agent(agent_dir, action_fit=action_fit)
    if agent.encoder is None:
        raise SystemExit(f"{agent_dir} has no encoder (method {agent.method})")
    env = gym.make(agent.env_id, **agent.env_kwargs)
    means = {"complete" if subset is None else subset[0]:
             mean_episode_return(env, agent.encoder, agent.model, subset, episodes)
             for subset in [None, *([name] for name in agent.modalities)]}
    env.close()
    return means


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+", help="agent directories with an encoder (gmc, mvae, muse)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per condition (default 20)")
    parser.add_argument("--json", default=None, help="also write the means to this JSON file")
    parser.add_argument("--no-action-fit", action="store_true",
                        help="use the encoder the agent was trained on, not its action fit (agent_dir/action_fit)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for agent_dir in args.agents:
        means = results[agent_dir] = episode_returns(agent_dir, args.episodes, not args.no_action_fit)
        base = means["complete"]
        losses = " ".join(f"{name} {100 * (base - value) / abs(base):+.1f}" for name, value in means.items()
                          if name != "complete")
        print(f"{agent_dir}: " + " ".join(f"{name} {value:.1f}" for name, value in means.items())
              + f" | loss %: {losses}", flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
