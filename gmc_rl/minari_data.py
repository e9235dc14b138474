"""Minari datasets: export a collection as whole episodes, and read a Minari dataset for pretraining.

`Minari <https://minari.farama.org>`_ is the Farama Foundation's standard format for offline RL datasets. gmc-rl's
own format (:mod:`gmc_rl.data`) stays the one the pipeline writes: it is smaller on disk and faster to load (see
``docs/datasets.md`` for the measurement). Minari is the format to share data with other offline RL tools, and to
pretrain on data that other tools wrote. It is an optional extra: ``pip install -e '.[minari]'``.

Export (:func:`collect_minari`, ``gmc-rl collect --minari ID``) rolls out exactly what :func:`gmc_rl.collect.collect`
rolls out (the same envs, seeds, behaviour policy, per-env step budget and random draws), but records whole
episodes: every observation including the final next observation of each episode, the actions, rewards,
terminations, truncations and the env's own ``info`` (the true ``state`` and the diagnostics of the built-in
envs). Episodes are stored env by env in time order, so a Minari dataset and the npz dataset of the same config
hold the same transitions in the same order. The last episode of every env is cut by the step budget and is
marked truncated, like the last row of each env's chunk in the npz format. Observations are stored losslessly
(Minari's JPEG encoding of images is turned off), so every modality keeps its dtype and shape.

Import (:func:`load_minari_dataset`, ``gmc-rl pretrain --data minari:ID``,
``gmc_rl.dataset_sources.load_dataset("minari:ID")``) returns the :class:`~gmc_rl.data.MultimodalDataset` that
:func:`gmc_rl.data.load_dataset` returns for an npz dataset: one row per transition (the observation before each
action; the final next observations are dropped, as the npz format does not store them), whole episodes split into
train and validation by the npz rule, and the same metadata keys.

Datasets live in Minari's data directory: ``$MINARI_DATASETS_PATH`` if set, else ``~/.minari/datasets``.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gmc_rl import __version__
from gmc_rl.collect import check_dataset_size
from gmc_rl.config import ExperimentConfig, collect_identity
from gmc_rl.data import (
    RESERVED_KEYS,
    STATES_KEY,
    MultimodalDataset,
    array_layout,
    file_sha256,
    normalization_stats,
    space_to_json,
)
from gmc_rl.errors import ConfigError, DatasetError, ModalityError
from gmc_rl.io import DIRECTORY, path_kind, read_json_object, write_json_atomic
from gmc_rl.locking import directory_lock, holder_if_locked
from gmc_rl.minari_episodes import EpisodeRecorder, check_stored_episodes, episode_buffer, episode_rows
from gmc_rl.modalities import modality_specs
from gmc_rl.rollout import (
    behaviour_policy_file,
    declared_state_names,
    open_collection_envs,
    prepare_rollout,
    rollout,
)
from gmc_rl.state_probe import state_variables

INSTALL_HINT = "pip install -e '.[minari]'"
GMC_RL_KEY = "gmc_rl"
"""Key of the Minari dataset's metadata under which an export records how gmc-rl collected it (the config's env id
and kwargs, the collect settings, the package version)."""
DEFAULT_VAL_FRACTION = 0.1
"""Validation fraction for a Minari dataset that gmc-rl did not write (one it wrote keeps its own)."""


def import_minari() -> ModuleType:
    """Import the optional ``minari`` package (and h5py, its HDF5 storage), or raise a ConfigError saying how to
    install it."""
    try:
        import h5py  # noqa: F401  (Minari's default storage; minari alone imports without it)
        import minari
    except ImportError as exc:
        raise ConfigError(f"Minari datasets need the optional package minari: {INSTALL_HINT}") from exc
    return minari


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if Minari accepts it, else raise a ConfigError with Minari's naming rule.

    Minari ids are ``[namespace/]name-v<version>``: letters, digits, ``_`` and ``-``, a version suffix required,
    e.g. ``gmc_rl/pendulum-sound-random-v0`` (namespace ``gmc_rl``, name ``pendulum-sound-random``, version 0).
    """
    import_minari()
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as exc:  # TypeError: no "-v<version>" suffix
        raise ConfigError(
            f"{dataset_id!r} is not a Minari dataset id: ids are [namespace/]name-v<version> (letters, digits, '_' "
            "and '-'), e.g. gmc_rl/pendulum-sound-random-v0"
        ) from exc
    return dataset_id


