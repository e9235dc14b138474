"""A rollout recorded as whole episodes, the form a Minari dataset stores (:func:`gmc_rl.minari_data.collect_minari`).

:class:`EpisodeRecorder` is the :class:`~gmc_rl.rollout.StepRecorder` of the Minari export: it keeps every env's
episodes in time order, with every observation including each episode's final one and the env's numeric ``info``
entries; :func:`episode_buffer` turns one into Minari's ``EpisodeBuffer`` (Minari imported only there).

Reading back (:func:`gmc_rl.minari_data.load_minari_dataset`): :func:`check_stored_episodes` checks that the HDF5
file opens and holds the episodes and steps its ``metadata.json`` counts, before Minari reads it (Minari trusts the
counts: too many gave h5py's raw ``KeyError``, too few dropped the rest silently), and :func:`episode_rows` turns one
stored episode into rows of the npz layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gmc_rl.config import CollectConfig
from gmc_rl.data import STATES_KEY
from gmc_rl.errors import DatasetError
from gmc_rl.modalities import ModalitySpec
from gmc_rl.rollout import RolloutStep

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import DummyVecEnv


@dataclass
class Episode:
    """One episode being recorded: ``observations`` and ``infos`` have one more entry than the steps."""

    seed: int | None
    options: dict[str, Any] | None
    observations: list[dict[str, np.ndarray]]
    infos: list[dict[str, np.ndarray]]
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)


def _info_keys(info: dict[str, Any]) -> list[str]:
    """Keys of an env's reset ``info`` whose values are numeric arrays (or numbers): those recorded every step."""
    keys = []
    for key, value in info.items():
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):  # ragged sequences
            continue
        if array.dtype.kind in "biuf":
            keys.append(key)
    return keys


def _info_arrays(info: dict[str, Any], keys: list[str]) -> dict[str, np.ndarray]:
    """The values of ``keys`` in ``info`` as arrays; a DatasetError if the env left one out of this step's info."""
    missing = [key for key in keys if key not in info]
    if missing:
        raise DatasetError(
            f"the env's step info lacks {missing}, which its reset info has; Minari stores one value per key and step, "
            "so such info cannot be recorded: pass record_infos=False"
        )
    return {key: np.asarray(info[key]) for key in keys}


class EpisodeRecorder:
    """Records a rollout (:func:`gmc_rl.collect.rollout`) as whole episodes, env by env: each env's episodes up to
    its budget ``counts[i]``, the last one cut there (marked truncated). An episode's seed is the one its env was
    reset with (``seed + i`` for the first, None after an automatic reset) and its options the focus options for a
    focused env; ``info_keys`` (read from the first env's reset info) are the info entries recorded every step."""

    def __init__(self, names: list[str], counts: np.ndarray, settings: CollectConfig, focused: int,
                 record_infos: bool) -> None:
        self.names = names
        self.counts = counts
        self.settings = settings
        self.focused = focused
        self.record_infos = record_infos
        self.info_keys: list[str] = []
        self.current: list[Episode] = []  # each env's episode under way
        self.finished: list[list[Episode]] = [[] for _ in counts]

    def _start(self, i: int, observation: dict[str, np.ndarray], info: dict[str, Any], seed: int | None) -> Episode:
        settings = self.settings
        options = settings.focus_reset_options if i < self.focused and settings.focus_reset_options else None
        return Episode(seed, options, [observation], [_info_arrays(info, self.info_keys)])

    def begin(self, venv: DummyVecEnv, obs: dict[str, np.ndarray]) -> None:
        """Start every env's first episode at the seeded reset."""
        self.info_keys = _info_keys(venv.reset_infos[0]) if self.record_infos else []
        self.current = [self._start(i, {name: obs[name][i] for name in self.names}, venv.reset_infos[i],
                                    self.settings.seed + i) for i in range(venv.num_envs)]

    def record(self, step: RolloutStep) -> None:
        """Append the step to each active env's episode; an episode that ends (or reaches the budget) is finished."""
        dones, infos, next_obs = step.dones, step.infos, step.next_obs
        for i in map(int, step.active):
            episode = self.current[i]
            truncated = bool(dones[i] and infos[i].get("TimeLimit.truncated", False))
            last = step.t == self.counts[i] - 1
            episode.actions.append(step.actions[i])
            episode.rewards.append(float(step.rewards[i]))
            episode.terminations.append(bool(dones[i]) and not truncated)
            episode.truncations.append(truncated or (last and not dones[i]))  # the budget cuts the last episode
            episode.infos.append(_info_arrays(infos[i], self.info_keys))
            if dones[i]:  # the VecEnv has already reset: the episode's final observation is in the info
                episode.observations.append(dict(infos[i]["terminal_observation"]))
                self.current[i] = self._start(i, {name: next_obs[name][i] for name in self.names},
                                              step.reset_infos[i], None)
            else:
                episode.observations.append({name: next_obs[name][i] for name in self.names})
            if dones[i] or last:
                self.finished[i].append(episode)

    def episodes(self) -> list[Episode]:
        """The finished episodes, env by env in time order (the order of the npz dataset's rows)."""
        return [episode for episodes in self.finished for episode in episodes]


