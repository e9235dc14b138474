"""gmc-rl: reinforcement-learning agents that keep working when sensors fail.

Public API (imported lazily so that ``import gmc_rl`` stays cheap):

- :func:`gmc_loss` - the GMC contrastive loss for any number of modalities.
- :class:`GMCModel`, :func:`load_gmc` - the model and loading a pretrained checkpoint.
- :func:`make_latent_env` - a multimodal env turned into a latent-state env for SB3.
- :mod:`gmc_rl.methods` - the registry of representation methods (gmc, raw, mvae, state, and registered ones).
- :mod:`gmc_rl.mvae` - the product-of-experts VAE baseline.

Importing ``gmc_rl`` registers the built-in environment ids (``gmc_rl/PendulumSound-v0`` and the others of
:mod:`gmc_rl.envs`) and the latent env id :data:`LATENT_ENV_ID` (``gmc_rl/GMCLatent-v0``, built by
:func:`gmc_rl.wrappers.make_latent_env`) with Gymnasium: at once if Gymnasium is imported already, otherwise right
after Gymnasium's own import, whenever that happens. It imports neither Gymnasium nor an environment itself, so
``import gmc_rl`` stays cheap; ``gym.make("gmc_rl:gmc_rl/PendulumSound-v0")`` (Gymnasium's "module:id" form) works
in a fresh process.

Layers, each importing only those below it (docs/architecture.md; checked by ``lint-imports``):
:mod:`gmc_rl.envs` <- the representation core (the other modules of this package) <- :mod:`gmc_rl.agents` <- the
orchestration (:mod:`gmc_rl.pipeline`, :mod:`gmc_rl.stages`, :mod:`gmc_rl.cli`, :mod:`gmc_rl.commands`). The core
knows the environments only through the Gymnasium registry.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

LATENT_ENV_ID = "gmc_rl/GMCLatent-v0"
"""Gymnasium id of :func:`gmc_rl.wrappers.make_latent_env` (a multimodal env seen through a frozen encoder):
``gym.make(LATENT_ENV_ID, env_id=..., checkpoint=..., p=0.3)``; also :data:`gmc_rl.wrappers.LATENT_ENV_ID`."""
_LATENT_ENTRY_POINT = "gmc_rl.wrappers.factory:make_latent_env"

_LAZY = {
    "gmc_loss": "gmc_rl.loss",
    "GMCModel": "gmc_rl.model",
    "load_gmc": "gmc_rl.checkpoint",
    "save_gmc": "gmc_rl.checkpoint",
    "make_latent_env": "gmc_rl.wrappers",
}

__all__ = ["LATENT_ENV_ID", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmc_rl' has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------------------
# Registration of the built-in env ids, without importing Gymnasium here.


def _register_envs() -> None:
    """Register the ids of :mod:`gmc_rl.envs` and :data:`LATENT_ENV_ID` (idempotent; imports Gymnasium and the id
    table, not the envs or the wrappers: the entry points are strings)."""
    from gmc_rl.envs.registration import register_envs

    register_envs()
    _register_latent_env()


def _register_latent_env() -> None:
    """Register :data:`LATENT_ENV_ID` (idempotent) so that ``gym.make``, SB3's ``make_vec_env`` and rl-zoo3
    (``--env-kwargs``) build latent envs after a plain ``import gmc_rl``."""
    import gymnasium as gym

    if LATENT_ENV_ID not in gym.registry:
        gym.register(id=LATENT_ENV_ID, entry_point=_LATENT_ENTRY_POINT, disable_env_checker=True)


class _RegisterAfterGymnasium(Loader):
    """Gymnasium's own loader, plus :func:`_register_envs` once the ``gymnasium`` package has executed."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        """The module Gymnasium's loader would create (usually ``None``: the default)."""
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        """Run Gymnasium's ``__init__``, give the module back its own loader, then register the ids."""
        self.loader.exec_module(module)
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        _remove_gymnasium_hook()
        _register_envs()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)  # get_resource_reader, is_package, ... as Gymnasium's loader


class _GymnasiumHook(MetaPathFinder):
    """First on ``sys.meta_path`` until Gymnasium is imported: hands out Gymnasium's spec with a registering loader.

    Only the real import of ``gymnasium`` removes the hook, so a mere ``importlib.util.find_spec("gymnasium")``
    (a check whether it is installed) does not lose the registration.
    """

    gmc_rl_env_hook = True  # recognised across reloads of this module

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        """Gymnasium's spec from the finders after this one, its loader wrapped; ``None`` for every other module."""
        if fullname != "gymnasium":
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if getattr(finder, "gmc_rl_env_hook", False) or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisterAfterGymnasium(spec.loader)
                return spec
        return None


def _remove_gymnasium_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not getattr(finder, "gmc_rl_env_hook", False)]


if "gymnasium" in sys.modules:
    _register_envs()
elif not any(getattr(finder, "gmc_rl_env_hook", False) for finder in sys.meta_path):
    sys.meta_path.insert(0, _GymnasiumHook())