DATASETS_VARIABLE = "MINARI_DATASETS_PATH"
"""The environment variable that names Minari's data directory (default ``~/.minari/datasets``)."""


def check_datasets_root() -> Path:
    """Minari's data directory, ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``, checked before Minari creates
    it: a value that is empty, or a path that is (or lies under) a regular file, a FIFO, a device or a broken link,
    is refused with a ConfigError naming the variable and its value (Minari's own answer is a raw
    ``[Errno 17] File exists``). A directory that does not exist yet is fine: Minari creates it."""
    value = os.environ.get(DATASETS_VARIABLE)
    if value is None:
        root, named, fix = Path.home() / ".minari" / "datasets", "Minari's default data directory", \
            f"remove it, or set {DATASETS_VARIABLE} to a directory for Minari's datasets"
    else:
        root, named = Path(value), f"{DATASETS_VARIABLE}={value!r}"
        fix = f"set {DATASETS_VARIABLE} to a directory for Minari's datasets, or unset it to use ~/.minari/datasets"
        if not value.strip():
            raise ConfigError(f"{named} is empty, which names no directory; {fix}")
    for path in (root, *root.parents):
        kind = path_kind(path)
        if kind is None:
            continue
        if kind != DIRECTORY:
            what = f"{root} is {kind}" if path == root else f"{root} lies under {path}, which is {kind}"
            raise ConfigError(f"{named}: {what}, not a directory; {fix}")
        break
    return root


def dataset_path(dataset_id: str) -> Path:
    """Directory of a Minari dataset: ``<id>`` under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``),
    which must be a directory or not exist yet (:func:`check_datasets_root`)."""
    import_minari()
    from minari.storage import get_dataset_path

    check_dataset_id(dataset_id)
    check_datasets_root()
    try:
        return Path(get_dataset_path(dataset_id))
    except OSError as exc:  # Minari creates the directory: a read-only parent, for one
        value = os.environ.get(DATASETS_VARIABLE)
        named = f"{DATASETS_VARIABLE}={value!r}" if value is not None else "Minari's default data directory"
        raise ConfigError(f"{named}: Minari cannot create its data directory ({exc.strerror or exc}); set "
                          f"{DATASETS_VARIABLE} to a directory you can write to") from exc


def _load(dataset_id: str) -> Any:
    """The ``minari.MinariDataset`` of ``dataset_id``, with a DatasetError naming where it was looked for."""
    minari = import_minari()
    path = dataset_path(dataset_id)
    if not (path / "data").is_dir():
        from minari.storage import get_dataset_path

        raise DatasetError(
            f"no Minari dataset {dataset_id!r} in {get_dataset_path()} (MINARI_DATASETS_PATH="
            f"{os.environ.get('MINARI_DATASETS_PATH', 'unset')}); local datasets: "
            f"{sorted(minari.list_local_datasets()) or 'none'}; write one with `gmc-rl collect --minari {dataset_id}`"
        )
    _check_metadata(dataset_id, path / "data" / "metadata.json")
    try:
        return minari.load_dataset(dataset_id)
    except Exception as exc:  # Minari's loader raises many kinds, some without a message (a bare assert)
        reason = f"{exc}" if str(exc) else f"{type(exc).__name__} with no message"
        raise DatasetError(f"cannot read Minari dataset {dataset_id!r} in {path}: {reason}") from exc


METADATA_FIELDS = {"data_format": str, "total_episodes": int, "total_steps": int}
"""Keys of a Minari dataset's ``data/metadata.json`` that reading it needs, with their JSON types."""

