"""Sensor dropout: remove modalities from a multimodal observation, on purpose or at random.

A dropped modality is information the agent does not get. The observation keeps its space (the dropped modality
is filled with zeros, which is all a raw-observation policy sees), and with ``expose_mask=True`` it also carries
the mask of present modalities under :data:`~gmc_rl.modalities.AVAILABILITY_KEY`, so that
:class:`~gmc_rl.wrappers.GMCLatent` encodes only the modalities that are really there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.modalities import modality_specs
from gmc_rl.wrappers._mask import (
    apply_mask,
    as_name_list,
    check_seed,
    fill_values,
    masked_space,
    present_names,
    read_mask,
    wrapper_rng,
)

PER_CHOICES = ("episode", "step")


def max_keep_one_probability(n_modalities: int) -> float:
    """Largest per-modality drop probability compatible with always keeping one of ``n_modalities``."""
    return (n_modalities - 1) / n_modalities


def keep_one_count_probabilities(q: float, n_modalities: int) -> np.ndarray:
    """P(K = k), k = 0..M-1, of the number K of modalities dropped by independent Bernoulli(q) draws, given K < M."""
    m = n_modalities
    weights = np.array([math.comb(m, k) * q**k * (1.0 - q) ** (m - k) for k in range(m)])
    return weights / weights.sum()


def keep_one_bernoulli(p: float, n_modalities: int) -> float:
    """The probability ``q`` whose independent draws, redrawn while all modalities are dropped, drop each with ``p``.

    Rejecting the all-dropped draws lowers the drop rate of each modality from ``q`` to
    ``(q - q**M) / (1 - q**M)``; this solves that for ``q`` (by bisection; the function increases from 0 to
    ``(M - 1) / M``), so that ``p`` stays the exact fraction of time a modality is missing.
    """
    if p <= 0.0:
        return 0.0
    m = n_modalities
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        rate = (mid - mid**m) / (1.0 - mid**m)
        lo, hi = (mid, hi) if rate < p else (lo, mid)
    return 0.5 * (lo + hi)


class ModalityDropout(gym.Wrapper, RecordConstructorArgs):
    """Drop modalities of a ``Dict`` observation: a fixed set, or each at random with probability ``p``.

    Args:
        env: an env with a ``Dict`` observation of at least two modalities.
        drop: modality name(s) always dropped (a fixed condition such as "image only"). Excludes ``p``.
        p: probability that a modality is missing, drawn independently per modality, once per episode
            (``per="episode"``) or at every step (``per="step"``). With ``keep_one`` it stays the exact marginal
            drop rate of every modality (see :func:`keep_one_bernoulli`), so it must be at most ``(M-1)/M``.
        per: "episode" or "step".
        keep_one: never drop every modality at once (random dropout; also when an inner wrapper such as
            :class:`~gmc_rl.wrappers.NonFiniteGuard` already removed some, one of the rest is kept).
        expose_mask: add the ``"available"`` ``MultiBinary(M)`` mask to the observation (needed by
            :class:`~gmc_rl.wrappers.GMCLatent`); ``False`` keeps exactly the env's modality keys, for policies on
            raw observations that should just see zeros.
        seed: seed of the wrapper's own generator; ``reset(seed=...)`` reseeds it from both seeds.
        allow_all: allow a fixed ``drop`` of every modality (the observation is then all zeros).

    ``info["available_modalities"]`` lists the modalities present in the returned observation.

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = ModalityDropout(gym.make("gmc_rl/PendulumSound-v0"), p=0.3, per="step", seed=0)
        >>> obs, info = env.reset(seed=1)
        >>> info["available_modalities"], obs["available"]
        (['image'], array([1, 0], dtype=int8))
    """

    def __init__(
        self,
        env: gym.Env,
        drop: str | Sequence[str] | None = None,
        p: float = 0.0,
        per: str = "episode",
        keep_one: bool = True,
        expose_mask: bool = True,
        seed: int | None = None,
        allow_all: bool = False,
    ) -> None:
        RecordConstructorArgs.__init__(
            self, drop=drop, p=p, per=per, keep_one=keep_one, expose_mask=expose_mask, seed=seed, allow_all=allow_all
        )
        gym.Wrapper.__init__(self, env)
        self.specs = modality_specs(env.observation_space)
        space = cast(spaces.Dict, env.observation_space)  # modality_specs checked that it is a Dict
        self.modalities = list(self.specs)
        n = len(self.modalities)
        self.drop = as_name_list(drop, self.modalities, "ModalityDropout(drop=...)")
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= float(p) <= 1.0:
            raise ConfigError(f"dropout probability p must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        if per not in PER_CHOICES:
            raise ConfigError(f"ModalityDropout(per=...) must be one of {list(PER_CHOICES)}, got {per!r}")
        self.per = per
        if self.drop and self.p > 0.0:
            raise ConfigError(
                f"ModalityDropout takes either a fixed drop={self.drop} or a random p={self.p}, not both"
            )
        if len(self.drop) == n and not allow_all:
            raise ModalityError(
                f"drop={self.drop} removes every modality, which leaves no observation; keep at least one of "
                f"{self.modalities}, or pass allow_all=True if an all-zero observation is really intended"
            )
        if keep_one and self.p > max_keep_one_probability(n) + 1e-12:
            raise ConfigError(
                f"dropout probability p={self.p} is too high with keep_one=True: with {n} modalities at most "
                f"{n - 1} can be missing at once, so p must be <= {max_keep_one_probability(n):.4g} "
                f"(or pass keep_one=False)"
            )
        self.keep_one = bool(keep_one)
        self.expose_mask = bool(expose_mask)
        self._seed = check_seed(seed)
        self._rng = wrapper_rng(self._seed, None, type(self).__name__)
        self._q = keep_one_bernoulli(self.p, n) if self.keep_one else self.p
        self._count_probs = keep_one_count_probabilities(self._q, n) if self.keep_one and 0 < self.p < 1 else None
        self._keep = self._sample_keep()
        self._present = np.ones(n, dtype=bool)
        self._fills = fill_values(space, self.modalities)
        self.observation_space = masked_space(space, self.modalities, self.expose_mask)

    @property
    def available_modalities(self) -> list[str]:
        """Modalities present in the last observation returned."""
        return present_names(self.modalities, self._present)

    def _sample_keep(self) -> np.ndarray:
        """Draw which modalities this wrapper keeps (True = kept)."""
        n = len(self.modalities)
        if self.drop:
            return np.array([name not in self.drop for name in self.modalities])
        if self.p == 0.0:
            return np.ones(n, dtype=bool)
        if self.keep_one and self.p >= max_keep_one_probability(n) - 1e-12:
            keep = np.zeros(n, dtype=bool)  # the limit case: exactly one modality survives
            keep[self._rng.integers(n)] = True
            return keep
        if not self.keep_one:
            return self._rng.random(n) >= self.p
        # Independent Bernoulli(q) draws conditioned on "not all dropped", sampled exactly without rejection: the
        # number dropped from its conditional law, then which ones uniformly (the draws are exchangeable).
        count = self._rng.choice(n, p=self._count_probs)
        keep = np.ones(n, dtype=bool)
        keep[self._rng.permutation(n)[:count]] = False
        return keep

    def _process(self, obs: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        upstream = read_mask(obs, len(self.modalities))
        present = upstream & self._keep
        if self.keep_one and not self.drop and not present.any() and upstream.any():
            present[self._rng.choice(np.flatnonzero(upstream))] = True
        self._present = present
        info["available_modalities"] = present_names(self.modalities, present)
        return apply_mask(obs, self._fills, present, self.expose_mask)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset the env; reseed the dropout generator if ``seed`` is given; draw the episode's drop set."""
        if seed is not None:
            self._rng = wrapper_rng(self._seed, check_seed(seed, "reset seed"), type(self).__name__)
        obs, info = self.env.reset(seed=seed, options=options)
        self._keep = self._sample_keep()
        return self._process(obs, info), info

    def step(self, action: Any) -> tuple[dict, SupportsFloat, bool, bool, dict]:
        """Step the env; with ``per="step"`` draw a new drop set first."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.per == "step":
            self._keep = self._sample_keep()
        return self._process(obs, info), reward, terminated, truncated, info
