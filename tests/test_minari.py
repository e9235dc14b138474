"""Minari datasets: export with `gmc-rl collect --minari`, reading back with minari, pretraining from `minari:<id>`,
and the clear errors (minari missing, a malformed id, another env, another collection under the same id)."""

import json
import os
import sys

import gymnasium as gym
import numpy as np
import pytest

from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig
from gmc_rl.dataset_sources import load_dataset
from gmc_rl.errors import ConfigError, DatasetError

ENV_ID = "gmc_rl/PendulumSound-v0"
DATASET_ID = "gmc_rl/pendulum-sound-test-v0"
ENV_KWARGS = {"max_episode_steps": 40}
CONFIG = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=300, n_envs=4, seed=3))
SMALL_FLAGS = ["--latent-dim", "4", "--common-dim", "8", "--head-hidden", "8", "--conv-channels", "4",
               "--mlp-hidden", "8", "--batch-size", "16", "--quiet"]


def test_without_minari_the_error_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "minari", None)  # `import minari` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[minari\]'"):
        load_dataset(f"minari:{DATASET_ID}")
    assert main(["collect", "--minari", DATASET_ID, "--steps", "10", "--quiet"]) == 2
    assert main(["pretrain", "--data", f"minari:{DATASET_ID}", "--out", str(tmp_path / "out")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("pip install -e '.[minari]'" in line for line in errors)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """MINARI_DATASETS_PATH in a temporary folder holding DATASET_ID, exported by the command line."""
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
        assert main(["collect", "--minari", DATASET_ID, "--env", ENV_ID, "--env-kwargs", json.dumps(ENV_KWARGS),
                     "--steps", "300", "--n-envs", "4", "--seed", "3", "--quiet"]) == 0
        yield DATASET_ID


def test_export_holds_whole_episodes_with_their_final_observation(exported):
    import minari

    dataset = minari.load_dataset(exported)
    assert dataset.total_steps == 300 and dataset.env_spec.id == ENV_ID and dataset.env_spec.max_episode_steps == 40
    env = gym.make(ENV_ID, **ENV_KWARGS)
    assert dataset.observation_space == env.observation_space and dataset.action_space == env.action_space
    episodes = list(dataset.iterate_episodes())
    assert [len(e) for e in episodes] == [40, 35] * 4  # 75 steps per env: one full episode, then a cut one
    for episode in episodes:
        for name, space in env.observation_space.spaces.items():
            assert episode.observations[name].dtype == space.dtype
            assert episode.observations[name].shape == (len(episode) + 1, *space.shape)
        assert episode.infos["state"].shape == (len(episode) + 1, 3)  # the true state, reset included
        ends = episode.terminations | episode.truncations
        assert ends[-1] and not ends[:-1].any()
    # Replay env 0 (episodes 0 and 1) from the recorded seed and actions: every observation, the final one of each
    # episode included, and the true state are what the env produces.
    assert next(iter(dataset.storage.get_episode_metadata([0])))["seed"] == 3
    obs, info = env.reset(seed=3)
    for episode in episodes[:2]:
        if episode is episodes[1]:
            obs, info = env.reset()  # what the VecEnv does after an episode ends
        for t in range(len(episode) + 1):
            for name in obs:
                assert np.array_equal(episode.observations[name][t], obs[name])
            assert np.array_equal(episode.infos["state"][t], info["state"])
            if t < len(episode):
                obs, reward, _, truncated, info = env.step(episode.actions[t])
                assert np.float32(reward) == episode.rewards[t]
        assert truncated == (episode is episodes[0])  # the time limit ends episode 0; the step budget cuts episode 1


def test_minari_dataset_loads_as_the_npz_dataset_of_the_same_config(exported, tmp_path):
    from gmc_rl.minari_data import load_minari_dataset

    npz = load_dataset(collect(CONFIG, tmp_path / "npz", progress=False))
    loaded = load_dataset(f"minari:{exported}")
    assert loaded.env_id == ENV_ID and loaded.metadata["env_kwargs"] == ENV_KWARGS
    assert loaded.specs == npz.specs and loaded.normalization == npz.normalization
    for key in ("n_train", "n_val", "spaces", "arrays", "identity", "seed", "policy"):
        assert loaded.metadata[key] == npz.metadata[key], key
    for split in ("train", "val"):
        ours, theirs = getattr(npz, split), getattr(loaded, split)
        assert list(theirs) == list(ours)
        for key, array in ours.items():
            assert theirs[key].dtype == array.dtype and np.array_equal(theirs[key], array), (split, key)
    other = load_minari_dataset(exported, val_fraction=0.5)  # whole episodes: 4 of the 8 go to validation
    assert other.metadata["episodes"] == {"train": 4, "val": 4} and len(other.val["rewards"]) == 150


def test_pretrain_one_epoch_from_minari(exported, tmp_path):
    out = tmp_path / "encoder"
    assert main(["pretrain", "--data", f"minari:{exported}", "--out", str(out), "--epochs", "1", *SMALL_FLAGS]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["data_dir"] == f"minari:{exported}" and run["experiment"]["env_id"] == ENV_ID
    assert set(run["identity"]["data"]) == {"data/main_data.hdf5", "data/metadata.json"}
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert main(["pretrain", "--data", f"minari:{exported}", "--out", str(out), "--epochs", "2", "--resume",
                 *SMALL_FLAGS]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_another_env_or_collection_is_refused(exported, tmp_path, capsys):
    from gmc_rl.minari_data import collect_minari, load_minari_dataset

    other_env = "gmc_rl/CartPoleSensors-v0"
    assert main(["pretrain", "--data", f"minari:{exported}", "--env", other_env, "--out", str(tmp_path / "o"),
                 "--epochs", "1", *SMALL_FLAGS]) == 2
    assert f"was collected on '{ENV_ID}' but the config's env_id is '{other_env}'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="was collected on 'gmc_rl/PendulumSound-v0', not on"):
        load_minari_dataset(exported, env_id=other_env)
    assert collect_minari(CONFIG, exported, progress=False).total_steps == 300  # the same collection is kept
    changed = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=200, n_envs=4, seed=3))
    with pytest.raises(DatasetError, match=r"different settings \(collect: .*--update"):
        collect_minari(changed, exported, progress=False)
    small = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=40, n_envs=2))
    assert collect_minari(small, "gmc_rl/replaced-v0", progress=False).total_steps == 40
    assert collect_minari(changed, "gmc_rl/replaced-v0", overwrite=True, progress=False).total_steps == 200
    assert main(["collect", "--minari", exported, "--out", str(tmp_path / "npz"), "--quiet"]) == 2
    assert "give either --out DIR" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="no Minari dataset 'gmc_rl/missing-v0'"):
        load_dataset("minari:gmc_rl/missing-v0")
    with pytest.raises(ConfigError, match=r"\[namespace/\]name-v<version>"):
        collect_minari(CONFIG, "gmc_rl/no-version", progress=False)


