"""Evaluation conditions: short strings that name which sensors work and how, turned into wrapper stacks.

Grammar (modality names are those of the env's ``Dict`` observation):

- ``complete``: every modality present.
- ``image``, ``image+sound``: only the named modalities present (any order; all of them is ``complete``).
- ``dropout:P``: every modality dropped independently with probability ``P`` at every step, one always kept.
- ``noise:MOD:SEVERITY``: Gaussian noise on ``MOD``, std = ``SEVERITY`` x its declared range.
- ``saltpepper:MOD:SEVERITY``: a fraction ``SEVERITY`` of ``MOD``'s pixels set to black or white (images only).
- ``stuck:MOD`` or ``stuck:MOD:SEVERITY``: ``MOD`` freezes (at the first step, or with probability ``SEVERITY``
  per step) and repeats its last value.

Every condition is applied through :class:`~gmc_rl.wrappers.ModalityDropout` as the outer wrapper, so all
conditions of one env give the same observation space (with or without the availability mask).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym

from gmc_rl.errors import ConfigError, ModalityError, suggest
from gmc_rl.modalities import modality_specs
from gmc_rl.wrappers.corruption import GaussianNoise, SaltPepperNoise, StuckSensor
from gmc_rl.wrappers.dropout import ModalityDropout, max_keep_one_probability

CONDITION_KINDS = ("complete", "subset", "dropout", "noise", "saltpepper", "stuck")
_PREFIXES = ("dropout", "noise", "saltpepper", "stuck")
_FORMS = (
    "'complete', a modality name, names joined by '+', 'dropout:P', 'noise:MODALITY:SEVERITY', "
    "'saltpepper:MODALITY:SEVERITY', 'stuck:MODALITY' or 'stuck:MODALITY:SEVERITY'"
)


@dataclass(frozen=True)
class Condition:
    """A parsed evaluation condition.

    Attributes:
        name: canonical text (modalities in canonical order, numbers in short form), e.g. ``"image+sound"``.
        kind: one of :data:`CONDITION_KINDS`.
        modalities: for "complete"/"subset" the present modalities; for corruption kinds the corrupted one;
            empty for "dropout".
        p: dropout probability (kind "dropout").
        severity: corruption severity (kinds "noise", "saltpepper", "stuck").
    """

    name: str
    kind: str
    modalities: tuple[str, ...] = ()
    p: float = 0.0
    severity: float = 0.0


def _number(text: str, condition: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"condition {condition!r}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"condition {condition!r}: {what} must be finite, got {text!r}")
    return value


def _modality(text: str, condition: str, modalities: Sequence[str]) -> str:
    if text not in modalities:
        raise ModalityError(
            f"condition {condition!r}: unknown modality {text!r}; available modalities are "
            f"{list(modalities)}.{suggest(text, modalities)}"
        )
    return text


def parse_condition(text: str, modalities: Sequence[str]) -> Condition:
    """Parse a condition string for an env with the given modality names (canonical order).

    Raises:
        ModalityError: an unknown modality name (the message lists the valid ones).
        ConfigError: an unknown condition form, a malformed or out-of-range number.
    """
    modalities = list(modalities)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a condition must be a non-empty string, one of: {_FORMS}; got {text!r}")
    text = text.strip()
    if text == "complete":
        return Condition("complete", "complete", tuple(modalities))
    if text in _PREFIXES:
        raise ConfigError(f"condition {text!r} needs arguments; conditions have the forms {_FORMS}")
    if ":" not in text:
        parts = [part.strip() for part in text.split("+")]
        for part in parts:
            if part not in modalities:
                valid = ["complete", *modalities, *_PREFIXES]
                raise ModalityError(
                    f"condition {text!r}: unknown modality {part!r}; available modalities are {modalities} "
                    f"(conditions have the forms {_FORMS}).{suggest(part, valid)}"
                )
        present = tuple(name for name in modalities if name in parts)
        if len(present) == len(modalities):
            return Condition("complete", "complete", present)
        return Condition("+".join(present), "subset", present)
    kind, *args = [part.strip() for part in text.split(":")]
    if kind not in _PREFIXES:
        raise ConfigError(
            f"condition {text!r}: unknown kind {kind!r}; conditions have the forms {_FORMS}.{suggest(kind, _PREFIXES)}"
        )
    if kind == "dropout":
        if len(args) != 1:
            raise ConfigError(f"condition {text!r}: expected 'dropout:P', e.g. 'dropout:0.3'")
        p = _number(args[0], text, "the dropout probability")
        limit = max_keep_one_probability(len(modalities))
        if not 0.0 <= p <= limit:
            raise ConfigError(
                f"condition {text!r}: the dropout probability must be in [0, {limit:.4g}] for {len(modalities)} "
                f"modalities (one modality is always kept), got {p:g}"
            )
        return Condition(f"dropout:{p:g}", "dropout", (), p=p)
    if kind == "stuck":
        if len(args) not in (1, 2):
            raise ConfigError(f"condition {text!r}: expected 'stuck:MODALITY' or 'stuck:MODALITY:SEVERITY'")
        name = _modality(args[0], text, modalities)
        severity = _number(args[1], text, "the severity") if len(args) == 2 else 1.0
        if not 0.0 <= severity <= 1.0:
            raise ConfigError(
                f"condition {text!r}: the stuck severity is a per-step probability in [0, 1], got {severity:g}"
            )
        label = f"stuck:{name}" if len(args) == 1 else f"stuck:{name}:{severity:g}"
        return Condition(label, "stuck", (name,), severity=severity)
    if len(args) != 2:
        raise ConfigError(f"condition {text!r}: expected '{kind}:MODALITY:SEVERITY', e.g. '{kind}:{modalities[0]}:0.1'")
    name = _modality(args[0], text, modalities)
    severity = _number(args[1], text, "the severity")
    upper = 1.0 if kind == "saltpepper" else math.inf
    if not 0.0 <= severity <= upper:
        raise ConfigError(f"condition {text!r}: the severity must be in [0, {upper:g}], got {severity:g}")
    return Condition(f"{kind}:{name}:{severity:g}", kind, (name,), severity=severity)


def apply_condition(env: gym.Env, condition: Condition | str, seed: int | None, expose_mask: bool) -> gym.Env:
    """Wrap ``env`` so that it shows ``condition``.

    Args:
        env: an env with a ``Dict`` observation of modalities.
        condition: a :class:`Condition` or a condition string (parsed against the env's modalities).
        seed: seed of the random wrappers (dropout, noise); ``reset(seed=...)`` reseeds them further.
        expose_mask: add the availability mask (for :class:`~gmc_rl.wrappers.GMCLatent`); ``False`` for policies
            on raw observations, which then see zero-filled missing modalities.

    Returns:
        The wrapped env; its outer wrapper is always a :class:`ModalityDropout`, so every condition gives the
        same observation space.
    """
    modalities = list(modality_specs(env.observation_space))
    if isinstance(condition, str):
        condition = parse_condition(condition, modalities)
    if condition.kind not in CONDITION_KINDS:
        raise ConfigError(f"unknown condition kind {condition.kind!r}; valid kinds: {list(CONDITION_KINDS)}")
    if condition.kind == "complete":
        return ModalityDropout(env, expose_mask=expose_mask, seed=seed)
    if condition.kind == "subset":
        dropped = [name for name in modalities if name not in condition.modalities]
        return ModalityDropout(env, drop=dropped, expose_mask=expose_mask, seed=seed)
    if condition.kind == "dropout":
        return ModalityDropout(env, p=condition.p, per="step", keep_one=True, expose_mask=expose_mask, seed=seed)
    corruption = {"noise": GaussianNoise, "saltpepper": SaltPepperNoise, "stuck": StuckSensor}[condition.kind]
    env = corruption(env, list(condition.modalities), severity=condition.severity, seed=seed)
    return ModalityDropout(env, expose_mask=expose_mask, seed=seed)


def all_subset_conditions(modalities: Sequence[str]) -> list[str]:
    """``"complete"`` followed by every non-empty proper subset of ``modalities``, smallest subsets first.

    Example:
        >>> all_subset_conditions(["image", "sound", "joints"])
        ['complete', 'image', 'sound', 'joints', 'image+sound', 'image+joints', 'sound+joints']
    """
    modalities = list(modalities)
    out = ["complete"]
    for size in range(1, len(modalities)):
        out.extend("+".join(combo) for combo in itertools.combinations(modalities, size))
    return out
