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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from gmc_rl import __version__
from gmc_rl.config import (
    MAX_DATA_BYTES,
    CollectConfig,
    ExperimentConfig,
    check_env_kwargs,
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
    RESERVED_KEYS,
    STATES_KEY,
    array_layout,
    normalization_stats,
    read_metadata,
    space_to_json,
    write_dataset,
)
from gmc_rl.env_ids import check_env_id
from gmc_rl.errors import ConfigError, DatasetError, ModalityError
from gmc_rl.io import (
    check_sb3_spaces,
    ensure_writable_dir,
    load_sb3_zip,
    read_sb3_data,
    write_json_atomic,
    wrong_path,
)
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock
from gmc_rl.modalities import ModalitySpec, modality_specs
from gmc_rl.progress import progress_bar
from gmc_rl.state_probe import state_variables

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import DummyVecEnv

_SB3_ALGOS = ("ppo", "a2c", "sac", "td3", "ddpg", "dqn")
COLLECTING_MARKER = ".gmc-rl-collecting"
"""Written into the dataset directory when a collection starts and removed when it is complete: a directory
holding it (and no ``metadata.json``) is gmc-rl's own interrupted collection, which may be overwritten."""


def make_env_fns(env_id: str, env_kwargs: dict[str, Any], n_envs: int) -> list[Callable[[], gym.Env]]:
    """Factories of ``n_envs`` copies of the env (for a VecEnv), after checking the id and the keyword arguments.

    ``env_id`` comes from the experiment config, so the module of a ``"module:Name"`` id is imported.
    """
    check_env_id(env_id, allow_import=True)
    check_env_kwargs(env_id, env_kwargs)
    return [lambda: gym.make(env_id, **env_kwargs) for _ in range(n_envs)]


class ResetOptions(gym.Wrapper):
    """Pass fixed ``options`` to every ``reset`` of the env, including the automatic resets of a VecEnv.

    SB3's VecEnvs reset a finished episode without options, so start distributions chosen through Gymnasium's
    ``reset(options=...)`` need a wrapper to hold. Options given to a call of ``reset`` override the fixed ones.
    Spaces are unchanged.

    Example:
        >>> import gymnasium as gym
        >>> env = ResetOptions(gym.make("Pendulum-v1"), {"x_init": 0.1, "y_init": 0.0})
        >>> obs, _ = env.reset(seed=0)
        >>> bool(obs[0] > 0.99 and obs[2] == 0.0)  # cos(theta) near 1: started upright, at rest
        True
    """

    def __init__(self, env: gym.Env, options: dict[str, Any]) -> None:
        super().__init__(env)
        self.options = dict(options)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(seed=seed, options={**self.options, **(options or {})})


def focused_env_count(settings: CollectConfig, n_envs: int) -> int:
    """How many of ``n_envs`` collection envs use the focused starts: ``round(focus_fraction * n_envs)``, at least
    one when the fraction is positive and at most ``n_envs - 1`` (one env always keeps the plain starts)."""
    if settings.focus_fraction == 0.0 or n_envs < 2:
        return 0
    return min(n_envs - 1, max(1, round(settings.focus_fraction * n_envs)))


def _make_focused_env(env_id: str, env_kwargs: dict[str, Any], options: dict[str, Any], max_steps: int) -> gym.Env:
    env: gym.Env = ResetOptions(gym.make(env_id, **env_kwargs), options)
    return gym.wrappers.TimeLimit(env, max_steps) if max_steps > 0 else env


def collection_env_fns(config: ExperimentConfig, n_envs: int) -> list[Callable[[], gym.Env]]:
    """The collection envs: the first :func:`focused_env_count` start with ``collect.focus_reset_options`` and stop
    after ``collect.focus_episode_steps``; the others are plain copies of the env."""
    settings = config.collect
    fns = make_env_fns(config.env_id, config.env_kwargs, n_envs)
    focused = focused_env_count(settings, n_envs)
    for i in range(focused):
        fns[i] = partial(_make_focused_env, config.env_id, config.env_kwargs, settings.focus_reset_options,
                         settings.focus_episode_steps)
    return fns


def check_focus_options(env_fn: Callable[[], gym.Env], options: dict[str, Any], seed: int) -> None:
    """Raise ConfigError if the env cannot reset with ``collect.focus_reset_options`` (named in the message)."""
    env = env_fn()
    try:
        env.reset(seed=seed)
    except Exception as exc:
        raise ConfigError(
            f"config key 'collect.focus_reset_options': the env cannot reset with {options!r}: {exc}"
        ) from exc
    finally:
        env.close()


