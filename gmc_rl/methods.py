"""The representation methods: what each name in ``ExperimentConfig.methods`` means, in one registry.

A method is what an agent's policy observes. A :class:`RepresentationMethod` says how to get there: pretrain an
encoder on the collected dataset, load it, check it against an env, and wrap the env stack
(:func:`gmc_rl.agents.observations.make_method_vec_env`) so that the policy reads the encoder's latent (or the true
state, or the raw observation). Config validation, agent training and loading, ``gmc-rl train`` and the pipeline all
look methods up here, so a new method is one new module and one :func:`register_method` call.

Built-in methods:

- ``gmc``: the GMC latent (:mod:`gmc_rl.pretrain`, :class:`~gmc_rl.wrappers.VecGMCLatent`);
- ``raw``: the ``Dict`` observation itself, dropped modalities zero-filled;
- ``mvae``: the posterior mean of the product-of-experts VAE baseline (:mod:`gmc_rl.mvae`);
- ``state``: the true state (:class:`~gmc_rl.wrappers.StateObservation`), the upper bound;
- ``muse``: the top-level posterior mean of the hierarchical MUSE baseline (:mod:`gmc_rl.muse`).

An encoder checkpoint is a directory holding at least ``config.json`` and ``model.safetensors`` (the files an agent
directory copies into ``encoder/``). Methods run by the pipeline with ``jobs > 1`` must be registered in every
worker process, i.e. when a module the workers import is imported.

This module imports neither torch nor Stable-Baselines3: the built-in entries name their functions as
``"module:attribute"`` (:class:`Lazy`), imported on first call, so that :mod:`gmc_rl.config` can validate
``methods`` against the registry cheaply.

Example:
    >>> get_method("gmc").needs_encoder, get_method("raw").needs_encoder
    (True, False)
    >>> get_method("gcm")
    Traceback (most recent call last):
    ...
    gmc_rl.errors.ConfigError: unknown method 'gcm'; valid: ['gmc', 'raw', 'mvae', 'state', 'muse']. Did you mean 'gmc'?
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from gmc_rl.errors import ConfigError, suggest

if TYPE_CHECKING:
    from pathlib import Path

    import gymnasium as gym
    import torch
    from stable_baselines3.common.vec_env import VecEnv


class Encoder(Protocol):
    """A frozen encoder a policy reads: observations of any subset of its modalities in, one latent out.

    Both built-in encoders (:class:`~gmc_rl.model.GMCModel`, :class:`~gmc_rl.mvae.MVAEModel`) satisfy it, and it is
    all the transfer diagnostics (:mod:`gmc_rl.transfer`) need.
    """

    modalities: list[str]
    """The modalities it reads, in canonical order."""
    latent_dim: int
    """k, the size of the latent."""

    def encode(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> torch.Tensor:
        """Latents ``(B, k)`` of a batch of ``Dict`` observations from ``modalities`` only (None: all of them)."""
        ...


@dataclass(frozen=True)
class Lazy:
    """A callable standing for the function (or class) ``"module:attribute"``, imported on its first call.

    It keeps this module free of heavy imports and, unlike a closure, pickles (pipeline workers receive it).
    """

    target: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Import the target and call it with the given arguments."""
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)(*args, **kwargs)


@dataclass(frozen=True)
class EncoderStage:
    """Where the pipeline puts a method's encoder: its stage name, output directory and what its hash reads.

    The stage hash is that of ``{"data": <hash of the collect stage>, "pretrain": <the pretrain section>,
    **extra_inputs}``; a run directory whose marker holds the same hash counts the encoder as done, so these
    values must not change for an existing method.
    """

    name: str
    """Stage name (done-marker ``stages/<name>.json``)."""
    directory: str
    """Output directory inside the run directory."""
    label: str
    """What the pipeline's log calls the stage."""
    extra_inputs: Mapping[str, Any] = field(default_factory=dict)
    """Hash inputs beyond the dataset and the pretrain section (they tell encoders of the same data apart)."""


_NAME = re.compile(r"[a-z][a-z0-9_]*")
GENERIC_ENCODER_FLAG = "--encoder"
"""The ``gmc-rl train`` flag that names the encoder checkpoint of any method."""