SPACE_FIELDS = {"observation_space": str, "action_space": str, "env_spec": str}
"""Keys that say the dataset's spaces: both serialized spaces, or the env spec Minari rebuilds them from."""


def _check_metadata(dataset_id: str, file: Path) -> None:
    """Refuse a ``metadata.json`` that Minari could not read, naming the file and the key: Minari's own checks are
    bare asserts, which say nothing (a file with ``observation_space`` and ``env_spec`` removed gave "cannot read
    ...: " and no reason)."""
    what = f"Minari dataset {dataset_id!r}: metadata file"
    if not file.is_file():  # Minari names this case itself ("No data found in data path ...")
        return
    metadata = read_json_object(file, what, METADATA_FIELDS, DatasetError, optional=SPACE_FIELDS)
    if not ("observation_space" in metadata and "action_space" in metadata) and "env_spec" not in metadata:
        raise DatasetError(f"{file}: the dataset's spaces are not recorded: it needs both 'observation_space' and "
                           "'action_space', or an 'env_spec' to rebuild them from; it was edited or is damaged")


# ----------------------------------------------------------------------------------------------------------------
# Export.


def _identity(config: ExperimentConfig) -> dict[str, Any]:
    """What decides an export's content (as JSON): env id, env kwargs and the collect section."""
    return json.loads(json.dumps({"env_id": config.env_id, "env_kwargs": config.env_kwargs,
                                  "collect": collect_identity(config.collect)}))


def _existing(dataset_id: str, config: ExperimentConfig, overwrite: bool) -> bool:
    """True if ``dataset_id`` already holds this very collection; raise if it holds another one.

    Like the npz path: the same env and collect settings keep the dataset, other settings are refused unless
    ``overwrite`` (which deletes the old dataset). A Minari dataset that gmc-rl did not write is never deleted.
    """
    path = dataset_path(dataset_id)
    if not path.exists() and not path.is_symlink():
        return False
    if _remove_if_empty(path):  # an empty folder (made by hand, say): nothing to keep, and Minari needs the path
        return False
    keep = "gmc-rl never deletes what it did not write: choose another id, or move it away"
    if not (path / "data").is_dir():
        raise DatasetError(f"{path} ({path_kind(path)}) is in the way of Minari dataset {dataset_id!r} and is not "
                           f"one (no data/ folder); {keep}")
    try:
        dataset = _load(dataset_id)
    except DatasetError as exc:
        raise DatasetError(f"{exc}; {keep}") from exc
    old = (dataset.storage.metadata.get(GMC_RL_KEY) or {}).get("identity")
    if old is None:
        raise DatasetError(f"Minari dataset {dataset_id!r} ({path}) was not written by gmc-rl; choose another id")
    if overwrite:
        shutil.rmtree(path)
        return False
    new = _identity(config)
    if old == new:
        check_stored_episodes(dataset_id, path / "data", dataset.storage.metadata)  # kept only if whole
        return True
    diffs = sorted(f"{key}: {old.get(key)!r} -> {new[key]!r}" for key in new if old.get(key) != new[key])
    raise DatasetError(
        f"Minari dataset {dataset_id!r} was collected with different settings ({'; '.join(diffs)}); choose another "
        "id (e.g. a higher -v<version>) or pass --update (overwrite=True) to replace it"
    )


def _remove_if_empty(path: Path) -> bool:
    """Remove ``path`` if it is a real folder (not a link) holding folders only, to any depth; return whether it
    did. ``os.rmdir`` removes only empty folders, so a file that appears meanwhile is never deleted."""
    if path.is_symlink() or not path.is_dir() or any(not p.is_dir() or p.is_symlink() for p in path.rglob("*")):
        return False
    for folder in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.rmdir(folder)
    os.rmdir(path)
    return True


