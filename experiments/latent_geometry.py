"""How easy a latent is to act from: its local stretch along trajectories and how far a linear policy gets.

On steps driven by a true-state agent (``--driver``; the states where control happens), for each encoder agent:

- **stretch**: for consecutive steps of an episode, the latent's step ``||z(t+1) - z(t)||`` over the true state's
  step (each latent dimension and state variable divided by its standard deviation over the driven steps). A
  latent that moves little between neighbouring states (a stretch far below 1) leaves the controller small
  differences to act on. A code that is a smooth,
  even map of the state has a narrow stretch distribution; the script prints its median and the ratio of its 90th
  to its 10th percentile (1 = the same stretch everywhere).
- **linear agreement**: a least-squares fit from the latent (plus a constant) to the expert's action, fitted on the
  first two thirds of the steps and scored on the rest: accuracy of the arg-max for a discrete action space, R^2
  for a box. The same fit on the true state is printed first as the reference.

Example::

    OMP_NUM_THREADS=1 python experiments/latent_geometry.py RUN/agents/gmc-seed0 RUN/agents/mvae-seed0 \\
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
from gmc_rl.experiments.state_probe import add_driver_arguments, visited
from gmc_rl.io import write_json_atomic


def linear_agreement(inputs: np.ndarray, actions: np.ndarray, discrete: bool, n_actions: int) -> float:
    """Held-out agreement of a least-squares linear map from ``inputs`` to the expert's ``actions``."""
    x = np.concatenate([inputs, np.ones((len(inputs), 1))], axis=1)
    y = np.eye(n_actions)[actions.astype(int)] if discrete else actions.reshape(len(actions), -1)
    split = 2 * len(x) // 3
    weights, *_ = np.linalg.lstsq(x[:split], y[:split], rcond=None)
    predicted = x[split:] @ weights
    if discrete:
        return float((predicted.argmax(1) == actions[split:].astype(int)).mean())
    residual = ((predicted - y[split:]) ** 2).sum()
    return float(1 - residual / max(((y[split:] - y[split:].mean(0)) ** 2).sum(), 1e-12))


def stretch(latents: np.ndarray, states: np.ndarray, continues: np.ndarray) -> np.ndarray:
    """Latent step over state step, both standardised per dimension, for every consecutive pair ``t, t + 1`` where
    ``continues[t]``; divided by the square root of the ratio of their dimensions, so an isometry scores about 1."""
    scaled = states / np.maximum(states.std(0), 1e-12)
    latents = latents / np.maximum(latents.std(0), 1e-12)
    latent_steps = np.linalg.norm(np.diff(latents, axis=0), axis=1)[continues[:-1]]
    state_steps = np.linalg.norm(np.diff(scaled, axis=0), axis=1)[continues[:-1]]
    keep = state_steps > 1e-9
    return latent_steps[keep] / state_steps[keep] / np.sqrt(latents.shape[1] / states.shape[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+", help="agent directories with an encoder (gmc, mvae, muse)")
    add_driver_arguments(parser)
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    driver = load_agent(args.driver)
    observations, states, starts = visited(driver, args.steps, args.seed)
    actions, _ = driver.model.predict(states.astype(np.float32), deterministic=True)
    space = driver.model.action_space
    discrete = isinstance(space, gym.spaces.Discrete)
    n_actions = int(space.n) if discrete else 0
    continues = np.append(~starts[1:], False)  # step t + 1 belongs to the episode of step t
    results: dict[str, dict[str, float]] = {"state": {
        "linear_agreement": linear_agreement(states, actions, discrete, n_actions)}}
    print(f"{len(states)} steps driven by {args.driver}; state: linear agreement "
          f"{results['state']['linear_agreement']:.3f}")
    for agent_dir in args.agents:
        agent = load_agent(agent_dir)
        if agent.encoder is None:
            raise SystemExit(f"{agent_dir} has no encoder (method {agent.method})")
        with torch.no_grad():
            latents = np.concatenate([agent.encoder.encode({k: v[i:i + 500] for k, v in observations.items()},
                                                           None).cpu().numpy()
                                      for i in range(0, len(states), 500)])
        ratios = stretch(latents, states, continues)
        p10, p50, p90 = np.percentile(ratios, [10, 50, 90])
        row = results[agent_dir] = {"linear_agreement": linear_agreement(latents, actions, discrete, n_actions),
                                    "stretch_median": float(p50), "stretch_p90_over_p10": float(p90 / p10)}
        print(f"{agent_dir} ({agent.method}): linear agreement {row['linear_agreement']:.3f}, stretch median "
              f"{p50:.3f}, p90/p10 {p90 / p10:.2f}", flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