@dataclass(frozen=True)
class RepresentationMethod:
    """One method: what its policy observes and, for methods that read an encoder, how the encoder is made.

    A method needs an encoder exactly when it has ``pretrain`` (and then ``load``). Without ``wrap_vec_env`` and
    ``wrap_env`` the policy reads the (condition-wrapped) ``Dict`` observation itself.
    """

    name: str
    """Lower-case identifier: the ``methods`` entry, the ``--method`` choice and the agent directory prefix."""
    description: str
    """One line: what the policy observes."""
    pretrain: Callable[..., Path] | None = None
    """``pretrain(config, data_dir, out_dir, *, resume, progress) -> out_dir``: train the encoder on a dataset and
    write its checkpoint (at least ``config.json`` + ``model.safetensors``); ``resume`` continues an interrupted run."""
    load: Callable[..., Encoder] | None = None
    """``load(path, device=...) -> Encoder``: the checkpoint directory's encoder, frozen (no unpickling)."""
    check_space: Callable[[Encoder, gym.spaces.Space], None] | None = None
    """``check_space(encoder, observation_space)``: raise (a ``CheckpointError``) naming every mismatch between the
    encoder and an env, before anything is written. Optional."""
    wrap_vec_env: Callable[[VecEnv, Encoder | None], VecEnv] | None = None
    """``wrap_vec_env(venv, encoder) -> VecEnv``: the batched wrapper whose observations the policy reads."""
    wrap_env: Callable[[gym.Env], gym.Env] | None = None
    """``wrap_env(env) -> env``: a per-env observation wrapper, applied above the sensor condition."""
    expose_mask: bool = False
    """Whether sensor conditions add the availability mask to the observation (for ``wrap_vec_env``)."""
    stage: EncoderStage | None = None
    """The pipeline stage of the encoder (default: :meth:`encoder_stage`'s ``pretrain_<name>`` in ``<name>/``)."""
    encoder_flag: str = GENERIC_ENCODER_FLAG
    """The ``gmc-rl train`` flag named in errors about a missing checkpoint (``--gmc`` for gmc)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"method name {self.name!r} must be lower-case letters, digits and '_', starting "
                              "with a letter")
        if (self.pretrain is None) != (self.load is None):
            raise ConfigError(f"method {self.name!r}: an encoder needs both pretrain and load (got only one)")
        if not self.needs_encoder:
            given = [key for key in ("check_space", "stage") if getattr(self, key) is not None]
            if given or self.encoder_flag != GENERIC_ENCODER_FLAG:
                raise ConfigError(f"method {self.name!r} has no encoder (no pretrain), so "
                                  f"{given or ['encoder_flag']} would never be used")

    @property
    def needs_encoder(self) -> bool:
        """True if the policy reads a pretrained encoder (the pipeline collects data and pretrains it)."""
        return self.pretrain is not None

    def load_encoder(self, path: str | Path, device: str = "cpu") -> Encoder:
        """The encoder checkpoint directory ``path``, loaded with ``load`` onto ``device``.

        Raises:
            ConfigError: the method reads no encoder.
        """
        if self.load is None:
            raise ConfigError(f"method {self.name!r} reads no encoder")
        return self.load(path, device=device)

    @property
    def encoder_stage(self) -> EncoderStage:
        """The pipeline stage of the encoder: ``stage``, or ``pretrain_<name>`` writing ``<name>/``."""
        if self.stage is not None:
            return self.stage
        return EncoderStage(f"pretrain_{self.name}", self.name, f"pretrain {self.name}", {"method": self.name})


_REGISTRY: dict[str, RepresentationMethod] = {}


def register_method(method: RepresentationMethod) -> RepresentationMethod:
    """Add ``method`` to the registry (and so to the valid ``methods``); return it.

    Raises:
        ConfigError: a method of that name is registered already.
    """
    if method.name in _REGISTRY:
        raise ConfigError(f"method {method.name!r} is registered already")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a registered method (e.g. one a test or a plugin added); unknown names raise ConfigError."""
    get_method(name)
    del _REGISTRY[name]


def get_method(name: str) -> RepresentationMethod:
    """The registered method ``name``.

    Raises:
        ConfigError: unknown name, listing the valid ones with a did-you-mean hint.
    """
    method = _REGISTRY.get(name) if isinstance(name, str) else None
    if method is None:
        valid = method_names()
        raise ConfigError(f"unknown method {name!r}; valid: {valid}.{suggest(str(name), valid)}")
    return method


def method_names() -> list[str]:
    """Names of the registered methods, in registration order (built-ins first)."""
    return list(_REGISTRY)


def encoder_method_names() -> list[str]:
    """Names of the registered methods that read a pretrained encoder, in registration order."""
    return [name for name, method in _REGISTRY.items() if method.needs_encoder]


register_method(RepresentationMethod(
    "gmc", "the GMC latent of the present modalities",
    pretrain=Lazy("gmc_rl.pretrain:pretrain"), load=Lazy("gmc_rl.checkpoint:load_gmc"),
    check_space=Lazy("gmc_rl.checkpoint:check_space_matches"),
    wrap_vec_env=Lazy("gmc_rl.wrappers.vec_latent:VecGMCLatent"), expose_mask=True,
    stage=EncoderStage("pretrain", "gmc", "pretrain GMC"), encoder_flag="--gmc"))
register_method(RepresentationMethod("raw", "the Dict observation itself (dropped modalities zero-filled)"))
register_method(RepresentationMethod(
    "mvae", "the product-of-experts posterior mean of the MVAE baseline",
    pretrain=Lazy("gmc_rl.mvae.training:pretrain_mvae"), load=Lazy("gmc_rl.mvae.checkpoint:load_mvae"),
    check_space=Lazy("gmc_rl.mvae.checkpoint:check_space_matches"),
    wrap_vec_env=Lazy("gmc_rl.mvae.wrappers:VecMVAELatent"), expose_mask=True,
    stage=EncoderStage("mvae", "mvae", "pretrain MVAE", {"model": "mvae"}), encoder_flag="--mvae"))
register_method(RepresentationMethod("state", "the true state (the upper bound)",
                                     wrap_env=Lazy("gmc_rl.wrappers.state:StateObservation")))
register_method(RepresentationMethod(
    "muse", "the top-level posterior mean of the hierarchical MUSE baseline",
    pretrain=Lazy("gmc_rl.muse.training:pretrain_muse"), load=Lazy("gmc_rl.muse.checkpoint:load_muse"),
    check_space=Lazy("gmc_rl.muse.checkpoint:check_space_matches"),
    wrap_vec_env=Lazy("gmc_rl.muse.wrappers:VecMUSELatent"), expose_mask=True,
    stage=EncoderStage("muse", "muse", "pretrain MUSE", {"model": "muse"}), encoder_flag="--muse"))
