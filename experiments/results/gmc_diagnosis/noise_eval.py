"""Mean episode return of CartPoleSensors GMC agents with the joints' sensor noise on (0.01) and off (0.0).

Diagnosis of issue 21 (is the controller's failure sensor noise?): the agent's own encoder and policy, every sensor,
reset seeds 1000-1019, deterministic actions. Usage: ``python noise_eval.py AGENT_DIR...``
"""

import json
import sys

import gymnasium as gym
import numpy as np
import torch

import gmc_rl  # noqa: F401  (registers the env ids)
from gmc_rl.agents import load_agent


def mean_return(agent, joint_noise: float, episodes: int = 20) -> float:
    env = gym.make(agent.env_id, joint_noise=joint_noise)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=1000 + episode)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                latent = agent.encoder.encode({k: v[None] for k, v in obs.items()}).numpy()
            action, _ = agent.model.predict(latent, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        agent = load_agent(path)
        print(path, json.dumps({f"joint_noise={noise}": mean_return(agent, noise) for noise in (0.01, 0.0)}))
