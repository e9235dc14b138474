"""What the npz and the Minari collections share: the collection envs (with the focused starts), the behaviour
policy, the true states the envs report, and the rollout loop that hands every step to a recorder.

Both collections (:func:`gmc_rl.collect.collect`, :func:`gmc_rl.minari_data.collect_minari`) open their envs with
:func:`open_collection_envs`, prepare with :func:`prepare_rollout` and roll out with :func:`rollout`, so they draw the
same actions and record the same steps; they differ only in their :class:`StepRecorder`. :mod:`gmc_rl.collect`
re-exports every public name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import gymnasium as gym
import numpy as np

from gmc_rl.config import CollectConfig, ExperimentConfig, check_env_kwargs
from gmc_rl.data import RESERVED_KEYS
from gmc_rl.env_ids import check_env_id
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.io import wrong_path
from gmc_rl.modalities import ModalitySpec, modality_specs
from gmc_rl.progress import progress_bar
from gmc_rl.sb3_zip import check_sb3_spaces, load_sb3_zip, read_sb3_data

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import DummyVecEnv

_SB3_ALGOS = ("ppo", "a2c", "sac", "td3", "ddpg", "dqn")


# ----------------------------------------------------------------------------------------------------------------
# The collection envs and the true states they report.


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


def state_vector(info: dict[str, Any]) -> np.ndarray | None:
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
    vectors = [state_vector(info) for info in infos]
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
    whole episodes (``gmc_rl.minari_episodes.EpisodeRecorder``)."""

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


def behaviour_policy_file(policy: str) -> tuple[str, Path] | None:
    """The algorithm prefix ("" when none) and the file of ``collect.policy`` ``"[algo:]path.zip"``, checked to be a
    regular file; None for ``"random"``. Cheap (nothing is read), so a collection checks it before it creates its
    output directory.

    Raises:
        ConfigError: the file is missing, or is a directory, a FIFO, a broken link (named by what it is).
    """
    if policy == "random":
        return None
    algo, _, file = policy.partition(":") if policy.split(":", 1)[0].lower() in _SB3_ALGOS else ("", "", policy)
    path = Path(file)
    if not path.is_file():
        raise ConfigError(
            f"collect.policy must be 'random' or the path of an SB3 .zip ([algo:]path): "
            f"{wrong_path(path, 'policy file', 'file')}"
        )
    return algo, path


def load_behaviour_policy(policy: str, observation_space: gym.Space, action_space: gym.Space) -> Any | None:
    """None for ``"random"``; else the SB3 model of ``"[algo:]path.zip"`` (anything with ``predict``).

    The algorithm is read from the prefix if given, otherwise guessed from the saved policy class. The model's
    observation space must equal the env's (a GMC-latent agent cannot act on raw Dict observations). The zip is
    read with :func:`gmc_rl.sb3_zip.load_sb3_zip`, which never unpickles what the file holds.
    """
    checked = behaviour_policy_file(policy)
    if checked is None:
        return None
    import stable_baselines3

    algo, path = checked
    file = str(path)
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
