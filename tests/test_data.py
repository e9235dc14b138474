"""Dataset collection and loading: layout, split, determinism, existing outputs and clear errors."""

import json
import zipfile

import numpy as np
import pytest
from helpers import TINY3_ID, TINY_ID

from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig
from gmc_rl.data import load_dataset, load_npz, normalization_stats, save_npz
from gmc_rl.errors import ConfigError, DatasetError, ModalityError
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE


def tiny_config(env_id=TINY_ID, **collect):
    settings = {"steps": 60, "n_envs": 3, "val_fraction": 0.2, "seed": 5, **collect}
    return ExperimentConfig(env_id=env_id, collect=CollectConfig(**settings))


def test_collect_writes_a_consistent_dataset(tmp_path):
    path = collect(tiny_config(), tmp_path / "data", progress=False)
    assert sorted(p.name for p in path.iterdir() if p.name not in (LOCK_FILE, HOLDER_FILE)) == [
        "metadata.json", "train.npz", "val.npz"]
    data = load_dataset(path)
    meta = data.metadata
    assert meta["env_id"] == TINY_ID and meta["seed"] == 5 and meta["steps"] == 60 and meta["n_envs"] == 3
    assert meta["gmc_rl_version"]
    assert [s["name"] for s in meta["spaces"]["observation"]] == ["image", "vec"]
    assert meta["spaces"]["action"]["type"] == "Box"
    assert data.modalities == ["image", "vec"]
    n_train, n_val = len(data.train["rewards"]), len(data.val["rewards"])
    assert n_train + n_val == 60 and n_train == meta["n_train"]
    assert 6 <= n_val <= 18  # near 20 %, moved to an episode boundary
    assert data.train["image"].dtype == np.uint8 and data.train["image"].shape == (n_train, 1, 8, 8)
    assert data.train["vec"].dtype == np.float32 and data.train["actions"].shape == (n_train, 1)
    assert data.train["terminated"].dtype == bool
    assert not any(key.startswith("next") for key in data.train)
    # normalisation statistics are those of the training split, for vector modalities only
    assert set(meta["normalization"]) == {"vec"}
    assert np.allclose(meta["normalization"]["vec"]["mean"], data.train["vec"].astype(np.float64).mean(0))
    assert data.nbytes == sum(a.nbytes for split in (data.train, data.val) for a in split.values())


def test_rows_follow_each_other_within_episodes(tmp_path):
    data = load_dataset(collect(tiny_config(), tmp_path / "data", progress=False))
    for split in (data.train, data.val):
        counter = split["vec"][:, 2]
        done = split["terminated"] | split["truncated"]
        assert done[-1]  # every split ends at an episode end or at a collection cut
        following = ~done[:-1]
        assert np.array_equal(counter[1:][following], counter[:-1][following] + 1)
        # after an episode end a new episode starts at step 0
        assert np.all(counter[1:][done[:-1]] == 0)
    # the validation split starts a fresh episode (episodes are not split)
    assert data.val["vec"][0, 2] == 0
    # truncations come from the TimeLimit (7 steps) or from the collection cut at each env's end
    lengths = data.train["vec"][:, 2][data.train["truncated"]]
    assert np.all(lengths <= 6)


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = collect(tiny_config(), tmp_path / "a", progress=False)
    second = collect(tiny_config(), tmp_path / "b", progress=False)
    for name in ("train.npz", "val.npz", "metadata.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    other = collect(tiny_config(seed=6), tmp_path / "c", progress=False)
    assert (other / "train.npz").read_bytes() != (first / "train.npz").read_bytes()


def test_three_modalities_and_uneven_env_split(tmp_path):
    data = load_dataset(collect(tiny_config(TINY3_ID, steps=31, n_envs=4), tmp_path / "d", progress=False))
    assert data.modalities == ["extra", "image", "vec"]  # gymnasium sorts Dict keys
    assert len(data) == 31
    assert set(data.normalization) == {"vec", "extra"}


def test_existing_output_is_kept_refused_or_overwritten(tmp_path):
    out = collect(tiny_config(), tmp_path / "data", progress=False)
    stamp = (out / "train.npz").stat().st_mtime_ns
    assert collect(tiny_config(), out, progress=False) == out  # same settings: kept as is
    assert (out / "train.npz").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match=r"collect.*steps.*overwrite"):
        collect(tiny_config(steps=40), out, progress=False)
    collect(tiny_config(steps=40), out, overwrite=True, progress=False)
    assert len(load_dataset(out)) == 40


