"""What the rl-zoo3 launcher checks in a run folder before rl-zoo3 reads it.

rl-zoo3 reads a run's ``config.yml`` and ``args.yml`` with ``yaml.UnsafeLoader``, ``eval()``s a string
``normalize``, imports and calls the wrappers it names, and loads models and ``.pkl`` files with (cloud)pickle: a
shared run folder could run code. :func:`check_zoo_run` refuses what would, before :mod:`gmc_rl.zoo` hands the
folder to rl-zoo3 (docs/rl_zoo.md, "What the launcher checks before playing a run"). Kept apart from
:mod:`gmc_rl.zoo`, which re-exports every name.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gmc_rl.errors import ConfigError


class _ZooConfigLoader(yaml.SafeLoader):
    """YAML's safe loader plus the two Python tags rl-zoo3 writes into a run's ``config.yml`` (an OrderedDict of the
    hyperparameters, tuples): nothing else is constructed, so reading a run never runs code."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    (pairs,) = loader.construct_sequence(node, deep=True) or [[]]  # type: ignore[arg-type]
    return {key: value for key, value in pairs}


def _tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node, deep=True))  # type: ignore[arg-type]


_ZooConfigLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)
_ZooConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)


# Checking a run folder before rl-zoo3 reads it (rl-zoo3 reads its YAML with yaml.UnsafeLoader, eval()s a string
# ``normalize``, imports and calls the wrappers it names, and loads models and .pkl files with (cloud)pickle).

ALLOW_PICKLE_FLAG = "--allow-pickle"
"""Launcher option (removed before rl-zoo3 sees the arguments): let rl-zoo3 unpickle the run's ``vecnormalize.pkl``
and ``replay_buffer.pkl``, which RUNS CODE stored in those files; only for runs you made yourself."""
_RUN_SCRIPTS = ("enjoy", "record_video", "push_to_hub")
"""rl-zoo3 scripts that read a run folder chosen by --algo, --env, -f, --exp-id and the --load-* options."""
_REFUSED_SCRIPTS = {
    "benchmark": "it plays every run under a folder in child processes (python enjoy.py) that bypass this launcher's "
                 "checks and reads their args.yml with yaml.UnsafeLoader",
    "record_training": "it runs rl_zoo3.record_video in child processes that bypass this launcher's checks; run "
                       "python -m gmc_rl.zoo record_video (with --load-best or --load-checkpoint N) instead",
}
_STANDARD_TAGS = {f"tag:yaml.org,2002:{name}" for name in (
    "null", "bool", "int", "float", "str", "binary", "timestamp", "seq", "map", "omap", "pairs", "set", "merge",
    "value")}
_ZOO_PYTHON_TAGS = {
    "tag:yaml.org,2002:python/object/apply:collections.OrderedDict",
    "tag:yaml.org,2002:python/tuple",
    "tag:yaml.org,2002:python/object/new:huggingface_sb3.naming_schemes.EnvironmentName",
}
"""The Python tags rl-zoo3 itself writes (its hyperparameters and arguments as an OrderedDict, tuples, the env id as
huggingface_sb3's EnvironmentName, a str subclass): building them runs no code from the file."""
_WRAPPER_MODULES = ("gmc_rl.", "rl_zoo3.", "stable_baselines3.", "sb3_contrib.", "gymnasium.wrappers.")
"""Packages whose classes a shared run may name as env_wrapper / vec_env_wrapper (rl-zoo3 imports and calls them)."""
_ZOO_CUSTOM_OBJECTS = ("learning_rate", "lr_schedule", "clip_range")
"""Entries rl-zoo3's enjoy and record_video replace through custom_objects (constants) when loading a model."""


class _ZooRunLoader(_ZooConfigLoader):
    """Loader rl-zoo3's ``yaml.UnsafeLoader`` is replaced by while the launcher runs a script: the zoo's own tags
    (:data:`_ZOO_PYTHON_TAGS`), nothing else Python."""


def _environment_name(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    from huggingface_sb3 import EnvironmentName  # type: ignore[import-untyped]

    fields = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    state = fields.get("state") or {}
    gym_id = state.get("_gym_id") if isinstance(state, dict) else None
    if not isinstance(gym_id, str):
        raise yaml.constructor.ConstructorError(None, None, "an EnvironmentName without a _gym_id", node.start_mark)
    return EnvironmentName(gym_id)


_ZooRunLoader.add_constructor(
    "tag:yaml.org,2002:python/object/new:huggingface_sb3.naming_schemes.EnvironmentName", _environment_name)


def check_run_yaml(path: Path) -> Any:
    """Read a YAML file of a zoo run without building Python objects; ConfigError naming the file, line and tag of
    any tag other than YAML's standard ones and the few rl-zoo3 writes (:data:`_ZOO_PYTHON_TAGS`)."""
    try:
        text = path.read_text(encoding="utf-8")
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"cannot read the zoo run's {path}: {str(exc).splitlines()[0]}") from exc
    if len(nodes) != 1:
        raise ConfigError(f"the zoo run's {path} holds {len(nodes)} YAML documents, not one")
    stack: list[Any] = [nodes[0]]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.tag not in _STANDARD_TAGS and node.tag not in _ZOO_PYTHON_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise ConfigError(
                f"the zoo run's {path}, line {node.start_mark.line + 1}: the tag {tag} would make rl-zoo3 (which reads "
                "this file with yaml.UnsafeLoader) build a Python object and run code; refused (only YAML's standard "
                "tags and the OrderedDict, tuple and EnvironmentName tags rl-zoo3 writes are accepted)")
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)
    loader = _ZooRunLoader(text)
    try:
        return loader.get_single_data()
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the zoo run's {path}: {str(exc).splitlines()[0]}") from exc
    finally:
        loader.dispose()


