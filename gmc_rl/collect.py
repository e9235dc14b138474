"""Collect a multimodal dataset: rollouts of a behaviour policy over a vectorized env.

Example:
    >>> from gmc_rl.config import ExperimentConfig, CollectConfig
    >>> config = ExperimentConfig(env_id="gmc_rl/PendulumSound-v0", collect=CollectConfig(steps=2000))  # doctest: +SKIP
    >>> collect(config, "runs/pendulum/data")                                                          # doctest: +SKIP

The env is built with ``gymnasium.make(config.env_id, **config.env_kwargs)`` (the ``gmc_rl/`` ids are in
Gymnasium's registry once :mod:`gmc_rl` is imported) in an SB3
:class:`~stable_baselines3.common.vec_env.DummyVecEnv` of ``config.collect.n_envs`` copies; env i is seeded with
``seed + i`` and the random policy's action space with ``seed``, so the same config writes byte-identical files.
See :mod:`gmc_rl.data` for the layout.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from gmc_rl import __version__
from gmc_rl.config import (
    MAX_DATA_BYTES,
    ExperimentConfig,
    check_memory,
    collect_identity,
    format_bytes,
    space_bytes,
    system_memory,
)
from gmc_rl.data import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_FILE,
    STATES_KEY,
    array_layout,
    normalization_stats,
    read_metadata,
    space_to_json,
    write_dataset,
)
from gmc_rl.errors import ConfigError, DatasetError
from gmc_rl.io import refuse_long_name, write_json_atomic
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock
from gmc_rl.modalities import ModalitySpec, modality_specs
from gmc_rl.rollout import (  # noqa: F401  (re-exported: gmc_rl.collect is where callers import them)
    ResetOptions,
    RolloutStep,
    StepRecorder,
    behaviour_actions,
    behaviour_policy_file,
    check_focus_options,
    collection_env_fns,
    declared_state_names,
    focused_env_count,
    load_behaviour_policy,
    make_env_fns,
    next_true_states,
    open_collection_envs,
    prepare_rollout,
    rollout,
    state_vector,
    true_states,
)
from gmc_rl.state_probe import state_variables

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import DummyVecEnv

COLLECTING_MARKER = ".gmc-rl-collecting"
"""Written into the dataset directory when a collection starts and removed when it is complete: a directory
holding it (and no ``metadata.json``) is gmc-rl's own interrupted collection, which may be overwritten."""


class _TransitionRecorder:
    """Records a rollout as the npz dataset's arrays (:mod:`gmc_rl.data`): one row per transition, env by env (env
    i fills ``counts[i]`` rows from ``offsets[i]``), and the true states while every env reports them."""

    def __init__(self, specs: dict[str, ModalitySpec], action_space: gym.Space, counts: np.ndarray) -> None:
        assert action_space.shape is not None  # the action spaces SB3 supports (Box, Discrete, Multi*) have one
        self.specs = specs
        self.counts = counts
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.total = total = int(counts.sum())
        self.action_dtype = np.dtype(action_space.dtype if action_space.dtype is not None else np.int64)
        self.arrays: dict[str, np.ndarray] = {
            name: np.empty((total, *spec.shape), dtype=spec.dtype) for name, spec in specs.items()
        }
        self.arrays["actions"] = np.empty((total, *action_space.shape), dtype=self.action_dtype)
        self.arrays["rewards"] = np.empty(total, dtype=np.float32)
        self.arrays["terminated"] = np.zeros(total, dtype=bool)
        self.arrays["truncated"] = np.zeros(total, dtype=bool)
        self.states: np.ndarray | None = None  # the true state behind each env's current observation
        self.state_names: list[str] = []

    def begin(self, venv: DummyVecEnv, obs: dict[str, np.ndarray]) -> None:
        """Start recording the true states if every env's reset info holds one (of one size)."""
        self.states = true_states(venv.reset_infos)
        if self.states is not None:
            self.arrays[STATES_KEY] = np.empty((self.total, self.states.shape[1]), dtype=np.float32)
            self.state_names = state_variables(declared_state_names(venv), self.states.shape[1])

    def record(self, step: RolloutStep) -> None:
        """Fill the row of each active env: the observation, action, reward and the two flags of the step."""
        active = step.active
        rows = self.offsets[active] + step.t
        for name in self.specs:
            self.arrays[name][rows] = step.obs[name][active]
        self.arrays["actions"][rows] = step.actions[active]
        self.arrays["rewards"][rows] = step.rewards[active]
        truncated = np.array([bool(step.infos[i].get("TimeLimit.truncated", False)) for i in active])
        self.arrays["truncated"][rows] = step.dones[active] & truncated
        self.arrays["terminated"][rows] = step.dones[active] & ~truncated
        if self.states is not None:  # the truth behind each observation, for the state probe only
            self.arrays[STATES_KEY][rows] = self.states[active]
            self.states = next_true_states(step.infos, step.reset_infos, step.dones, self.states.shape[1])
            if self.states is None:  # an env stopped reporting it: record none rather than a partial array
                del self.arrays[STATES_KEY]

    def cut_chunks(self) -> None:
        """Mark the end of each env's chunk truncated unless its episode terminated: a cut made by collection."""
        last_rows = self.offsets + self.counts - 1
        self.arrays["truncated"][last_rows] |= ~self.arrays["terminated"][last_rows]



