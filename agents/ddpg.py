"""SB3's DDPG with an optional learning rate of its own for the actor.

SB3's :class:`~stable_baselines3.DDPG` has one ``learning_rate`` for the actor's and the critic's Adam optimizers.
DDPG as published (Lillicrap et al., 2016) and the GMC authors' pendulum controller use two: actor 1e-4, critic
1e-3. :class:`DDPG` adds ``actor_learning_rate``: when it is given, ``learning_rate`` is the critic's rate and
``actor_learning_rate`` the actor's (a number, or a function of the remaining progress like SB3's schedules);
when it is ``None`` (the default) the algorithm is exactly SB3's.

Example:
    >>> import gymnasium as gym
    >>> model = DDPG("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=1e-3, actor_learning_rate=1e-4,
    ...              policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    >>> model.actor.optimizer.param_groups[0]["lr"], model.critic.optimizer.param_groups[0]["lr"]
    (0.0001, 0.001)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stable_baselines3
import torch
from stable_baselines3.common.utils import update_learning_rate

Rate = float | Callable[[float], float]


class DDPG(stable_baselines3.DDPG):
    """SB3's DDPG; ``actor_learning_rate`` (optional) gives the actor's Adam a rate of its own.

    Every other argument is SB3's (``learning_rate`` is then the critic's rate). The actor's rate is applied when
    the model is set up and at every training step (where SB3 resets both optimizers to ``learning_rate``), and
    logged as ``train/actor_learning_rate``.
    """

    def __init__(self, *args: Any, actor_learning_rate: Rate | None = None, **kwargs: Any) -> None:
        if actor_learning_rate is not None and not callable(actor_learning_rate):
            actor_learning_rate = float(actor_learning_rate)
            if not actor_learning_rate > 0:
                raise ValueError(f"actor_learning_rate must be positive, got {actor_learning_rate}")
        self.actor_learning_rate = actor_learning_rate
        super().__init__(*args, **kwargs)

    def current_actor_learning_rate(self) -> float:
        """The actor's learning rate now (``learning_rate``'s schedule when ``actor_learning_rate`` is None)."""
        progress = self._current_progress_remaining
        rate = self.actor_learning_rate
        if rate is None:
            return float(self.lr_schedule(progress))
        return float(rate(progress)) if callable(rate) else float(rate)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.actor_learning_rate is not None:
            update_learning_rate(self.actor.optimizer, self.current_actor_learning_rate())

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        super()._update_learning_rate(optimizers)
        if self.actor_learning_rate is not None:
            rate = self.current_actor_learning_rate()
            update_learning_rate(self.actor.optimizer, rate)
            self.logger.record("train/actor_learning_rate", rate)