def _check_normalize(value: Any, path: Path) -> None:
    """rl-zoo3 runs ``eval()`` on a string ``normalize``: accept only ``dict(key=constant, ...)`` or a dict literal."""
    import ast

    if not isinstance(value, str):
        return
    try:
        tree = ast.parse(value, mode="eval").body
        if isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "dict" \
                and not tree.args and all(k.arg and isinstance(k.value, ast.Constant) for k in tree.keywords):
            return
        if isinstance(ast.literal_eval(tree), dict):
            return
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        pass
    raise ConfigError(f"the zoo run's {path}: normalize = {value!r} is Python code that rl-zoo3 would eval(); only "
                      "dict(key=constant, ...) or a dict literal of constants is accepted")


def _check_wrappers(hyperparams: dict[str, Any], path: Path) -> None:
    """rl-zoo3 imports and calls what env_wrapper / vec_env_wrapper name: only classes of known packages."""
    import importlib
    import inspect

    for key in ("env_wrapper", "vec_env_wrapper"):
        value = hyperparams.get(key)
        for entry in value if isinstance(value, list) else [value]:
            if entry is None:
                continue
            names = list(entry) if isinstance(entry, dict) else [entry]
            for name in names:
                target = None
                if isinstance(name, str) and name.startswith(_WRAPPER_MODULES) and "." in name:
                    module, _, attribute = name.rpartition(".")
                    try:
                        target = getattr(importlib.import_module(module), attribute, None)
                    except ImportError:
                        target = None
                if not inspect.isclass(target):
                    raise ConfigError(
                        f"the zoo run's {path}: {key} names {name!r}, which rl-zoo3 would import and call; only "
                        f"classes of {', '.join(m.rstrip('.') for m in _WRAPPER_MODULES)} are accepted")


