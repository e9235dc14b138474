"""Transfer diagnostics: does a controller trained on complete latents act the same from fewer sensors?

Alignment metrics on the pretraining data (:mod:`gmc_rl.metrics`) describe the behaviour policy's states. A
controller spends its time elsewhere (a balancing pendulum stays upright, which a random policy almost never
reaches), so these diagnostics are measured on the states the controller itself visits. For every modality subset
S they compare the controller fed with S against the same controller fed with every sensor:

- ``latent_gap``: mean distance ``||z_S - z_complete||`` over the observations of the controller's own episodes
  with every sensor (their first ``horizon`` steps; both latents computed from the same observation);
- ``action_gap``: mean difference between the actions ``pi(z_S)`` and ``pi(z_complete)`` on those observations,
  as a fraction of the half range of a ``Box`` action space (for ``Discrete`` actions, the rate of disagreement);
  one step, open loop;
- ``drift``: paired closed-loop episodes, started from the same state (same seed), one fed with every sensor and
  one with S: the mean distance between the complete latents of the two trajectories over the first ``horizon``
  steps. Zero when the subset-fed controller follows the same path; it grows when small action differences add up
  to a different behaviour, which the one-step gaps cannot see;
- ``reward_loss``: how much worse the mean return of the S-fed paired episodes is than that of the complete ones,
  as a fraction of the latter's magnitude (rewards summed over the first ``horizon`` steps, or until the episode
  ends; 0.1 is 10 % worse, negative is better). The return, not the per-step reward: where episodes end early
  (CartPole) the per-step reward stays the same while the controller fails.

The encoder is anything with ``modalities`` and ``encode(observation_batch, modalities) -> (B, k)`` tensor (an
:class:`~gmc_rl.methods.Encoder`: the GMC model, the MVAE, or the encoder of any registered method); ``predict``
maps a ``(B, k)`` numpy batch of latents to a batch of actions (deterministic).

Example:
    >>> import numpy as np, torch, gymnasium as gym
    >>> from gymnasium import spaces
    >>> class TwoSensors(gym.Env):  # both modalities see the same number; episodes of 5 steps
    ...     observation_space = spaces.Dict({"a": spaces.Box(-9, 9, (1,)), "b": spaces.Box(-9, 9, (1,))})
    ...     action_space = spaces.Box(-1, 1, (1,))
    ...     def reset(self, *, seed=None, options=None):
    ...         super().reset(seed=seed); self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
    ...         return self._obs(), {}
    ...     def step(self, action):
    ...         self.x += float(action[0]); self.t += 1
    ...         return self._obs(), -abs(self.x), False, self.t >= 5, {}
    ...     def _obs(self):
    ...         return {"a": np.array([self.x], np.float32), "b": np.array([self.x], np.float32)}
    >>> class SameLatent:  # every subset gives the same latent
    ...     modalities = ["a", "b"]
    ...     def encode(self, obs, modalities=None):
    ...         return torch.as_tensor(np.asarray(obs["a"]))
    >>> report = diagnose_transfer(SameLatent(), lambda z: -0.5 * z, TwoSensors, [["a"], ["b"]], episodes=2)
    >>> report["a"]["latent_gap"], report["a"]["action_gap"], report["a"]["drift"]
    (0.0, 0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from gmc_rl.errors import ConfigError
from gmc_rl.evaluate import defined_loss
from gmc_rl.methods import Encoder

Predict = Callable[[np.ndarray], Any]



def subset_name(subset: Sequence[str]) -> str:
    """The condition name of a modality subset ("image", "image+sound")."""
    return "+".join(subset)


def _stack(observations: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([np.asarray(obs[name]) for obs in observations]) for name in observations[0]}


def _encode(encoder: Encoder, batch: Mapping[str, np.ndarray], subset: Sequence[str] | None) -> np.ndarray:
    with torch.no_grad():
        return encoder.encode(batch, None if subset is None else list(subset)).detach().cpu().numpy()


def _action_difference(a: np.ndarray, b: np.ndarray, action_space: spaces.Space) -> np.ndarray:
    """Per-sample action difference: mean |a - b| / half range for Box actions, 0/1 disagreement otherwise."""
    if isinstance(action_space, spaces.Box):
        half_range = (np.asarray(action_space.high, np.float64) - np.asarray(action_space.low, np.float64)) / 2
        half_range = np.where(np.isfinite(half_range) & (half_range > 0), half_range, 1.0)
        diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).reshape(len(a), -1)
        return (diff / half_range.reshape(1, -1)).mean(axis=1)
    return (np.asarray(a).reshape(len(a), -1) != np.asarray(b).reshape(len(b), -1)).any(axis=1).astype(np.float64)


def _rollouts(encoder: Encoder, predict: Predict, envs: Sequence[gym.Env], subset: Sequence[str] | None,
              seed: int, horizon: int | None) -> tuple[list[list[dict[str, np.ndarray]]], np.ndarray, np.ndarray]:
    """Run one episode per env in lockstep (env i seeded ``seed + i``), the controller fed with ``subset``.

    Returns the observations each env saw (per env, per step), the complete latent of every step (``(T, n)``
    with NaN after an episode ended) and the rewards (``(T, n)``, NaN after the end).
    """
    n = len(envs)
    current = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    running = np.ones(n, dtype=bool)
    seen: list[list[dict[str, np.ndarray]]] = [[] for _ in range(n)]
    latents, rewards = [], []
    t = 0
    while running.any() and (horizon is None or t < horizon):
        batch = _stack(current)
        z_complete = _encode(encoder, batch, None)
        z_input = z_complete if subset is None else _encode(encoder, batch, subset)
        actions = np.asarray(predict(z_input))
        step_latents = np.full_like(z_complete, np.nan)
        step_rewards = np.full(n, np.nan)
        for i in np.flatnonzero(running).tolist():
            seen[i].append(current[i])
            step_latents[i] = z_complete[i]
            current[i], reward, terminated, truncated, _ = envs[i].step(actions[i])
            step_rewards[i] = float(reward)
            if terminated or truncated:
                running[i] = False
        latents.append(step_latents)
        rewards.append(step_rewards)
        t += 1
    return seen, np.stack(latents), np.stack(rewards)


def diagnose_transfer(
    encoder: Encoder,
    predict: Predict,
    make_env: Callable[[], gym.Env],
    subsets: Sequence[Sequence[str]],
    *,
    episodes: int = 10,
    horizon: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float | None]]:
    """The transfer diagnostics of a controller for each modality subset (see the module docstring).

    Args:
        encoder: the frozen encoder the controller reads (``encode(batch, modalities)``).
        predict: latents ``(B, k)`` -> actions ``(B, ...)``, deterministic.
        make_env: a factory of the raw multimodal env (Dict observations).
        subsets: the modality subsets to diagnose, e.g. ``[["image"], ["sound"]]``.
        episodes: paired episodes per subset (run in lockstep, one batched encoder pass per step).
        horizon: steps of every episode run, the complete ones whose observations the gaps are measured on
            included (None: whole episodes).
        seed: env ``i`` is reset with ``seed + i`` in both members of a pair.

    Returns:
        ``{subset name: {"latent_gap", "action_gap", "drift", "reward_loss", "complete_return",
        "subset_return"}}`` (the returns: mean over the paired episodes of their rewards in the first ``horizon``
        steps).

    Raises:
        ConfigError: no subsets, an unknown modality, or ``episodes``/``horizon`` below 1.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    if horizon is not None and horizon < 1:
        raise ConfigError(f"horizon must be at least 1 (or None for whole episodes), got {horizon}")
    if not subsets:
        raise ConfigError("no modality subsets to diagnose")
    for subset in subsets:
        unknown = [m for m in subset if m not in encoder.modalities]
        if unknown or not subset:
            raise ConfigError(f"modality subset {list(subset)} is not a non-empty subset of {encoder.modalities}")
    envs = [make_env() for _ in range(episodes)]
    try:
        action_space = envs[0].action_space
        seen, complete_latents, complete_rewards = _rollouts(encoder, predict, envs, None, seed, horizon)
        visited = _stack([obs for episode in seen for obs in episode])
        # The rollout encoded every visited observation already: its complete latents, in the same (env, step) order.
        z_complete = np.concatenate([complete_latents[:len(episode), i] for i, episode in enumerate(seen)])
        actions_complete = np.asarray(predict(z_complete))
        report: dict[str, dict[str, float | None]] = {}
        for subset in subsets:
            z_subset = _encode(encoder, visited, subset)
            action_gap = _action_difference(np.asarray(predict(z_subset)), actions_complete, action_space)
            _, subset_latents, subset_rewards = _rollouts(encoder, predict, envs, subset, seed, horizon)
            steps = min(len(subset_latents), len(complete_latents))
            distance = np.linalg.norm(subset_latents[:steps] - complete_latents[:steps], axis=-1)
            complete_return = float(np.nansum(complete_rewards, axis=0).mean())  # (T, n) -> per episode -> mean
            subset_return = float(np.nansum(subset_rewards, axis=0).mean())
            report[subset_name(subset)] = {
                "latent_gap": float(np.linalg.norm(z_subset - z_complete, axis=1).mean()),
                "action_gap": float(action_gap.mean()),
                "drift": float(np.nanmean(distance)) if np.isfinite(distance).any() else 0.0,
                "reward_loss": defined_loss(complete_return, subset_return),  # None: a complete return of 0
                "complete_return": complete_return,
                "subset_return": subset_return,
            }
        return report
    finally:
        for env in envs:
            env.close()