# ----------------------------------------------------------------------------------------------------------------
# Collection.


def check_dataset_size(config: ExperimentConfig) -> None:
    """Raise ConfigError if the dataset of ``collect.steps`` transitions cannot be held in memory.

    Collection fills arrays of every transition in memory before writing them (and pretraining loads them whole),
    so the estimate ``steps x bytes per transition`` (every modality, the action, the reward and two flags, from
    the env's spaces, and the true state that a reset's ``info["state"]`` shows) must fit both the memory available
    now and :data:`~gmc_rl.config.MAX_DATA_BYTES`. One env
    is made to read its spaces; an env that refuses ``env_kwargs`` (e.g. an image size above its limit) is
    reported as a ConfigError naming them.
    """
    make = make_env_fns(config.env_id, config.env_kwargs, 1)[0]
    try:
        env = make()
    except (ValueError, TypeError) as exc:  # the env refused or lacks a keyword
        raise ConfigError(
            f"config key 'env_kwargs': cannot make {config.env_id!r} with env_kwargs {config.env_kwargs}: {exc}"
        ) from exc
    try:
        modality_specs(env.observation_space)  # a Dict of modalities, refused here before any file is written
        action_space = env.action_space
        action_bytes = space_bytes(action_space) if action_space.dtype is not None else 8
        per_step = space_bytes(env.observation_space) + action_bytes + 4 + 2  # + reward (float32), two flags
        state = state_vector(env.reset(seed=config.collect.seed)[1])
        per_step += 0 if state is None else 4 * state.size  # the true state, float32, when the env reports one
    finally:
        env.close()
    _, available = system_memory()
    limit = MAX_DATA_BYTES if available is None else min(MAX_DATA_BYTES, available)
    check_memory(config.collect.steps * per_step, "collect.steps",
                 f"the dataset ({config.collect.steps:,} transitions of {format_bytes(per_step)})",
                 f"lower collect.steps to at most {max(limit // per_step, 1):,}, or make the observations smaller "
                 "(env_kwargs)", available)


def _split_index(done: np.ndarray, n_val: int) -> int:
    """Index where validation starts: the episode start nearest to ``len - n_val`` (episodes are not split)."""
    total = len(done)
    target = total - n_val
    starts = np.flatnonzero(done[:-1]) + 1  # rows that begin a new episode (or a new env chunk)
    starts = starts[(starts > 0) & (starts < total)]
    if len(starts) == 0:
        return target
    return int(starts[np.argmin(np.abs(starts - target))])


def _identity(config: ExperimentConfig) -> dict[str, Any]:
    """What decides a dataset's content: env, env kwargs and the collect section."""
    return {"env_id": config.env_id, "env_kwargs": config.env_kwargs, "collect": collect_identity(config.collect)}


def _existing(out_dir: Path, config: ExperimentConfig, overwrite: bool) -> bool:
    """True if ``out_dir`` already holds this very dataset; raise if it holds a different one or other files.

    gmc-rl writes only into an empty directory, a dataset directory, or one its own interrupted collection left
    (marked by ``COLLECTING_MARKER``): a user's ``train.npz`` in some other directory is never overwritten, not
    even with ``overwrite`` (which replaces datasets only).
    """
    if not (out_dir / METADATA_FILE).is_file():
        others = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".tmp-")
                        and p.name not in (LOCK_FILE, HOLDER_FILE)) if out_dir.is_dir() else []
        if others and COLLECTING_MARKER not in others:
            raise DatasetError(
                f"{out_dir} is not empty ({others[:5]}) and holds no gmc-rl dataset (no {METADATA_FILE}); "
                "it is not overwritten: choose a new or empty --out"
            )
        return False
    if overwrite:
        return False
    try:
        old = read_metadata(out_dir).get("identity")
    except DatasetError:
        old = None
    new = json.loads(json.dumps(_identity(config)))
    if old == new:
        return True
    if old is None:
        raise DatasetError(
            f"{out_dir} already holds a dataset of unknown origin; choose another --out or pass --overwrite"
        )
    diffs = sorted(
        f"{key}: {old.get(key)!r} -> {new[key]!r}" for key in new if old.get(key) != new[key]
    )
    raise DatasetError(
        f"{out_dir} already holds a dataset collected with different settings ({'; '.join(diffs)}); "
        "choose another --out or pass --overwrite to replace it"
    )


