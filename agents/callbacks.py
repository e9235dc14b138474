"""Periodic evaluation on complete observations during training, recorded atomically in the agent directory.

:class:`EvalRecorder` is SB3's :class:`~stable_baselines3.common.callbacks.EvalCallback` (same schedule, same
``eval/mean_reward`` TensorBoard scalars) with its files written the gmc-rl way: ``eval/evaluations.json``
(timesteps, per-episode returns and lengths) and ``eval/best_model.zip`` are replaced atomically, and a resumed
run continues the history and the best score instead of starting over.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv

from gmc_rl.agents.agent_dir import save_model_atomic
from gmc_rl.io import read_json, write_json_atomic
from gmc_rl.progress import progress_bar

EVALUATIONS = "evaluations.json"
BEST_MODEL = "best_model.zip"


class EvalRecorder(EvalCallback):
    """Evaluate every ``eval_freq`` calls on ``eval_env``; keep the history and the best model in ``directory``."""

    def __init__(self, eval_env: VecEnv, directory: str | Path, eval_freq: int, n_eval_episodes: int, verbose: int = 0):
        super().__init__(
            eval_env,
            n_eval_episodes=n_eval_episodes,
            eval_freq=eval_freq,
            log_path=None,
            best_model_save_path=None,
            deterministic=True,
            verbose=verbose,
            warn=False,
        )
        self.directory = Path(directory)
        self.history: dict[str, list[Any]] = {"timesteps": [], "mean_reward": [], "std_reward": [],
                                              "episode_rewards": [], "episode_lengths": []}
        self._episodes: tuple[list, list] | None = None
        path = self.directory / EVALUATIONS
        if path.is_file():
            try:
                saved = read_json(path, what="evaluation history")
                if isinstance(saved, dict) and all(isinstance(saved.get(k), list) for k in self.history):
                    self.history = {k: list(saved[k]) for k in self.history}
            except ValueError:
                pass  # a damaged history is only a log: start a new one
        if self.history["mean_reward"]:
            self.best_mean_reward = float(max(self.history["mean_reward"]))

    def _on_training_start(self) -> None:
        # Count calls from the steps already done, so a resumed run evaluates at the same steps as an
        # uninterrupted one (EvalCallback schedules by n_calls; each call is one step of every env).
        self.n_calls = self.model.num_timesteps // max(self.training_env.num_envs, 1)
        super()._on_training_start()

    def _log_success_callback(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        # evaluate_policy passes its running lists of finished episodes; keep references to read them afterwards.
        self._episodes = (locals_["episode_rewards"], locals_["episode_lengths"])
        super()._log_success_callback(locals_, globals_)

    def _on_step(self) -> bool:
        evaluating = self.eval_freq > 0 and self.n_calls % self.eval_freq == 0
        previous_best = self.best_mean_reward
        self._episodes = None
        continue_training = super()._on_step()
        if evaluating and self._episodes is not None:
            rewards = [float(r) for r in self._episodes[0]]
            lengths = [int(n) for n in self._episodes[1]]
            self.history["timesteps"].append(int(self.num_timesteps))
            self.history["mean_reward"].append(float(np.mean(rewards)))
            self.history["std_reward"].append(float(np.std(rewards)))
            self.history["episode_rewards"].append(rewards)
            self.history["episode_lengths"].append(lengths)
            write_json_atomic(self.directory / EVALUATIONS, self.history)
            if self.best_mean_reward > previous_best:
                save_model_atomic(self.model, self.directory / BEST_MODEL)
        return continue_training


class ProgressCallback(BaseCallback):
    """Training progress through :func:`gmc_rl.progress.progress_bar`: a bar on a terminal, plain lines in a log,
    the progress file in a pipeline worker (SB3's own bar only draws on a terminal)."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        super().__init__()
        self.total, self.desc, self.enabled = total, desc, enabled
        self.bar: Any = None

    def _on_training_start(self) -> None:
        self.bar = progress_bar(self.total, self.desc, "step", enabled=self.enabled)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class UpdateTracker(BaseCallback):
    """Knows whether the algorithm is inside its gradient updates, where an interrupt must not be saved.

    SB3 calls ``on_rollout_end`` right before ``train()`` (the gradient steps) and ``on_rollout_start`` when the next
    rollout begins, so :attr:`updating` is True from the one to the other. A KeyboardInterrupt (Ctrl-C, SIGTERM, a
    cancelled Ray task) that lands there can leave the weights and the optimiser half updated (measured: Adam's
    state with ``exp_avg`` but no ``exp_avg_sq``, which a resumed run cannot load); training then resumes from the
    last periodic checkpoint instead of saving that state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.updating = False

    def _on_rollout_end(self) -> None:
        self.updating = True

    def _on_rollout_start(self) -> None:
        self.updating = False

    def _on_step(self) -> bool:
        return True