def open_collection_envs(config: ExperimentConfig) -> tuple[DummyVecEnv, int]:
    """The vectorised envs of a collection and how many of them are focused: ``min(collect.n_envs, collect.steps)``
    envs of :func:`collection_env_fns`, the focus options checked on a probe env first. Shared by the npz
    (:func:`collect`) and the Minari (:func:`gmc_rl.minari_data.collect_minari`) collections; the caller closes it."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    settings = config.collect
    n_envs = min(settings.n_envs, settings.steps)
    env_fns = collection_env_fns(config, n_envs)
    focused = focused_env_count(settings, n_envs)
    if focused:
        check_focus_options(env_fns[0], settings.focus_reset_options, settings.seed)
    return DummyVecEnv(env_fns), focused


def prepare_rollout(config: ExperimentConfig, venv: DummyVecEnv) -> tuple[dict[str, ModalitySpec], Any | None,
                                                                          np.ndarray]:
    """What a collection rolls out with: the modalities of ``venv`` (none may be named like a transition array),
    the behaviour policy (None: uniform random actions; the action space is seeded either way) and how many steps
    each env records (``collect.steps`` split as evenly as possible, the first envs taking one more).

    Shared by the npz and the Minari collections, so that both draw the same actions and record the same steps.
    """
    settings = config.collect
    specs = modality_specs(venv.observation_space)
    clash = [name for name in specs if name in RESERVED_KEYS]
    if clash:
        raise ModalityError(
            f"modality names {clash} clash with the dataset's reserved arrays {list(RESERVED_KEYS)}"
        )
    policy = load_behaviour_policy(settings.policy, venv.observation_space, venv.action_space)
    venv.action_space.seed(settings.seed)
    counts = np.full(venv.num_envs, settings.steps // venv.num_envs)
    counts[: settings.steps % venv.num_envs] += 1
    return specs, policy, counts


def behaviour_actions(policy: Any | None, action_space: gym.Space, obs: dict[str, np.ndarray], n_envs: int) -> Any:
    """One action per env for the observations ``obs``: sampled from the behaviour ``policy`` (stochastic), or
    uniformly from ``action_space`` when there is none."""
    if policy is None:
        return np.stack([action_space.sample() for _ in range(n_envs)])
    actions, _ = policy.predict(obs, deterministic=False)
    return actions


def _state_vector(info: dict[str, Any]) -> np.ndarray | None:
    """``info["state"]`` as a finite float vector, or None when the env exposes none (or not one of that form)."""
    state = info.get("state")
    if state is None:
        return None
    try:
        vector = np.asarray(state, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return vector.ravel() if vector.size and np.isfinite(vector).all() else None


def true_states(infos: list[dict[str, Any]], dim: int | None = None) -> np.ndarray | None:
    """The true state in each env's ``info`` (``info["state"]``), stacked ``(n_envs, d)``: recorded for the state
    probe (:mod:`gmc_rl.state_probe`). None when one is missing, or when they differ in size (or from ``dim``)."""
    vectors = [_state_vector(info) for info in infos]
    shapes = {None if v is None else v.shape for v in vectors}
    if None in shapes or len(shapes) != 1 or (dim is not None and shapes != {(dim,)}):
        return None
    return np.stack(cast(list[np.ndarray], vectors))


def declared_state_names(venv: DummyVecEnv) -> list[str]:
    """The env's ``state_names`` attribute (a name per entry of ``info["state"]``), or [] when it declares none."""
    try:
        names = venv.get_attr("state_names", [0])[0]
    except AttributeError:
        return []
    return list(names) if isinstance(names, (list, tuple)) else []


def next_true_states(infos: list[dict[str, Any]], reset_infos: list[dict[str, Any]], dones: np.ndarray,
                     dim: int) -> np.ndarray | None:
    """The true state behind each env's next observation: the step's ``info["state"]``, or the reset's where the
    episode ended (SB3's vec envs reset at once and keep that info in ``reset_infos``). None, and no states are
    recorded, as soon as one is missing or changes size."""
    return true_states([reset_infos[i] if done else info for i, (info, done) in enumerate(zip(infos, dones))], dim)


# ----------------------------------------------------------------------------------------------------------------
# The rollout: one loop for the npz and the Minari collections, which differ only in what they record.


@dataclass(frozen=True)
class RolloutStep:
    """One step of :func:`rollout`, as a :class:`StepRecorder` receives it.

    ``t`` is the step's index in every env; ``active`` the envs that record it (those whose budget ``counts[i]``
    exceeds ``t``); ``obs`` the observations the ``actions`` (one row per env, shaped like the action space) were
    taken in; ``rewards``, ``dones`` and ``infos`` what the VecEnv returned, and ``next_obs`` its next observations,
    which are the first of a new episode where ``dones[i]`` (the VecEnv resets at once: the final observation is in
    ``infos[i]["terminal_observation"]`` and the reset's info in ``reset_infos[i]``). Arrays cover every env.
    """

    t: int
    active: np.ndarray
    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    infos: list[dict[str, Any]]
    next_obs: dict[str, np.ndarray]
    reset_infos: list[dict[str, Any]]


