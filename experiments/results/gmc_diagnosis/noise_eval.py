"""Mean episode return of CartPoleSensors GMC agents with the joints' sensor noise on (0.01) and off (0.0).

Diagnosis of issue 21 (is the controller's failure sensor noise?): the agent's own encoder and policy, every sensor,
reset seeds 1000-1019, deterministic actions. Usage: ``python noise_eval.py AGENT_DIR...``
"""

import json
import sys

import gymnasium as gym
import torch

import gmc_rl  # noqa: F401  (registers the env ids)
from gmc_rl.agents import load_agent
from gmc_rl.experiments.independent_returns import mean_episode_return

if __name__ == "__main__":
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        agent = load_agent(path)
        returns = {f"joint_noise={noise}": mean_episode_return(gym.make(agent.env_id, joint_noise=noise), agent.encoder,
                                                               agent.model, None, episodes=20)
                   for noise in (0.01, 0.0)}
        print(path, json.dumps(returns))