# ----------------------------------------------------------------------------------------------------------------
# One export at a time per dataset id (gmc_rl.locking, as collect to npz): a second one is refused, naming the holder.


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_second_export_to_the_same_id_is_refused_and_touches_nothing(tmp_path, monkeypatch, overwrite):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.locking import directory_lock
    from gmc_rl.minari_data import collect_minari, dataset_path, lock_directory

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    config = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=40, n_envs=1))
    other = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=40, n_envs=1, seed=9))
    collect_minari(config, DATASET_ID, progress=False)
    before = sorted((p.relative_to(tmp_path), p.stat().st_size) for p in dataset_path(DATASET_ID).rglob("*"))
    with directory_lock(lock_directory(DATASET_ID), "another export"):
        for again in (config, other):  # the same collection ("kept") or another one (--update replaces it)
            with pytest.raises(ConfigError, match=rf"Minari dataset '{DATASET_ID}': its lock directory .* is in use "
                                                  rf"by process {os.getpid()}"):
                collect_minari(again, DATASET_ID, overwrite=overwrite, progress=False)
        # a fresh id under the same namespace is not blocked by this one's lock
        collect_minari(config, "gmc_rl/another-test-v0", progress=False)
    assert sorted((p.relative_to(tmp_path), p.stat().st_size) for p in dataset_path(DATASET_ID).rglob("*")) == before
    collect_minari(other, DATASET_ID, overwrite=True, progress=False)  # released: the lock files are no obstacle
    import minari

    assert DATASET_ID in minari.list_local_datasets() and "gmc_rl/another-test-v0" in minari.list_local_datasets()
    assert len(minari.list_local_datasets()) == 2  # the hidden lock directories are not listed as datasets


