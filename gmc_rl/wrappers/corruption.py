"""Sensor corruption beyond dropout, for robustness studies: Gaussian noise, salt-and-pepper, a stuck sensor.

Each wrapper corrupts the chosen modalities of a ``Dict`` observation with a ``severity`` in its own units and
draws from its own seeded generator (reseeded by ``reset(seed=...)``, like
:class:`~gmc_rl.wrappers.ModalityDropout`). Corrupted values are clipped into the declared space, so the
observation space does not change. Modalities marked missing by an inner dropout wrapper are left alone; put the
corruption wrappers *inside* the dropout wrapper (``ModalityDropout(GaussianNoise(env, ...))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.utils import RecordConstructorArgs

from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.modalities import modality_specs
from gmc_rl.wrappers._mask import as_name_list, check_seed, modality_box, read_mask, wrapper_rng


def _check_severity(value: float, name: str, upper: float | None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating)) and math.isfinite(value)
    if not ok or value < 0 or (upper is not None and value > upper):
        bound = f"in [0, {upper:g}]" if upper is not None else "a finite number >= 0"
        raise ConfigError(f"{name} severity must be {bound}, got {value!r}")
    return float(value)


class _Corruption(gym.Wrapper, RecordConstructorArgs):
    """Common part: target modalities, seeding, mask handling. Subclasses implement :meth:`_corrupt`."""

    def __init__(self, env: gym.Env, modalities: str | Sequence[str], severity: float, seed: int | None) -> None:
        RecordConstructorArgs.__init__(self, modalities=modalities, severity=severity, seed=seed)
        gym.Wrapper.__init__(self, env)
        self.specs = modality_specs(env.observation_space)
        self.all_modalities = list(self.specs)
        self.targets = as_name_list(modalities, self.all_modalities, f"{type(self).__name__}(modalities=...)")
        if not self.targets:
            raise ModalityError(
                f"{type(self).__name__} needs at least one modality to corrupt; choose from {self.all_modalities}"
            )
        self._seed = check_seed(seed)
        self._rng = wrapper_rng(self._seed, None, type(self).__name__)

    def _corrupt(self, name: str, value: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _start_episode(self) -> None:
        """Hook for per-episode state."""

    def _process(self, obs: dict[str, Any]) -> dict[str, Any]:
        present = read_mask(obs, len(self.all_modalities))
        out = dict(obs)
        for name in self.targets:
            if present[self.all_modalities.index(name)]:
                out[name] = self._corrupt(name, np.asarray(obs[name]))
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset the env (reseeding the corruption if ``seed`` is given) and corrupt the first observation."""
        if seed is not None:
            self._rng = wrapper_rng(self._seed, check_seed(seed, "reset seed"), type(self).__name__)
        obs, info = self.env.reset(seed=seed, options=options)
        self._start_episode()
        return self._process(obs), info

    def step(self, action: Any) -> tuple[dict, SupportsFloat, bool, bool, dict]:
        """Step the env and corrupt the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._process(obs), reward, terminated, truncated, info


class GaussianNoise(_Corruption):
    """Add zero-mean Gaussian noise to modalities; ``severity`` is its std relative to the declared range.

    The std of each value is ``severity * (high - low)`` of its ``Box`` bounds (``severity`` alone where a bound is
    infinite). Images get the noise in pixel units, rounded and clipped to ``uint8``; every result is clipped into
    the declared bounds.

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = GaussianNoise(gym.make("gmc_rl/PendulumSound-v0"), "sound", severity=0.1, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> obs["sound"].shape, obs["sound"].dtype
        ((2, 3, 2), dtype('float32'))
    """

    def __init__(self, env: gym.Env, modalities: str | Sequence[str], severity: float, seed: int | None = None) -> None:
        super().__init__(env, modalities, severity, seed)
        self.severity = _check_severity(severity, "GaussianNoise", None)
        self._std: dict[str, np.ndarray] = {}
        self._bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in self.targets:
            box = modality_box(env.observation_space, name)
            low, high = box.low.astype(np.float64), box.high.astype(np.float64)
            span = np.where(np.isfinite(high - low), high - low, 1.0)
            self._std[name] = self.severity * span
            self._bounds[name] = (low, high)

    def _corrupt(self, name: str, value: np.ndarray) -> np.ndarray:
        noisy = value.astype(np.float64) + self._rng.standard_normal(value.shape) * self._std[name]
        if np.issubdtype(value.dtype, np.integer):
            noisy = np.rint(noisy)
        low, high = self._bounds[name]
        return np.clip(noisy, low, high).astype(value.dtype)


class SaltPepperNoise(_Corruption):
    """Set a fraction ``severity`` of an image's pixel values to black or white (each with probability 1/2).

    Every channel (a stacked frame) is a separate plane of pixels; "black" and "white" are the declared bounds
    (0 and 255 for the usual ``uint8`` image).

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = SaltPepperNoise(gym.make("gmc_rl/PendulumSound-v0"), "image", severity=0.05, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> obs["image"].dtype, set(obs["image"].ravel().tolist()) >= {0, 255}
        (dtype('uint8'), True)
    """

    def __init__(self, env: gym.Env, modalities: str | Sequence[str], severity: float, seed: int | None = None) -> None:
        super().__init__(env, modalities, severity, seed)
        self.severity = _check_severity(severity, "SaltPepperNoise", 1.0)
        for name in self.targets:
            if self.specs[name].kind != "image":
                images = [n for n, s in self.specs.items() if s.kind == "image"]
                raise ModalityError(
                    f"salt-and-pepper noise applies to images (uint8, channel-first), but modality {name!r} is a "
                    f"{self.specs[name].dtype} vector of shape {self.specs[name].shape}; image modalities: {images}"
                )
        boxes = {name: modality_box(env.observation_space, name) for name in self.targets}
        self._bounds = {name: (box.low, box.high) for name, box in boxes.items()}

    def _corrupt(self, name: str, value: np.ndarray) -> np.ndarray:
        hit = self._rng.random(value.shape) < self.severity
        salt = self._rng.random(value.shape) < 0.5
        low, high = self._bounds[name]
        out = value.copy()
        out[hit & salt] = high[hit & salt]
        out[hit & ~salt] = low[hit & ~salt]
        return out


class StuckSensor(_Corruption):
    """A sensor that freezes: from the step it sticks until the episode ends it repeats its last value.

    ``severity`` is the probability, at every step, that a still-working sensor sticks (drawn independently per
    modality). The default 1.0 sticks at the first step, so the episode shows the reset observation throughout;
    0.01 sticks after about 100 steps on average. ``info["stuck_modalities"]`` lists the frozen modalities.

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = StuckSensor(gym.make("gmc_rl/PendulumSound-v0"), "image", severity=0.02, seed=0)
        >>> obs, info = env.reset(seed=0)
        >>> obs["image"].shape
        (2, 60, 60)
    """

    def __init__(
        self, env: gym.Env, modalities: str | Sequence[str], severity: float = 1.0, seed: int | None = None
    ) -> None:
        super().__init__(env, modalities, severity, seed)
        self.severity = _check_severity(severity, "StuckSensor", 1.0)
        self._frozen: dict[str, np.ndarray] = {}
        self._last: dict[str, np.ndarray] = {}
        self._started = False

    def _start_episode(self) -> None:
        self._frozen = {}
        self._last = {}
        self._started = False

    def _corrupt(self, name: str, value: np.ndarray) -> np.ndarray:
        if self._started and name not in self._frozen and name in self._last and self._rng.random() < self.severity:
            self._frozen[name] = self._last[name]
        self._last[name] = value.copy()
        return self._frozen[name].copy() if name in self._frozen else value

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset: every sensor works again; the reset observation is the value a sensor sticking at once repeats."""
        obs, info = super().reset(seed=seed, options=options)
        self._started = True
        info["stuck_modalities"] = []
        return obs, info

    def step(self, action: Any) -> tuple[dict, SupportsFloat, bool, bool, dict]:
        """Step; each working sensor may stick now."""
        obs, reward, terminated, truncated, info = super().step(action)
        info["stuck_modalities"] = [name for name in self.targets if name in self._frozen]
        return obs, reward, terminated, truncated, info