def collect_minari(config: ExperimentConfig, dataset_id: str, overwrite: bool = False, progress: bool = True,
                   record_infos: bool = True) -> Any:
    """Collect ``config.collect.steps`` transitions as :func:`gmc_rl.collect.collect` does and write them as the
    Minari dataset ``dataset_id`` (whole episodes, see the module docstring); return the ``minari.MinariDataset``.

    If the dataset already exists with the same env and collect settings it is kept and returned; other settings
    raise DatasetError unless ``overwrite``. One export at a time writes an id: a second one (in this or another
    process) is refused with a ConfigError naming the holder, before it reads or deletes anything
    (:func:`lock_directory`). ``record_infos=False`` leaves the env's ``info`` out (needed only for an
    env whose step info lacks keys of its reset info).
    """
    minari = import_minari()
    check_dataset_id(dataset_id)
    behaviour_policy_file(config.collect.policy)  # a policy file that is not there: refused before anything is made
    with directory_lock(lock_directory(dataset_id), f"Minari dataset {dataset_id!r}: its lock directory"):
        return _collect_minari(minari, config, dataset_id, overwrite, progress, record_infos)


def lock_directory(dataset_id: str) -> Path:
    """Where :func:`collect_minari` holds the lock of ``dataset_id`` (:func:`gmc_rl.locking.directory_lock`): the
    hidden sibling ``.<name>.gmc-rl-lock`` of the dataset's directory, not the directory itself, which Minari creates
    (it refuses one that exists) and which ``--update`` deletes; Minari lists no hidden directory as a dataset."""
    path = dataset_path(dataset_id)
    return path.parent / f".{path.name}.gmc-rl-lock"


def export_marker(dataset_id: str) -> Path:
    """The file that says an export of ``dataset_id`` is under way, in its lock directory: written before Minari
    writes, removed once the dataset is whole. Found with no export running, it means that one was killed (SIGKILL,
    power loss) before it finished, and the dataset under the id is incomplete."""
    return lock_directory(dataset_id) / "export.json"


def _collect_minari(minari: ModuleType, config: ExperimentConfig, dataset_id: str, overwrite: bool, progress: bool,
                    record_infos: bool) -> Any:
    """:func:`collect_minari`, with the dataset's lock held."""
    settings = config.collect
    marker = export_marker(dataset_id)
    if marker.is_file():  # an export of this id was killed: what it left is gmc-rl's and incomplete
        if dataset_path(dataset_id).exists():
            shutil.rmtree(dataset_path(dataset_id))
        marker.unlink()
        if progress:
            print(f"Minari dataset {dataset_id!r}: an earlier export was interrupted; writing it again")
    if _existing(dataset_id, config, overwrite):
        if progress:
            print(f"Minari dataset {dataset_id!r} already holds this collection; keeping it "
                  "(pass --update, overwrite=True, to collect again)")
        return _load(dataset_id)
    check_dataset_size(config)

    venv, focused = open_collection_envs(config)
    n_envs = venv.num_envs
    try:
        specs, policy, counts = prepare_rollout(config, venv)
        names = list(specs)
        action_space = venv.action_space
        action_shape = tuple(action_space.shape or ())
        action_dtype = np.dtype(action_space.dtype if action_space.dtype is not None else np.int64)
        recorder = EpisodeRecorder(names, counts, settings, focused, record_infos)
        # The rollout of gmc_rl.collect.collect (the same steps and random draws), recorded as whole episodes.
        rollout(venv, policy, counts, settings.seed, recorder, f"collect {config.env_id} (Minari)", progress)
        env = venv.envs[-1]  # a plain copy (focused envs are the first ones): its spec is the dataset's env spec
        buffers = [episode_buffer(episode, names, action_shape, action_dtype, recorder.info_keys)
                   for episode in recorder.episodes()]
        metadata = {
            "identity": _identity(config),
            "env_id": config.env_id,
            "env_kwargs": config.env_kwargs,
            "seed": settings.seed,
            "steps": int(counts.sum()),
            "n_envs": n_envs,
            "policy": settings.policy,
            "focused_envs": focused,
            "val_fraction": settings.val_fraction,
            "state_names": declared_state_names(venv),
            "gmc_rl_version": __version__,
        }
        path = dataset_path(dataset_id)
        write_json_atomic(marker, {"dataset_id": dataset_id, "path": str(path), "pid": os.getpid()})
        try:
            with warnings.catch_warnings():  # Minari asks for an author, an e-mail and a code link gmc-rl cannot know
                warnings.filterwarnings("ignore", message=r"`(author|author_email|code_permalink)` is set to None")
                dataset = minari.create_dataset_from_buffers(
                    dataset_id, buffers, env=env, eval_env=env.spec, algorithm_name=settings.policy,
                    description=(f"gmc-rl collection on {config.env_id}: {settings.policy} behaviour policy, "
                                 f"{int(counts.sum())} steps over {n_envs} envs, seed {settings.seed}"),
                    requirements=[f"gmc-rl>={__version__}"], jpeg_encoding=False,
                )
            dataset.storage.update_metadata({GMC_RL_KEY: metadata})
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # never leave half a dataset under the id
            marker.unlink(missing_ok=True)
            raise
        marker.unlink()
    finally:
        venv.close()
    return dataset


