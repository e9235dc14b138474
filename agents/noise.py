"""Exploration noise whose Ornstein-Uhlenbeck process is annealed: the GMC authors' DDPG exploration, in SB3.

SB3's :class:`~stable_baselines3.common.noise.OrnsteinUhlenbeckActionNoise` has a fixed sigma, and
:class:`gmc_rl.agents.registry.DecayingActionNoise` scales a process's *output* down. The GMC authors' pendulum
controller instead lowers the sigma of the process's *increments*, linearly in the frame count, so the state
carries what it had and relaxes towards the mean at rate theta; it adds no noise to the random warm-up actions and
never resets the process between episodes. :class:`AnnealedOrnsteinUhlenbeckNoise` is that process:

    x_{t+1} = x_t + theta (mean - x_t) dt + sigma_t sqrt(dt) N(0, 1),
    sigma_t = sigma (1 + (final_scale - 1) min(t / decay_steps, 1)),

where ``t`` counts the calls (one per frame with one env; SB3 copies the noise per env for several), the first
``start`` calls return zeros without moving the process, and :meth:`reset` does nothing unless
``reset_each_episode`` is set. Draws come from NumPy's global generator, as SB3's own noise classes (so the agent
seed makes a run reproducible).

SB3 adds action noise to the actions scaled to [-1, 1]; ``sigma`` and ``mean`` here are in those units.
:func:`gmc_rl.agents.registry.make_action_noise` converts values given in the env's units (``units: env``).

Example:
    >>> import numpy as np
    >>> noise = AnnealedOrnsteinUhlenbeckNoise(mean=np.zeros(1), sigma=np.full(1, 0.1), theta=0.15, dt=1.0,
    ...                                        decay_steps=100, start=10)
    >>> [round(float(noise.sigma_at(t)[0]), 6) for t in (0, 10, 50, 100, 150)]
    [0.1, 0.09, 0.05, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.noise import ActionNoise


class AnnealedOrnsteinUhlenbeckNoise(ActionNoise):
    """An Ornstein-Uhlenbeck process whose sigma falls linearly to ``final_scale * sigma`` over ``decay_steps``.

    Args:
        mean: the process's long-run mean, one value per action dimension.
        sigma: the increments' scale at call 0, one value per action dimension.
        theta: rate of relaxation towards ``mean`` per unit of time.
        dt: time per call (1: one frame is one unit of time, as the authors' code).
        decay_steps: calls over which sigma falls linearly to ``final_scale * sigma`` (then stays there).
        final_scale: sigma's final fraction (0: the noise dies out).
        start: calls that return zeros (the random warm-up); the schedule counts them.
        reset_each_episode: :meth:`reset` (SB3 calls it at each episode end) puts the process back at ``mean``;
            False (the authors' code) keeps it running across episodes.
    """

    def __init__(self, mean: np.ndarray, sigma: np.ndarray, theta: float = 0.15, dt: float = 1.0,
                 decay_steps: int = 100_000, final_scale: float = 0.0, start: int = 0,
                 reset_each_episode: bool = False) -> None:
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        if self.mean.shape != self.sigma.shape or self.mean.ndim != 1:
            raise ValueError(f"mean and sigma must be vectors of one shape, got {self.mean.shape} and "
                             f"{self.sigma.shape}")
        if np.any(self.sigma < 0) or not (theta >= 0 and dt > 0 and decay_steps > 0 and start >= 0
                                          and final_scale >= 0):
            raise ValueError(f"need sigma >= 0, theta >= 0, dt > 0, decay_steps > 0, start >= 0 and "
                             f"final_scale >= 0; got sigma {self.sigma}, theta {theta}, dt {dt}, decay_steps "
                             f"{decay_steps}, start {start}, final_scale {final_scale}")
        self.theta, self.dt = float(theta), float(dt)
        self.decay_steps, self.final_scale, self.start = int(decay_steps), float(final_scale), int(start)
        self.reset_each_episode = bool(reset_each_episode)
        self.calls = 0
        self.state = self.mean.copy()

    def sigma_at(self, t: int) -> np.ndarray:
        """The increments' sigma at call ``t``."""
        fraction = min(t / self.decay_steps, 1.0)
        return self.sigma * (1.0 + (self.final_scale - 1.0) * fraction)

    def __call__(self) -> np.ndarray:
        t = self.calls
        self.calls += 1
        if t < self.start:
            return np.zeros_like(self.mean)
        self.state = (self.state + self.theta * (self.mean - self.state) * self.dt
                      + self.sigma_at(t) * np.sqrt(self.dt) * np.random.normal(size=self.mean.shape))
        return self.state.copy()

    def reset(self) -> None:
        if self.reset_each_episode:
            self.state = self.mean.copy()

    def __repr__(self) -> str:
        return (f"AnnealedOrnsteinUhlenbeckNoise(mean={self.mean}, sigma={self.sigma}, theta={self.theta}, "
                f"dt={self.dt}, decay_steps={self.decay_steps}, final_scale={self.final_scale}, start={self.start}, "
                f"reset_each_episode={self.reset_each_episode})")


def continue_noise_schedule(noise: ActionNoise | None, calls: int) -> None:
    """Set the call count of every scheduled noise in ``noise`` to ``calls`` (the steps each env has taken).

    Called when training resumes from a checkpoint: a noise whose scale follows a schedule of calls
    (:class:`AnnealedOrnsteinUhlenbeckNoise`, the registry's decaying noise) continues the schedule where the
    checkpointed run left it instead of starting it over. SB3 calls the noise once per step of each env, so the
    count is the checkpoint's ``num_timesteps // n_envs``. The process's current value is not in the checkpoint and
    starts again from its mean. Noises without a schedule (and ``None``) are left as they are.
    """
    if noise is None:
        return
    for each in getattr(noise, "noises", [noise]):  # SB3's VectorizedActionNoise holds one copy per env
        if hasattr(each, "calls"):
            each.calls = int(calls)
