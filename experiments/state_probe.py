"""How much of the true state a method's complete latent holds: a linear probe on the states a good controller visits.

For each agent directory given, the script runs the env with a true-state agent's policy (``--driver``, e.g.
``RUN_DIR/agents/state-seed0``: the states where control happens), encodes every complete observation with the
agent's frozen encoder (complete, and each modality alone through the encoder's own rule), fits a 10-nearest-neighbour
and a ridge regression from the latent to the true state (``info["state"]``) on the first two thirds of the steps
and prints R^2 per state variable on the last third (:func:`gmc_rl.state_probe.probe_states`, which pretraining
runs on its validation split, fitted on its training split). An R^2 near 1 means the controller can read that
quantity from the latent; near 0, it cannot.

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
from gmc_rl.agents.loading import Agent
from gmc_rl.state_probe import probe_states, state_variables


def add_driver_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a script that drives the env with a true-state agent (:func:`visited`)."""
    parser.add_argument("--driver", required=True, help="a true-state agent directory of the same env")
    parser.add_argument("--steps", type=int, default=3000, help="steps to collect (default 3000)")
    parser.add_argument("--seed", type=int, default=2000, help="first reset seed (default 2000)")


def visited(driver: Agent, steps: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Complete observations, true states and episode-start flags of ``steps`` steps driven by the true-state agent
    ``driver`` (episode ``i`` is reset with seed ``seed + i``)."""
    env = gym.make(driver.env_id, **driver.env_kwargs)
    observations: list[dict[str, np.ndarray]] = []
    states: list[np.ndarray] = []
    starts: list[bool] = []
    obs, info = env.reset(seed=seed)
    episode, done = 0, True
    while len(states) < steps:
        observations.append(obs)
        states.append(np.asarray(info["state"], dtype=np.float64))
        starts.append(done)
        action, _ = driver.model.predict(info["state"][None], deterministic=True)
        obs, _, terminated, truncated, info = env.step(action[0])
        done = terminated or truncated
        if done:
            episode += 1
            obs, info = env.reset(seed=seed + episode)
    env.close()
    batch = {name: np.stack([o[name] for o in observations]) for name in observations[0]}
    return batch, np.stack(states), np.array(starts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+", help="agent directories with an encoder (gmc, mvae, muse)")
    add_driver_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    driver = load_agent(args.driver)
    observations, states, _ = visited(driver, args.steps, args.seed)
    driver_env = gym.make(driver.env_id)
    names = state_variables(getattr(driver_env.unwrapped, "state_names", None), states.shape[1])
    driver_env.close()
    print(f"{len(states)} steps driven by {args.driver}; R^2 of a k-NN (linear) regression per state variable, "
          "fitted on the first 2/3 of the steps, scored on the rest")
    for agent_dir in args.agents:
        agent = load_agent(agent_dir)
        if agent.encoder is None:
            raise SystemExit(f"{agent_dir} has no encoder (method {agent.method})")
        report = probe_states(agent.encoder, observations, states, names)
        print(f"{agent_dir} ({agent.method}):\n{report.table()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
