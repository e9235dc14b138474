"""Does a frozen encoder's latent support control? Imitate a true-state expert from the latent (DAgger), then act.

Reinforcement learning on a latent can fail for two reasons: the latent does not hold what control needs, or the
learner does not find the controller that the latent allows. This script separates them without any RL: a small
policy network (the size of SB3's default MLP) is fitted by supervised learning to the actions of a true-state
agent (``--driver``) from the latent of the complete observation, with DAgger (Ross et al., 2011) so that it also
learns on the states its own mistakes lead to: round 0 follows the expert, later rounds follow the learner while
the expert labels every visited state; the learner is refitted on everything gathered so far. The fitted policy then
acts from the latent of every sensor and of each modality alone (the encoder's own rule), in an evaluation loop of
its own (reset seeds 1000, 1001, ...; :func:`independent_returns.mean_episode_return`).

If the imitating policy reaches the expert's return, the latent holds a working controller and the RL agent's
failure on it is the learner's; if it does not, the representation (or the input the controller gets) is short.

Example::

    OMP_NUM_THREADS=1 python experiments/imitation_probe.py RUN/agents/gmc-seed0 \\
        --driver RUN/agents/state-seed0 --rounds 5 --steps 2000 --episodes 10
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import gmc_rl  # noqa: F401  (registers the gmc_rl/ ids)
from gmc_rl.agents import load_agent
from gmc_rl.experiments.independent_returns import mean_episode_return
from gmc_rl.io import write_json_atomic


class ImitationPolicy:
    """An MLP from latent to action (logits for a discrete action space, the action itself for a box).

    Exposes SB3's ``predict(obs, deterministic)`` so that the shared evaluation loop can run it.
    """

    def __init__(self, latent_dim: int, action_space: gym.Space, seed: int, hidden: int = 64) -> None:
        torch.manual_seed(seed)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if isinstance(action_space, gym.spaces.Discrete):
            out = int(action_space.n)
        elif isinstance(action_space, gym.spaces.Box):
            out = int(np.prod(action_space.shape))
            self.low, self.high = action_space.low, action_space.high
        else:
            raise SystemExit(f"imitation needs a Discrete or Box action space, got {action_space}")
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                                 nn.Linear(hidden, out))

    def fit(self, latents: np.ndarray, actions: np.ndarray, epochs: int, seed: int) -> float:
        """Fit on all pairs gathered so far; return the final training agreement (accuracy or R^2)."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.as_tensor(latents, dtype=torch.float32)
        y = torch.as_tensor(actions, dtype=torch.long if self.discrete else torch.float32)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        loss_fn: Any = nn.CrossEntropyLoss() if self.discrete else nn.MSELoss()
        for _ in range(epochs):
            for batch in torch.randperm(len(x), generator=generator).split(256):
                optimizer.zero_grad()
                out = self.net(x[batch])
                loss = loss_fn(out, y[batch] if self.discrete else y[batch].reshape(out.shape))
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            out = self.net(x)
        if self.discrete:
            return float((out.argmax(1) == y).float().mean())
        residual = ((out - y.reshape(out.shape)) ** 2).sum()
        return float(1 - residual / ((y - y.mean(0)) ** 2).sum().clamp_min(1e-12))

    def predict(self, latent: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        with torch.no_grad():
            out = self.net(torch.as_tensor(latent, dtype=torch.float32))
        if self.discrete:
            return out.argmax(1).numpy(), None
        return np.clip(out.numpy(), self.low, self.high), None


def latent_features(encoder: Any) -> Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray]:
    """The complete observation's latent under ``encoder``."""
    def features(obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        with torch.no_grad():
            return encoder.encode({k: v[None] for k, v in obs.items()}, None).cpu().numpy()[0]
    return features


def state_features(obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
    """The true state (the calibration: what imitation reaches when the input holds everything)."""
    return np.asarray(info["state"], dtype=np.float32)


def raw_features(modalities: list[str]) -> Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray]:
    """The named modalities' raw observations, flattened and concatenated (images scaled to [0, 1])."""
    def features(obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        parts = [obs[name].astype(np.float32).ravel() / (255.0 if obs[name].dtype == np.uint8 else 1.0)
                 for name in modalities]
        return np.concatenate(parts)
    return features


def gather(env: gym.Env, features: Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray], expert: Any,
           learner: ImitationPolicy | None, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """``steps`` (features, expert action) pairs on the states visited by ``learner`` (or the expert if None).

    Also returns the mean return of the episodes finished on the way (the acting policy's closed-loop return; None
    when none ended).
    """
    inputs: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    returns: list[float] = []
    obs, info = env.reset(seed=seed)
    episode, total = 0, 0.0
    while len(inputs) < steps:
        x = features(obs, info)
        expert_action, _ = expert.predict(np.asarray(info["state"])[None], deterministic=True)
        inputs.append(x)
        actions.append(expert_action[0])
        acting = expert_action if learner is None else learner.predict(x[None])[0]
        obs, reward, terminated, truncated, info = env.step(acting[0])
        total += float(reward)
        if terminated or truncated:
            returns.append(total)
            episode, total = episode + 1, 0.0
            obs, info = env.reset(seed=seed + episode)
    return np.stack(inputs), np.stack(actions), float(np.mean(returns)) if returns else None


def dagger(env: gym.Env, features: Callable[[dict[str, np.ndarray], dict[str, Any]], np.ndarray], expert: Any,
           rounds: int, steps: int, epochs: int, seed: int,
           hidden: int = 64) -> tuple[ImitationPolicy, list[dict[str, Any]]]:
    """Fit an imitating policy by DAgger: round 0 follows the expert, later rounds the learner."""
    learner: ImitationPolicy | None = None
    all_inputs, all_actions, history = [], [], []
    for round_index in range(rounds):
        inputs, actions, acting_return = gather(env, features, expert, learner, steps, seed + 100 * round_index)
        all_inputs.append(inputs)
        all_actions.append(actions)
        if learner is None:
            learner = ImitationPolicy(inputs.shape[1], env.action_space, seed, hidden)
        agreement = learner.fit(np.concatenate(all_inputs), np.concatenate(all_actions), epochs, seed + round_index)
        history.append({"round": round_index, "acting_return": acting_return, "train_agreement": agreement})
        shown = "-" if acting_return is None else f"{acting_return:.1f}"  # None: no episode ended in the round
        print(f"  round {round_index}: acting return {shown}, train agreement {agreement:.3f}",
              flush=True)
    assert learner is not None
    return learner, history


def imitate(agent_dir: str, driver_dir: str, rounds: int, steps: int, epochs: int, episodes: int,
            seed: int, hidden: int = 64) -> dict[str, Any]:
    """DAgger from the encoder of ``agent_dir`` (or the true state: ``state``) to the true-state ``driver_dir``."""
    driver = load_agent(driver_dir)
    if agent_dir == "state" or agent_dir.startswith("raw:"):
        env = gym.make(driver.env_id, **driver.env_kwargs)
        features = state_features if agent_dir == "state" else raw_features(agent_dir[4:].split(","))
        learner, history = dagger(env, features, driver.model, rounds, steps, epochs, seed, hidden)
        # Closed loop over episodes x the env's step limit, reset seeds 1000, 1001, ...
        limit = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
        _, _, final_return = gather(env, features, driver.model, learner, episodes * limit, 1000)
        env.close()
        return {"rounds": history, "returns": {agent_dir: final_return}}
    agent = load_agent(agent_dir)
    if agent.encoder is None:
        raise SystemExit(f"{agent_dir} has no encoder (method {agent.method})")
    env = gym.make(agent.env_id, **agent.env_kwargs)
    learner, history = dagger(env, latent_features(agent.encoder), driver.model, rounds, steps, epochs, seed,
                              hidden)
    final = {"complete" if subset is None else subset[0]:
             mean_episode_return(env, agent.encoder, learner, subset, episodes)
             for subset in [None, *([name] for name in agent.modalities)]}
    env.close()
    return {"rounds": history, "returns": final}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+",
                        help="agent directories with an encoder (gmc, mvae, muse); state: the true state; "
                             "raw:MOD[,MOD]: those modalities' raw observations")
    parser.add_argument("--driver", required=True, help="a true-state agent directory of the same env (the expert)")
    parser.add_argument("--rounds", type=int, default=5, help="DAgger rounds, the first one following the expert")
    parser.add_argument("--steps", type=int, default=2000, help="steps gathered per round (default 2000)")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the gathered data per fit (default 30)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per condition (default 10)")
    parser.add_argument("--seed", type=int, default=3000, help="first reset seed of the gathering (default 3000)")
    parser.add_argument("--hidden", type=int, default=64, help="units of each of the two hidden layers (default 64)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--import", dest="modules", action="append", default=[], metavar="MODULE",
                        help="import this module first (the module of your own 'module:id' env; repeatable)")
    args = parser.parse_args(argv)
    for module in args.modules:
        importlib.import_module(module)
    torch.set_num_threads(1)
    results = {}
    for agent_dir in args.agents:
        print(f"{agent_dir}:", flush=True)
        result = results[agent_dir] = imitate(agent_dir, args.driver, args.rounds, args.steps, args.epochs,
                                              args.episodes, args.seed, args.hidden)
        print("  imitation returns: " + " ".join(f"{k} {v:.1f}" for k, v in result["returns"].items()), flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