class StepRecorder(Protocol):
    """What :func:`rollout` hands the collection to: the npz dataset's flat arrays (``_TransitionRecorder``) or Minari's
    whole episodes (``gmc_rl.minari_data._EpisodeRecorder``)."""

    def begin(self, venv: DummyVecEnv, obs: dict[str, np.ndarray]) -> None:
        """Called once, after the seeded reset, with its observations (``venv.reset_infos`` holds its infos)."""

    def record(self, step: RolloutStep) -> None:
        """Called after every step of the VecEnv."""


def rollout(venv: DummyVecEnv, policy: Any | None, counts: np.ndarray, seed: int, recorder: StepRecorder,
            description: str, progress: bool) -> None:
    """Roll out the behaviour ``policy`` (None: random actions) in ``venv`` and hand every step to ``recorder``.

    Env i is seeded with ``seed + i`` and records its first ``counts[i]`` steps, but every env steps until the
    longest budget is spent: the random draws of the action space (seeded by :func:`prepare_rollout`) are then the
    same whatever is recorded, so the npz and the Minari collections of one config hold the same transitions.
    ``description`` is the progress bar's, whose total is ``counts.sum()`` steps.
    """
    n_envs = venv.num_envs
    action_space = venv.action_space
    action_shape = tuple(action_space.shape or ())
    venv.seed(seed)
    obs = cast(dict[str, np.ndarray], venv.reset())  # a Dict space (modality_specs checked it): a dict of arrays
    recorder.begin(venv, obs)
    bar = progress_bar(int(counts.sum()), description, "step", enabled=progress)
    for t in range(int(counts.max())):
        actions = behaviour_actions(policy, action_space, obs, n_envs)
        stepped, rewards, dones, infos = venv.step(actions)
        next_obs = cast(dict[str, np.ndarray], stepped)
        active = np.flatnonzero(counts > t)
        shaped = np.asarray(actions).reshape(n_envs, *action_shape)
        recorder.record(RolloutStep(t, active, obs, shaped, rewards, dones, infos, next_obs, venv.reset_infos))
        obs = next_obs
        bar.update(len(active))
    bar.close()


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
# Behaviour policies.


def _algo_candidates(path: Path) -> list[str]:
    """Algorithms to try for an SB3 ``.zip``, most likely first (from the module of its saved policy class)."""
    try:
        policy_class = read_sb3_data(path).get("policy_class")
    except ValueError as exc:
        raise ConfigError(f"collect.policy {str(path)!r}: {exc}") from exc
    module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    likely = [algo for algo in _SB3_ALGOS if f".{algo}." in module]
    return likely + [algo for algo in _SB3_ALGOS if algo not in likely]


def load_behaviour_policy(policy: str, observation_space: gym.Space, action_space: gym.Space) -> Any | None:
    """None for ``"random"``; else the SB3 model of ``"[algo:]path.zip"`` (anything with ``predict``).

    The algorithm is read from the prefix if given, otherwise guessed from the saved policy class. The model's
    observation space must equal the env's (a GMC-latent agent cannot act on raw Dict observations). The zip is
    read with :func:`gmc_rl.io.load_sb3_zip`, which never unpickles what the file holds.
    """
    if policy == "random":
        return None
    import stable_baselines3

    algo, _, file = policy.partition(":") if policy.split(":", 1)[0].lower() in _SB3_ALGOS else ("", "", policy)
    path = Path(file)
    if not path.is_file():
        raise ConfigError(
            f"collect.policy must be 'random' or the path of an SB3 .zip ([algo:]path): "
            f"{wrong_path(path, 'policy file', 'file')}"
        )
    try:
        check_sb3_spaces(path, observation_space, action_space)
    except ValueError as exc:
        raise ConfigError(
            f"collect.policy {file!r}: {exc}; collection needs a policy acting on the env's raw Dict observations"
        ) from exc
    errors = []
    for name in [algo.lower()] if algo else _algo_candidates(path):
        try:
            model = load_sb3_zip(path, getattr(stable_baselines3, name.upper()), observation_space, action_space)
            break
        except Exception as exc:  # SB3 raises many types for a zip of another algorithm
            errors.append(f"{name}: {exc}")
    else:
        raise ConfigError(f"cannot load collect.policy {file!r} as an SB3 model: {'; '.join(errors)}")
    return model


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
        state = _state_vector(env.reset(seed=config.collect.seed)[1])
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
    if _existing(out_dir, config, overwrite):
        if progress:
            tqdm.write(f"{out_dir} already holds this dataset; keeping it (pass overwrite to collect again)")
        return out_dir
    check_dataset_size(config)  # before anything is written
    ensure_writable_dir(out_dir, "dataset directory")
    with directory_lock(out_dir, "dataset directory"):
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