def collect(
    config: ExperimentConfig, out_dir: str | os.PathLike, overwrite: bool = False, progress: bool = True
) -> Path:
    """Roll out the behaviour policy for ``config.collect.steps`` transitions and write the dataset to ``out_dir``.

    If ``out_dir`` already holds a dataset with the same env and collect settings it is kept and returned; a
    different one raises DatasetError unless ``overwrite``. Returns the dataset directory. One process at a time
    collects into ``out_dir`` (:func:`gmc_rl.locking.directory_lock`): a second one is refused with a ConfigError
    naming the holder.
    """
    out_dir = Path(out_dir)
    refuse_long_name(out_dir, "dataset directory", ConfigError)  # before it is probed or a parent made
    if _existing(out_dir, config, overwrite):
        if progress:
            tqdm.write(f"{out_dir} already holds this dataset; keeping it (pass overwrite to collect again)")
        return out_dir
    check_dataset_size(config)  # before anything is written
    behaviour_policy_file(config.collect.policy)  # a policy file that is not there: refused before --out is made
    with directory_lock(out_dir, "dataset directory"):  # creates out_dir; removes it again if refused unused
        if _existing(out_dir, config, overwrite):  # again, now that no other process writes here
            return out_dir
        return _collect_into(config, out_dir, progress)


def _collect_into(config: ExperimentConfig, out_dir: Path, progress: bool) -> Path:
    """Roll out, then write the dataset into ``out_dir`` (checked and locked by :func:`collect`)."""
    settings = config.collect
    venv, focused = open_collection_envs(config)
    n_envs = venv.num_envs
    try:
        specs, policy, counts = prepare_rollout(config, venv)
        action_space = venv.action_space
        recorder = _TransitionRecorder(specs, action_space, counts)
        write_json_atomic(out_dir / COLLECTING_MARKER, {"collecting": _identity(config)})  # all checks passed
        rollout(venv, policy, counts, settings.seed, recorder, f"collect {config.env_id}", progress)
    finally:
        venv.close()

    recorder.cut_chunks()
    arrays, total = recorder.arrays, int(counts.sum())
    done = arrays["terminated"] | arrays["truncated"]
    n_val = max(1, int(round(settings.val_fraction * total)))
    cut = _split_index(done, n_val)
    if not 2 <= cut <= total - 2:
        raise ConfigError(
            f"collect.steps={settings.steps} with val_fraction={settings.val_fraction} leaves a split with fewer than "
            "2 transitions; collect more steps"
        )
    train = {name: array[:cut] for name, array in arrays.items()}
    val = {name: array[cut:] for name, array in arrays.items()}

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gmc_rl_version": __version__,
        "env_id": config.env_id,
        "env_kwargs": config.env_kwargs,
        "modalities": list(specs),
        "spaces": {"observation": [spec.to_json() for spec in specs.values()], "action": space_to_json(action_space)},
        "seed": settings.seed,
        "steps": total,
        "n_envs": n_envs,
        "policy": settings.policy,
        "focused_envs": focused,
        "n_train": cut,
        "n_val": total - cut,
        "episodes_ended": {"train": int(done[:cut].sum()), "val": int(done[cut:].sum())},
        "normalization": normalization_stats(train, specs),
        **({"state_names": recorder.state_names} if STATES_KEY in arrays else {}),
        "arrays": array_layout(specs, tuple(action_space.shape or ()), recorder.action_dtype.name,
                               arrays[STATES_KEY].shape[1] if STATES_KEY in arrays else None),
        "identity": _identity(config),
        "versions": {pkg: _version(pkg) for pkg in ("gymnasium", "numpy", "stable-baselines3")},
    }
    write_dataset(out_dir, train, val, metadata)
    (out_dir / COLLECTING_MARKER).unlink()
    return out_dir


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"