def episode_buffer(episode: Episode, names: list[str], action_shape: tuple[int, ...], action_dtype: np.dtype,
                    info_keys: list[str]) -> Any:
    """A ``minari.data_collector.EpisodeBuffer`` holding ``episode`` as stacked arrays."""
    from minari.data_collector import EpisodeBuffer

    infos = {key: np.stack([info[key] for info in episode.infos]) for key in info_keys} if info_keys else None
    return EpisodeBuffer(
        seed=episode.seed,
        options=episode.options,
        observations={name: np.stack([obs[name] for obs in episode.observations]) for name in names},
        actions=np.stack(episode.actions).astype(action_dtype, copy=False).reshape(-1, *action_shape),
        rewards=np.asarray(episode.rewards, dtype=np.float32),
        terminations=np.asarray(episode.terminations, dtype=bool),
        truncations=np.asarray(episode.truncations, dtype=bool),
        infos=infos,
    )


def episode_rows(dataset_id: str, episode: Any, specs: dict[str, ModalitySpec], action_shape: tuple[int, ...],
                 action_dtype: np.dtype) -> dict[str, np.ndarray]:
    """The rows of one Minari episode in the npz layout: the observation before each action (the final next
    observation dropped), the action, reward and both flags; checked against the dataset's spaces."""
    steps = len(episode.rewards)
    rows: dict[str, np.ndarray] = {}
    for name, spec in specs.items():
        observations = np.asarray(episode.observations[name])
        if observations.shape != (steps + 1, *spec.shape) or observations.dtype.name != spec.dtype:
            raise DatasetError(
                f"Minari dataset {dataset_id!r}, episode {episode.id}: observations {name!r} are "
                f"{observations.dtype.name}{list(observations.shape)}, expected {spec.dtype}{[steps + 1, *spec.shape]} "
                "(one per step plus the final one)"
            )
        rows[name] = observations[:-1]
    rows["actions"] = np.asarray(episode.actions).astype(action_dtype, copy=False).reshape(steps, *action_shape)
    rows["rewards"] = np.asarray(episode.rewards, dtype=np.float32)
    rows["terminated"] = np.asarray(episode.terminations, dtype=bool)
    rows["truncated"] = np.asarray(episode.truncations, dtype=bool)
    for name, values in rows.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            step = int(np.flatnonzero(~np.isfinite(values.reshape(steps, -1)).all(axis=1))[0])
            raise DatasetError(f"Minari dataset {dataset_id!r}, episode {episode.id}: {name!r} holds NaN or inf "
                               f"(first at step {step}); gmc-rl trains only on finite values")
    states = episode.infos.get("state") if isinstance(episode.infos, dict) else None
    if states is not None:  # the env's true state, recorded by Minari with the infos: kept for the state probe
        states = np.asarray(states, dtype=np.float64)
        if states.ndim == 2 and len(states) == steps + 1 and np.isfinite(states).all():
            rows[STATES_KEY] = states[:-1].astype(np.float32)
    return rows