def _check_model_zip(path: Path) -> None:
    """Refuse an SB3 model whose pickled ``data`` entries the launcher cannot replace safely (:class:`_Guard`)."""
    from gmc_rl.sb3_zip import _is_pickled, _safe_policy_kwargs, read_sb3_data

    try:
        data = read_sb3_data(path)
        for key, value in data.items():
            if key == "policy_kwargs" and _is_pickled(value):
                _safe_policy_kwargs(value, path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    for key in ("observation_space", "action_space"):
        if not _is_pickled(data.get(key)):
            raise ConfigError(f"{path} has no readable {key}; it is not a Stable-Baselines3 model .zip")


def _pickle_refusal(path: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{path} is {what} stored with pickle, which runs code from the file when loaded; gmc-rl does not load it. "
        f"If you made this run yourself, pass {ALLOW_PICKLE_FLAG} to the launcher to let rl-zoo3 unpickle it")


def check_zoo_run(script: str, args: Sequence[str], allow_pickle: bool = False) -> None:
    """Check what ``rl_zoo3.<script>`` would read from a run folder before it runs; ConfigError if any is unsafe.

    For enjoy, record_video and push_to_hub: the run rl-zoo3 picks (as ``rl_zoo3.utils.get_model_path`` does), its
    ``config.yml`` and ``args.yml`` (YAML tags, a string ``normalize``, the wrapper names), the model ``.zip``'s
    pickled entries and ``vecnormalize.pkl``. For train: the ``--trained-agent`` zip and the ``vecnormalize.pkl`` /
    ``replay_buffer.pkl`` next to it.
    """
    from huggingface_sb3 import EnvironmentName  # type: ignore[import-untyped]
    from rl_zoo3.utils import get_model_path

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", type=EnvironmentName, default="CartPole-v1")
    parser.add_argument("-f", "--folder", default="rl-trained-agents")
    parser.add_argument("--exp-id", type=int, default=0)
    parser.add_argument("--load-best", action="store_true")
    parser.add_argument("--load-checkpoint", type=int)
    parser.add_argument("--load-last-checkpoint", action="store_true")
    parser.add_argument("-i", "--trained-agent", default="")
    known = parser.parse_known_args(list(args))[0]
    env_name = known.env
    if script == "train":
        if not known.trained_agent:
            return
        model = Path(known.trained_agent)
        if model.is_file():
            _check_model_zip(model)
        for pkl, what in ((model.parent / env_name / "vecnormalize.pkl", "VecNormalize statistics"),
                          (model.parent / "replay_buffer.pkl", "a replay buffer")):
            if os.path.exists(pkl) and not allow_pickle:
                raise _pickle_refusal(pkl, what)
        return
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            _, model_path, log_path = get_model_path(known.exp_id, known.folder, known.algo, env_name,
                                                     known.load_best, known.load_checkpoint, known.load_last_checkpoint)
    except (AssertionError, ValueError) as exc:
        raise ConfigError(f"{exc} (the launcher checks a run before rl-zoo3 reads it, so it does not download runs: "
                          "fetch one with python -m rl_zoo3.load_from_hub first)") from exc
    stats = Path(log_path, env_name)
    hyperparams: Any = {}
    if stats.is_dir():
        config = stats / "config.yml"
        if config.is_file():
            hyperparams = check_run_yaml(config)
            if not isinstance(hyperparams, dict):
                raise ConfigError(f"the zoo run's {config} does not hold a mapping of hyperparameters")
            _check_normalize(hyperparams.get("normalize"), config)
            _check_wrappers(hyperparams, config)
            normalize = bool(hyperparams.get("normalize", False))
        else:
            normalize = (stats / "obs_rms.pkl").is_file()
        if (stats / "args.yml").is_file():
            check_run_yaml(stats / "args.yml")
        if normalize and (stats / "vecnormalize.pkl").exists() and not allow_pickle:
            raise _pickle_refusal(stats / "vecnormalize.pkl", "VecNormalize statistics")
    _check_model_zip(Path(model_path))


_MISSING = object()


class _Guard:
    """While a script runs: rl-zoo3's ``yaml.UnsafeLoader`` is :class:`_ZooRunLoader`, SB3's ``load`` replaces every
    pickled entry of a model (:func:`_safe_custom_objects`), and the last env ``create_test_env`` made is kept."""

    def __init__(self) -> None:
        self.env: Any = None
        self.saved: list[tuple[Any, str, Any]] = []

    def _set(self, owner: Any, name: str, value: Any) -> None:
        # The attribute as stored (a classmethod object, not the method bound to ``owner`` that getattr gives:
        # put back bound, SAC.load would load into a BaseAlgorithm); _MISSING when it was inherited.
        self.saved.append((owner, name, vars(owner).get(name, _MISSING)))
        setattr(owner, name, value)

    def __enter__(self) -> _Guard:
        import rl_zoo3
        import rl_zoo3.utils
        from stable_baselines3.common.base_class import BaseAlgorithm

        guard = self
        create = rl_zoo3.utils.create_test_env

        def create_test_env(*args: Any, **kwargs: Any) -> Any:
            guard.env = create(*args, **kwargs)
            return guard.env

        load = BaseAlgorithm.load.__func__  # type: ignore[attr-defined]

        def safe_load(cls: Any, path: Any, env: Any = None, device: Any = "auto", custom_objects: Any = None,
                      **kwargs: Any) -> Any:
            try:
                custom = _safe_custom_objects(cls, path, env if env is not None else guard.env, custom_objects)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            return load(cls, path, env=env, device=device, custom_objects=custom, **kwargs)

        self._set(yaml, "UnsafeLoader", _ZooRunLoader)
        self._set(rl_zoo3.utils, "create_test_env", create_test_env)
        self._set(rl_zoo3, "create_test_env", create_test_env)
        self._set(BaseAlgorithm, "load", classmethod(safe_load))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, value in reversed(self.saved):
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def _safe_custom_objects(algo_class: Any, path: Any, env: Any, given: dict[str, Any] | None) -> dict[str, Any]:
    """custom_objects for SB3's load that leave no pickled entry of the model to unpickle: rl-zoo3's own constants
    (learning_rate, lr_schedule, clip_range), the env's spaces (compared with the readable summary in the zip), the
    algorithm's policy class, torch classes read from policy_kwargs' text, neutral values for training-only entries."""
    from gymnasium import spaces

    from gmc_rl.sb3_zip import _SB3_PLACEHOLDERS, _is_pickled, _safe_policy_kwargs, check_sb3_spaces, read_sb3_data

    path = Path(path if str(path).endswith(".zip") else f"{path}.zip")
    data = read_sb3_data(path)
    custom = {key: value for key, value in (given or {}).items() if key in _ZOO_CUSTOM_OBJECTS}
    if env is None:
        raise ConfigError(f"{path}: the launcher found no env to rebuild the model's spaces from; not loaded")
    check_sb3_spaces(path, env.observation_space, env.action_space)
    for key, value in data.items():
        if not _is_pickled(value) or key in custom:
            continue
        if key in ("observation_space", "action_space"):
            custom[key] = getattr(env, key)
        elif key == "policy_class":
            name = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
            custom[key] = algo_class.policy_aliases[name]
        elif key == "policy_kwargs":
            custom[key] = _safe_policy_kwargs(value, path)
        else:
            custom[key] = _SB3_PLACEHOLDERS.get(key)
    return custom