def test_a_second_export_command_is_one_clear_error(tmp_path, monkeypatch, capsys):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.locking import directory_lock
    from gmc_rl.minari_data import dataset_path, lock_directory

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with directory_lock(lock_directory(DATASET_ID), "another export"):
        assert main(["collect", "--minari", DATASET_ID, "--env", ENV_ID, "--steps", "40", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gmc-rl collect: error: Minari dataset '{DATASET_ID}': its lock directory ")
    assert "\n" not in err
    assert "is in use by process" in err and not dataset_path(DATASET_ID).exists()


def test_two_exports_at_once_one_is_refused_while_the_other_writes(tmp_path, monkeypatch):
    """The first export is held inside Minari's write; the second, started meanwhile, must be refused (without the
    lock it went on to write the same id: one of the two was lost or failed with Minari's raw error)."""
    import threading

    minari = pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.minari_data import collect_minari, dataset_path

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    writing, release = threading.Event(), threading.Event()
    create = minari.create_dataset_from_buffers
    calls = []

    def held_create(*args, **kwargs):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            writing.set()
            assert release.wait(60)
        return create(*args, **kwargs)

    monkeypatch.setattr(minari, "create_dataset_from_buffers", held_create)
    config = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=40, n_envs=1))
    outcome = {}

    def first():
        try:
            outcome["first"] = collect_minari(config, DATASET_ID, progress=False).total_steps
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["first"] = exc

    thread = threading.Thread(target=first, name="first")
    thread.start()
    try:
        assert writing.wait(60)
        with pytest.raises(ConfigError, match=f"Minari dataset '{DATASET_ID}'.* is in use by process {os.getpid()}"):
            collect_minari(config, DATASET_ID, overwrite=True, progress=False)
    finally:
        release.set()
        thread.join(60)
    assert outcome["first"] == 40 and calls == ["first"]
    assert minari.load_dataset(DATASET_ID).total_steps == 40 and dataset_path(DATASET_ID).is_dir()


def test_reading_a_dataset_while_it_is_exported_is_refused_naming_the_writer(exported, capsys):
    """``--data minari:ID`` used to read whatever an export in progress had written; now it names the writer."""
    from gmc_rl.locking import directory_lock
    from gmc_rl.minari_data import lock_directory

    with directory_lock(lock_directory(exported), "an export"):
        with pytest.raises(DatasetError, match=rf"Minari dataset '{exported}' is being written by process "
                                               rf"{os.getpid()} .*wait for the export to finish"):
            load_dataset(f"minari:{exported}")
        assert main(["pretrain", "--data", f"minari:{exported}", "--out", "unused", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gmc-rl pretrain: error: Minari dataset") and "\n" not in err
        assert "is being written by process" in err
    assert len(load_dataset(f"minari:{exported}").train) > 0  # released: it reads as before


def test_an_export_killed_before_it_finished_is_named_and_the_same_command_writes_it_again(tmp_path, monkeypatch):
    """A SIGKILL mid-export left a partial dataset that gmc-rl could neither read (a raw h5py OSError) nor replace
    ("was not written by gmc-rl"); now the export's marker tells, and the rerun replaces it."""
    minari = pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.minari_data import collect_minari, dataset_path, export_marker

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    config = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=80, n_envs=2))
    create = minari.create_dataset_from_buffers
    seen = []

    def checked_create(*args, **kwargs):
        seen.append(export_marker(DATASET_ID).is_file())  # the marker is written before Minari writes
        return create(*args, **kwargs)

    monkeypatch.setattr(minari, "create_dataset_from_buffers", checked_create)
    collect_minari(config, DATASET_ID, progress=False)
    assert seen == [True] and not export_marker(DATASET_ID).exists()
    # What a kill during Minari's write leaves: the marker and a damaged file under the id.
    export_marker(DATASET_ID).write_text("{}")
    for file in (dataset_path(DATASET_ID) / "data").iterdir():
        file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(DatasetError, match=f"'{DATASET_ID}' is incomplete: its export was interrupted .* run the "
                                           f"same `gmc-rl collect --minari {DATASET_ID}"):
        load_dataset(f"minari:{DATASET_ID}")
    assert collect_minari(config, DATASET_ID, progress=False).total_steps == 80  # the same command, no --update
    assert not export_marker(DATASET_ID).exists() and len(load_dataset(f"minari:{DATASET_ID}").train) > 0