HDF5_FILE = "main_data.hdf5"
"""The file under a Minari dataset's ``data/`` that holds its episodes in the ``hdf5`` format (Minari's default, the
one gmc-rl writes)."""


def rewrite_hint(dataset_id: str) -> str:
    """How to get a whole copy of a damaged Minari dataset back."""
    return (f"collect it again with the settings it was collected with and --update (`gmc-rl collect --minari "
            f"{dataset_id} --update --config ...`), or copy it again from where it came from")


def check_stored_episodes(dataset_id: str, data_dir: Path, metadata: Mapping[str, Any]) -> None:
    """Refuse a Minari dataset whose ``data/main_data.hdf5`` cannot be opened (truncated, emptied, missing) or holds
    other episodes than ``metadata.json``'s ``total_episodes`` (``episode_0`` ... ``episode_<n-1>``) and
    ``total_steps`` say, with a DatasetError naming the dataset, the file, the key and both numbers. Minari trusts
    those counts: too many failed in h5py with a bare ``KeyError``, too few dropped the other episodes silently.
    Only the ``hdf5`` format is checked (another format is left to Minari)."""
    if metadata.get("data_format") != "hdf5":
        return
    file = data_dir / HDF5_FILE
    steps = _stored_steps(dataset_id, file)
    where = f"Minari dataset {dataset_id!r}: {data_dir / 'metadata.json'}"
    fix = f"the metadata was edited or the data file replaced; {rewrite_hint(dataset_id)}"
    total_episodes, total_steps = metadata["total_episodes"], metadata["total_steps"]
    if len(steps) != total_episodes:
        raise DatasetError(f"{where} says total_episodes {total_episodes}, but {file} holds {len(steps)} episodes; "
                           f"{fix}")
    missing = [f"episode_{i}" for i in range(total_episodes) if f"episode_{i}" not in steps]
    if missing:
        raise DatasetError(f"{where} says total_episodes {total_episodes}, but {file} lacks {missing[:3]} (it holds "
                           f"{sorted(steps)[:3]}...); {fix}")
    if sum(steps.values()) != total_steps:
        raise DatasetError(f"{where} says total_steps {total_steps}, but the episodes in {file} hold "
                           f"{sum(steps.values())} steps; {fix}")


def _stored_steps(dataset_id: str, file: Path) -> dict[str, int]:
    """The number of steps (rewards) of every episode group in the HDF5 ``file``; a DatasetError naming the dataset
    and the file if h5py cannot open it (its own text, "Unable to synchronously open file (truncated file ...)",
    names neither) or an episode has no rewards."""
    import h5py

    named = f"Minari dataset {dataset_id!r}: its data file {file}"
    if not file.is_file():
        raise DatasetError(f"{named} is missing; {rewrite_hint(dataset_id)}")
    try:
        with h5py.File(file, "r") as handle:
            steps = {}
            for name, group in handle.items():
                rewards = group.get("rewards") if isinstance(group, h5py.Group) else None
                if not isinstance(rewards, h5py.Dataset) or rewards.ndim != 1:
                    raise DatasetError(f"{named} is damaged: {name!r} is not an episode with a 1-d 'rewards' "
                                       f"array; {rewrite_hint(dataset_id)}")
                steps[name] = int(rewards.shape[0])
            return steps
    except OSError as exc:  # h5py: truncated, emptied, not HDF5 at all
        raise DatasetError(f"{named} is damaged or truncated and cannot be read ({exc}); "
                           f"{rewrite_hint(dataset_id)}") from exc