def test_unknown_env_id_lists_registered_ids():
    with pytest.raises(ConfigError) as info:
        collect(tiny_config("gmc_rl/PendulumSond-v0"), "/nonexistent/never-written", progress=False)
    message = str(info.value)
    assert "gmc_rl/PendulumSound-v0" in message and "Did you mean" in message


def test_env_without_dict_observations_is_refused(tmp_path):
    with pytest.raises(ModalityError, match="Dict"):
        collect(ExperimentConfig(env_id="CartPole-v1", collect=CollectConfig(steps=10, n_envs=1)), tmp_path / "x",
                progress=False)


def test_sb3_policy_zip_as_behaviour_policy(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import PPO

    # SB3's default CNN needs images of at least 36 x 36
    model = PPO("MultiInputPolicy", gym.make(TINY_ID, size=36), n_steps=16, batch_size=16, seed=0, device="cpu")
    model.save(tmp_path / "ppo.zip")
    config = tiny_config(policy=str(tmp_path / "ppo.zip"))
    config.env_kwargs = {"size": 36}
    data = load_dataset(collect(config, tmp_path / "p", progress=False))
    assert data.metadata["policy"].endswith("ppo.zip")
    assert np.all(np.abs(data.train["actions"]) <= 1.0 + 1e-6)
    with pytest.raises(ConfigError, match="policy file not found: "):
        collect(tiny_config(policy="missing.zip"), tmp_path / "q", progress=False)
    with pytest.raises(ConfigError, match="trained on observations"):
        collect(tiny_config(TINY3_ID, policy=str(tmp_path / "ppo.zip")), tmp_path / "r", progress=False)


def test_loading_reports_missing_and_corrupted_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="metadata.json is missing"):
        load_dataset(tmp_path / "empty")
    out = collect(tiny_config(), tmp_path / "data", progress=False)
    train = out / "train.npz"
    good = train.read_bytes()
    train.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="train.npz"):
        load_dataset(out)
    train.write_bytes(good)
    meta = json.loads((out / "metadata.json").read_text())
    meta["arrays"]["vec"]["shape"] = [4]
    (out / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="'vec'"):
        load_dataset(out)
    meta["arrays"]["vec"]["shape"] = [3]
    meta["arrays"]["lidar"] = {"shape": [2], "dtype": "float32"}
    (out / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="lidar"):
        load_dataset(out)
    (out / "metadata.json").write_text("{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset(out)


def test_npz_files_are_standard_and_refuse_pickles(tmp_path):
    path = save_npz(tmp_path / "a.npz", {"x": np.arange(5, dtype=np.int16), "y": np.ones((2, 3), np.float32)})
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["x", "y"]
        assert archive["x"].dtype == np.int16
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zipfile.ZipFile(path).infolist())
    with pytest.raises(DatasetError, match="object"):
        save_npz(tmp_path / "b.npz", {"x": np.array([{"a": 1}], dtype=object)})
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as archive:
        archive.write(tmp_path / "obj.npy", "x.npy")
    with pytest.raises(DatasetError, match="c.npz"):
        load_npz(tmp_path / "c.npz")


def test_normalization_stats_skip_images():
    from gmc_rl.modalities import ModalitySpec

    specs = {"img": ModalitySpec("img", (1, 2, 2), "uint8", "image", 0, 255),
             "v": ModalitySpec("v", (2,), "float32", "vector", -1, 1)}
    stats = normalization_stats({"img": np.zeros((3, 1, 2, 2), np.uint8),
                                 "v": np.array([[0, 1], [2, 1], [4, 1]], np.float32)}, specs)
    assert stats == {"v": {"mean": [2.0, 1.0], "std": [pytest.approx(np.std([0, 2, 4])), 0.0]}}


def test_datasets_collected_before_the_metadata_was_hashed_still_load(tmp_path):
    from gmc_rl.data import DIGEST_KEY, FORMAT_VERSION

    out = collect(tiny_config(steps=40), tmp_path / "data", progress=False)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["format_version"] == FORMAT_VERSION == 2 and DIGEST_KEY in metadata
    del metadata[DIGEST_KEY]
    (out / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="lacks the required key 'metadata_sha256'"):
        load_dataset(out)  # a version-2 dataset must carry its digest
    metadata["format_version"] = 1  # what gmc-rl wrote before the digest existed
    (out / "metadata.json").write_text(json.dumps(metadata))
    assert len(load_dataset(out)) == 40
    del metadata["files"]
    (out / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(DatasetError, match="lacks the required key 'files'"):
        load_dataset(out)  # but never without the archives' hashes


def test_the_directory_loader_names_the_loader_of_a_minari_source():
    with pytest.raises(DatasetError, match="gmc_rl.dataset_sources.load_dataset"):
        load_dataset("minari:gmc_rl/some-dataset-v0")
