"""Does standardising GMC's latent for the controller make PPO learn more reliably? A diagnosis run, not a command.

PPO (the CartPoleSensors or AcrobotSensors config's settings) is trained on a frozen GMC encoder's complete latents,
standardised per dimension either by SB3's ``VecNormalize`` (running statistics of the latents the agent visits)
or by fixed statistics (mean and standard deviation of the encoder's stored reference latents, i.e. complete
latents of the pretraining data). It is then evaluated with every sensor and with each sensor alone through the
same standardisation, with an evaluation loop of its own (reset seeds 1000 + episode).

Example::

    OMP_NUM_THREADS=1 python experiments/latent_standardisation.py RUN/gmc --env gmc_rl/CartPoleSensors-v0 \
        --config experiments/cartpole_sensors.yaml --seed 0 --mode vecnormalize --episodes 20
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

import gmc_rl  # noqa: F401  (registers the env ids)
from gmc_rl.agents.registry import build_algorithm
from gmc_rl.checkpoint import load_gmc
from gmc_rl.config import load_config
from gmc_rl.experiments.independent_returns import mean_episode_return
from gmc_rl.wrappers.vec_latent import VecGMCLatent

CLIP = 10.0


class FixedStandardisation(VecEnvWrapper):
    """(z - mean) / std with fixed statistics, clipped to +-CLIP (as VecNormalize clips)."""

    def __init__(self, venv, mean: np.ndarray, std: np.ndarray) -> None:
        space = gym.spaces.Box(-CLIP, CLIP, venv.observation_space.shape, np.float32)
        super().__init__(venv, observation_space=space)
        self.mean, self.std = mean, std

    def standardise(self, latents: np.ndarray) -> np.ndarray:
        return np.clip((latents - self.mean) / self.std, -CLIP, CLIP).astype(np.float32)

    def reset(self):
        return self.standardise(self.venv.reset())

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        return self.standardise(obs), rewards, dones, infos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder")
    parser.add_argument("--env", required=True)
    parser.add_argument("--config", required=True, help="experiment config whose agent section is used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["vecnormalize", "fixed"], required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--total-timesteps", type=int, help="default: the config's agent.total_timesteps")
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent_config = load_config(args.config).agent
    model = load_gmc(args.encoder)
    latents = VecGMCLatent(make_vec_env(args.env, n_envs=agent_config.n_envs, seed=args.seed), model)
    venv: VecEnv
    if args.mode == "vecnormalize":
        venv = VecNormalize(latents, norm_obs=True, norm_reward=False, clip_obs=CLIP)
    else:
        if model.reference_latents is None:
            parser.error(f"{args.encoder} holds no reference latents (pretrain.reference_latents was 0)")
        reference = model.reference_latents.numpy()
        venv = FixedStandardisation(latents, reference.mean(0), reference.std(0) + 1e-8)
    agent = build_algorithm(agent_config.algo, venv, agent_config.hyperparams_for("gmc"), args.seed,
                            tensorboard_log=None, device="cpu")
    agent.learn(args.total_timesteps or agent_config.total_timesteps)
    def standardise(latents: np.ndarray) -> np.ndarray:
        """The agent's view of a latent: the standardisation it was trained through, frozen."""
        if isinstance(venv, VecNormalize):
            venv.training = False
            return np.asarray(venv.normalize_obs(latents))
        assert isinstance(venv, FixedStandardisation)
        return venv.standardise(latents)


    env = gym.make(args.env)
    returns = {"complete" if condition is None else condition[0]:
               mean_episode_return(env, model, agent, condition, args.episodes, standardise)
               for condition in [None, *[[name] for name in model.modalities]]}
    line = {"encoder": args.encoder, "seed": args.seed, "mode": args.mode, "episodes": args.episodes, **returns}
    print(json.dumps(line), flush=True)
    if args.json:
        with open(args.json, "a") as file:
            file.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