@pytest.mark.parametrize("array", ["observations/sound", "rewards", "actions"])
def test_nan_in_a_minari_episode_is_named_by_dataset_episode_array_and_step(tmp_path, monkeypatch, array):
    """Before, NaN in a dataset written by another tool was refused with messages naming neither the dataset nor
    the episode."""
    pytest.importorskip("minari")
    h5py = pytest.importorskip("h5py")
    from gmc_rl.minari_data import collect_minari, dataset_path

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    collect_minari(ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=80, n_envs=2)),
                   DATASET_ID, progress=False)
    (data_file,) = (dataset_path(DATASET_ID) / "data").glob("*.hdf5")
    with h5py.File(data_file, "r+") as file:
        values = file[f"episode_1/{array}"]
        row = values[3]
        values[3] = np.full_like(row, np.nan) if np.ndim(row) else np.nan
    name = array.split("/")[-1]
    with pytest.raises(DatasetError, match=rf"Minari dataset '{DATASET_ID}', episode 1: '{name}' holds NaN or inf "
                                           r"\(first at step 3\)"):
        load_dataset(f"minari:{DATASET_ID}")


# ----------------------------------------------------------------------------------------------------------------
# What is at a dataset id before an export, and damaged metadata (red-team pass five).


@pytest.mark.parametrize("layout", ["empty folder", "empty data folder", "nested empty folders"])
def test_an_export_to_an_id_that_holds_only_empty_folders_writes_the_dataset(tmp_path, monkeypatch, layout):
    """Before, `collect --minari ID` over an empty folder at the id said "no Minari dataset ...; write one with
    `gmc-rl collect --minari ID`", the very command that failed."""
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.minari_data import collect_minari, dataset_path

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    inner = {"empty folder": "", "empty data folder": "data", "nested empty folders": "a/b/c"}[layout]
    (dataset_path(DATASET_ID) / inner).mkdir(parents=True)
    small = ExperimentConfig(env_id=ENV_ID, env_kwargs=ENV_KWARGS, collect=CollectConfig(steps=40, n_envs=2))
    assert collect_minari(small, DATASET_ID, progress=False).total_steps == 40


