"""Guard against sensors that output NaN or inf.

A broken sensor can emit non-finite numbers; fed to an encoder they silently turn the whole latent into NaN. The
guard checks every floating-point modality at reset and at every step and either stops with a
:class:`~gmc_rl.errors.SensorValueError` naming the modality (default) or treats that modality as dropped for that
step (zero-filled, marked missing in the availability mask).
"""

from __future__ import annotations

from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

from gmc_rl.errors import ConfigError, SensorValueError
from gmc_rl.modalities import modality_specs
from gmc_rl.wrappers._mask import apply_mask, fill_values, masked_space, present_names, read_mask

NONFINITE_CHOICES = ("raise", "drop")


class NonFiniteGuard(gym.Wrapper, RecordConstructorArgs):
    """Detect NaN/inf sensor values: raise a clear error, or drop the modality for that step.

    Args:
        env: an env with a ``Dict`` observation of at least two modalities.
        on_nonfinite: "raise" (default) raises :class:`~gmc_rl.errors.SensorValueError`; "drop" zero-fills the
            modality and marks it missing for that step.
        expose_mask: with "drop", add the ``"available"`` mask to the observation (as
            :class:`~gmc_rl.wrappers.ModalityDropout` does); ignored with "raise", which leaves the space as is.

    With "drop", ``info["nonfinite_modalities"]`` lists the modalities dropped for that reason and
    ``info["available_modalities"]`` those present.

    Example:
        >>> import gymnasium as gym, gmc_rl
        >>> env = NonFiniteGuard(gym.make("gmc_rl/PendulumSound-v0"), on_nonfinite="drop")
        >>> obs, info = env.reset(seed=0)
        >>> sorted(obs), obs["available"]
        (['available', 'image', 'sound'], array([1, 1], dtype=int8))
    """

    def __init__(self, env: gym.Env, on_nonfinite: str = "raise", expose_mask: bool = True) -> None:
        RecordConstructorArgs.__init__(self, on_nonfinite=on_nonfinite, expose_mask=expose_mask)
        gym.Wrapper.__init__(self, env)
        if on_nonfinite not in NONFINITE_CHOICES:
            raise ConfigError(f"on_nonfinite must be one of {list(NONFINITE_CHOICES)}, got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.specs = modality_specs(env.observation_space)
        space = cast(spaces.Dict, env.observation_space)  # modality_specs checked that it is a Dict
        self.modalities = list(self.specs)
        self.expose_mask = bool(expose_mask)
        self._checked = [name for name, spec in self.specs.items() if np.issubdtype(np.dtype(spec.dtype), np.inexact)]
        self._fills = fill_values(space, self.modalities)
        self._steps = 0
        if on_nonfinite == "drop":
            self.observation_space = masked_space(space, self.modalities, self.expose_mask)

    def _bad_modalities(self, obs: dict[str, Any]) -> list[str]:
        return [name for name in self._checked if not np.isfinite(obs[name]).all()]

    def _process(self, obs: dict[str, Any], info: dict[str, Any], when: str) -> dict[str, Any]:
        bad = self._bad_modalities(obs)
        if self.on_nonfinite == "raise":
            if bad:
                details = ", ".join(
                    f"{name!r} ({int(np.isnan(obs[name]).sum())} NaN, {int(np.isinf(obs[name]).sum())} inf)"
                    for name in bad
                )
                raise SensorValueError(
                    f"sensor values are not finite at {when}: modality {details}; fix the sensor, or wrap the env "
                    f"with NonFiniteGuard(env, on_nonfinite='drop') to treat such a modality as missing for that step"
                )
            return obs
        present = read_mask(obs, len(self.modalities)) & np.array([name not in bad for name in self.modalities])
        info["nonfinite_modalities"] = bad
        info["available_modalities"] = present_names(self.modalities, present)
        return apply_mask(obs, self._fills, present, self.expose_mask)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Reset the env and check the first observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._steps = 0
        return self._process(obs, info, "reset"), info

    def step(self, action: Any) -> tuple[dict, SupportsFloat, bool, bool, dict]:
        """Step the env and check the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        return self._process(obs, info, f"step {self._steps} of the episode"), reward, terminated, truncated, info