# ----------------------------------------------------------------------------------------------------------------
# Import.


def minari_env_id(dataset_id: str) -> str:
    """The env id a Minari dataset was collected on: the config's id for a gmc-rl export, else the env spec's id."""
    dataset = _load(dataset_id)
    return _env_id(dataset_id, dataset)


def _env_id(dataset_id: str, dataset: Any) -> str:
    recorded = (dataset.storage.metadata.get(GMC_RL_KEY) or {}).get("env_id")
    if recorded:
        return str(recorded)
    if dataset.env_spec is None:
        raise DatasetError(f"Minari dataset {dataset_id!r} records no env spec, so its env cannot be checked against "
                           "the config's env_id")
    return str(dataset.env_spec.id)


def _split_episodes(lengths: list[int], val_fraction: float) -> int:
    """Number of episodes in the training split: validation takes the last episodes, ending at the episode
    boundary nearest to ``val_fraction`` of the transitions (the rule of :func:`gmc_rl.collect.collect`)."""
    total = sum(lengths)
    ends = np.cumsum(lengths)[:-1]  # boundaries between episodes
    if len(ends) == 0:
        return 0
    target = total - max(1, int(round(val_fraction * total)))
    return int(np.argmin(np.abs(ends - target))) + 1


def _whole_dataset(dataset_id: str) -> Any:
    """The ``minari.MinariDataset`` of ``dataset_id`` to read, refused with a DatasetError while an export writes
    it, after an export was interrupted, or when its data file is damaged or holds other episodes than its
    metadata counts (:func:`~gmc_rl.minari_episodes.check_stored_episodes`)."""
    check_dataset_id(dataset_id)
    writer = holder_if_locked(lock_directory(dataset_id))
    if writer is not None:
        raise DatasetError(f"Minari dataset {dataset_id!r} is being written by {writer}; wait for the export to "
                           "finish, then rerun (a killed export releases its lock by itself)")
    if export_marker(dataset_id).is_file():
        raise DatasetError(f"Minari dataset {dataset_id!r} is incomplete: its export was interrupted (killed) "
                           f"before it finished; run the same `gmc-rl collect --minari {dataset_id} ...` again")
    dataset = _load(dataset_id)
    check_stored_episodes(dataset_id, dataset_path(dataset_id) / "data", dataset.storage.metadata)
    return dataset