@pytest.mark.parametrize("kind", ["folder with a file", "file", "broken link", "unreadable dataset"])
def test_an_export_to_an_id_that_holds_something_else_is_refused_and_kept(tmp_path, monkeypatch, capsys, kind):
    pytest.importorskip("minari")
    pytest.importorskip("h5py")
    from gmc_rl.minari_data import dataset_path

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    path = dataset_path(DATASET_ID)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder with a file":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    elif kind == "file":
        path.write_text("mine")
    elif kind == "broken link":
        path.symlink_to(tmp_path / "nowhere")
    else:
        (path / "data").mkdir(parents=True)
        (path / "data" / "notes.txt").write_text("mine")
    before = sorted(str(p) for p in path.parent.rglob("*"))
    assert main(["collect", "--minari", DATASET_ID, "--env", ENV_ID, "--steps", "40", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "never deletes what it did not write" in err
    assert "write one with" not in err  # not the command that just failed
    assert sorted(str(p) for p in path.parent.rglob("*")) == before


@pytest.mark.parametrize("damage", [
    ({"observation_space": None, "env_spec": None}, "spaces are not recorded"),
    ({"action_space": None, "env_spec": None}, "spaces are not recorded"),
    ({"data_format": None}, "key 'data_format'"),
    ({"total_episodes": "many"}, "key 'total_episodes' must be an integer"),
    ({"observation_space": 3}, "key 'observation_space' must be"),
    ({"env_spec": ["x"], "observation_space": None}, "key 'env_spec' must be"),
])
def test_damaged_minari_metadata_is_named_by_file_and_key(exported, tmp_path, monkeypatch, damage):
    """Before, metadata.json without its spaces was refused as "cannot read Minari dataset ...: " with no reason
    (Minari's bare assert)."""
    import shutil

    from gmc_rl.minari_data import dataset_path

    edits, says = damage
    copy_id = "gmc_rl/damaged-v0"
    shutil.copytree(dataset_path(exported), dataset_path(copy_id))
    file = dataset_path(copy_id) / "data" / "metadata.json"
    metadata = json.loads(file.read_text())
    metadata["dataset_id"] = copy_id
    for key, value in edits.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    file.write_text(json.dumps(metadata))
    try:
        with pytest.raises(DatasetError, match=says) as caught:
            load_dataset(f"minari:{copy_id}")
        assert str(file) in str(caught.value)
    finally:
        shutil.rmtree(dataset_path(copy_id))


def test_an_error_minari_raises_without_a_message_is_still_named(exported, monkeypatch):
    import minari

    def bare_assert(dataset_id):
        raise AssertionError

    monkeypatch.setattr(minari, "load_dataset", bare_assert)
    with pytest.raises(DatasetError, match=r"cannot read Minari dataset .*: AssertionError with no message"):
        load_dataset(f"minari:{exported}")


def _copy_of_exported(exported, copy_id):
    """A copy of the exported dataset under ``copy_id``; its data/ folder."""
    import shutil

    from gmc_rl.minari_data import dataset_path

    shutil.copytree(dataset_path(exported), dataset_path(copy_id))
    file = dataset_path(copy_id) / "data" / "metadata.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "dataset_id": copy_id}))
    return dataset_path(copy_id) / "data"


@pytest.mark.parametrize("edit", [("total_episodes", 9, 8), ("total_episodes", 4, 8), ("total_steps", 299, 300)])
def test_minari_metadata_counts_that_disagree_with_the_data_file_are_refused(exported, edit):
    """Before, total_episodes above the episodes stored failed in h5py ("object 'episode_8' doesn't exist") and
    below them loaded the first episodes only, silently."""
    import shutil

    key, written, stored = edit
    copy_id = "gmc_rl/miscounted-v0"
    data = _copy_of_exported(exported, copy_id)
    metadata = json.loads((data / "metadata.json").read_text())
    (data / "metadata.json").write_text(json.dumps({**metadata, key: written}))
    try:
        with pytest.raises(DatasetError) as caught:
            load_dataset(f"minari:{copy_id}")
        message = str(caught.value)
        assert f"{data / 'metadata.json'} says {key} {written}," in message and str(data / "main_data.hdf5") in message
        assert f"holds {stored} episodes" in message if key == "total_episodes" else f"hold {stored} steps" in message
    finally:
        shutil.rmtree(data.parent)


@pytest.mark.parametrize("size", [0, 5000])
def test_a_truncated_minari_data_file_is_named_by_dataset_and_file(exported, size, capsys):
    """Before, h5py's text alone ("Unable to synchronously open file (truncated file ...)"); the same export
    command kept the damaged dataset ("already holds this collection")."""
    import shutil

    copy_id = "gmc_rl/truncated-v0"
    data = _copy_of_exported(exported, copy_id)
    file = data / "main_data.hdf5"
    with open(file, "r+b") as handle:
        handle.truncate(size)
    export = ["collect", "--minari", copy_id, "--env", ENV_ID, "--env-kwargs", json.dumps(ENV_KWARGS),
              "--steps", "300", "--n-envs", "4", "--seed", "3", "--quiet"]
    try:
        with pytest.raises(DatasetError, match=r"damaged or truncated") as caught:
            load_dataset(f"minari:{copy_id}")
        assert copy_id in str(caught.value) and str(file) in str(caught.value)
        assert f"gmc-rl collect --minari {copy_id} --update" in str(caught.value)
        assert main(export) == 2 and str(file) in capsys.readouterr().err
        assert file.stat().st_size == size
        assert main([*export, "--update"]) == 0  # the advice works
        assert load_dataset(f"minari:{copy_id}").metadata["n_train"] > 0
    finally:
        shutil.rmtree(data.parent)