def load_minari_dataset(dataset_id: str, val_fraction: float | None = None,
                        env_id: str | None = None) -> MultimodalDataset:
    """Load the Minari dataset ``dataset_id`` as a :class:`~gmc_rl.data.MultimodalDataset` (see the module docstring).

    ``val_fraction`` is the share of transitions held out for validation, as whole episodes taken from the end;
    default: the ``collect.val_fraction`` a gmc-rl export was made with, else 0.1. ``env_id``, if given, must be
    the env the dataset was collected on.

    Raises:
        ConfigError: minari is not installed, the id is malformed, or ``env_id`` is not the dataset's env.
        DatasetError: no such dataset, a data file that is damaged or holds other episodes than its metadata
            counts, too few episodes to split, or episodes that disagree with the spaces.
        ModalityError: the observation space is not a Dict of at least two Box modalities.
    """
    dataset = _whole_dataset(dataset_id)
    recorded = dataset.storage.metadata.get(GMC_RL_KEY) or {}
    dataset_env = _env_id(dataset_id, dataset)
    if env_id is not None and env_id != dataset_env:
        raise ConfigError(f"Minari dataset {dataset_id!r} was collected on {dataset_env!r}, not on {env_id!r}; "
                          f"pass --env {dataset_env} or the matching --config")
    if val_fraction is None:
        val_fraction = float(recorded.get("val_fraction", DEFAULT_VAL_FRACTION))
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    specs = modality_specs(dataset.observation_space)
    clash = [name for name in specs if name in RESERVED_KEYS]
    if clash:
        raise ModalityError(f"modality names {clash} clash with the dataset's reserved arrays {list(RESERVED_KEYS)}")
    action_space = dataset.action_space
    action_shape = tuple(action_space.shape or ())
    action_dtype = np.dtype(action_space.dtype if action_space.dtype is not None else np.int64)

    episodes = [episode_rows(dataset_id, episode, specs, action_shape, action_dtype)
                for episode in dataset.iterate_episodes()]
    lengths = [len(episode["rewards"]) for episode in episodes]
    n_train_episodes = _split_episodes(lengths, val_fraction)
    n_train = sum(lengths[:n_train_episodes])
    if not (n_train_episodes and 2 <= n_train <= sum(lengths) - 2):
        raise DatasetError(
            f"Minari dataset {dataset_id!r} ({len(episodes)} episodes of {lengths[:5]}... steps) cannot be split into "
            f"whole episodes of at least 2 transitions each for training and validation (val_fraction={val_fraction})"
        )
    widths = {e[STATES_KEY].shape[1] if STATES_KEY in e else None for e in episodes}
    state_dim = widths.pop() if len(widths) == 1 else None  # states of every episode, of one width, or none
    keys = [key for key in episodes[0] if key != STATES_KEY or state_dim is not None]
    train = {key: np.concatenate([e[key] for e in episodes[:n_train_episodes]]) for key in keys}
    val = {key: np.concatenate([e[key] for e in episodes[n_train_episodes:]]) for key in keys}

    path = dataset_path(dataset_id)
    files = {str(file.relative_to(path)): {"sha256": file_sha256(file), "bytes": file.stat().st_size}
             for file in sorted((path / "data").rglob("*")) if file.is_file()}
    metadata = {
        "format": "minari",
        "minari_dataset_id": dataset_id,
        "minari_version": dataset.minari_version,
        "env_id": dataset_env,
        "env_kwargs": recorded.get("env_kwargs", dict(dataset.env_spec.kwargs) if dataset.env_spec else {}),
        "modalities": list(specs),
        "spaces": {"observation": [spec.to_json() for spec in specs.values()], "action": space_to_json(action_space)},
        "n_train": n_train,
        "n_val": len(val["rewards"]),
        "episodes": {"train": n_train_episodes, "val": len(episodes) - n_train_episodes},
        "episodes_ended": {"train": int((train["terminated"] | train["truncated"]).sum()),
                           "val": int((val["terminated"] | val["truncated"]).sum())},
        "normalization": normalization_stats(train, specs),
        "arrays": array_layout(specs, action_shape, action_dtype.name, state_dim),
        **({"state_names": state_variables(recorded.get("state_names"), state_dim)} if state_dim is not None else {}),
        "identity": recorded.get("identity", {"minari_dataset_id": dataset_id}),
        "files": files,
        **{key: recorded[key] for key in ("seed", "steps", "n_envs", "policy", "focused_envs",
                                                 "gmc_rl_version") if key in recorded},
    }
    return MultimodalDataset(path, metadata, specs, train, val)
