"""Property-based fuzzing of what gmc-rl reads (Hypothesis): generated and mutated inputs give a gmc-rl error
(``GMCError``: ConfigError, DatasetError, CheckpointError, ModalityError, SensorValueError) or a correct result,
never another exception, a hang or a silent wrong value.

Inputs: config YAML files, dataset directories (metadata.json and the npz arrays), GMC checkpoints (config.json and
model.safetensors), agent descriptions (agent.json), pretraining run files (run.json), stage markers, the arrays
given to ``GMCModel.encode`` and the observations given to ``Agent.predict``. Valid files are mutated as a damaged
or edited file would be: truncated, bytes flipped, bytes inserted, replaced by arbitrary bytes; JSON files also by
replacing or deleting one value anywhere in them. Each property runs a small example budget in the default suite and
2,000 examples per property in the slow suite (``-m slow``; 8 properties, 16,000 inputs).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import PAIR_ID, SMALL_MODEL, pair_config, tiny_pendulum_experiment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gmc_rl.agents import train_agent
from gmc_rl.agents.agent_dir import read_agent_json
from gmc_rl.checkpoint import load_gmc, save_gmc
from gmc_rl.collect import collect
from gmc_rl.config import ExperimentConfig, load_config
from gmc_rl.data import load_dataset
from gmc_rl.errors import GMCError
from gmc_rl.model import GMCModel
from gmc_rl.pretraining_run import check_pretraining_dir, pretraining_identity
from gmc_rl.stages import Stage

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = [pytest.param(25, id="fast"), pytest.param(2000, id="slow", marks=pytest.mark.slow)]
SETTINGS = {"deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def byte_mutation(draw: Any, data: bytes) -> bytes:
    """``data`` damaged once: truncated, one byte flipped, bytes inserted, or replaced by arbitrary bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "replace"]))
    position = draw(st.integers(0, max(len(data) - 1, 0)))
    if kind == "truncate":
        return data[:position]
    if kind == "flip":
        return data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1:]
    if kind == "insert":
        return data[:position] + draw(st.binary(min_size=1, max_size=16)) + data[position:]
    return draw(st.binary(max_size=256))


def json_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys and indices) to a value inside a JSON document."""
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:8]):
            paths += json_paths(item, (*prefix, index))
    return paths


@st.composite
def json_mutation(draw: Any, document: Any) -> bytes:
    """``document`` with one value anywhere replaced by an arbitrary JSON value or deleted, as text."""
    document = json.loads(json.dumps(document))
    path = draw(st.sampled_from([p for p in json_paths(document) if p]))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(JSON_VALUES)
    else:
        del parent[path[-1]]
    return json.dumps(document).encode()


def mutation_of(file: Path) -> st.SearchStrategy[bytes]:
    """A damaged or edited copy of ``file``: any byte mutation, and for a JSON file any value mutation too."""
    data = file.read_bytes()
    if file.suffix == ".json":
        return st.one_of(byte_mutation(data), json_mutation(json.loads(data)))
    return byte_mutation(data)


def damaged_copy(source: Path, target: Path, name: str, content: bytes) -> Path:
    """A fresh copy of the directory ``source`` at ``target`` with its file ``name`` replaced by ``content``."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    (target / name).write_bytes(content)
    return target


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """One valid instance of every input: a dataset, a GMC checkpoint, an agent, a pretraining run, a stage."""
    root = tmp_path_factory.mktemp("fuzz")
    torch.manual_seed(0)
    dataset = collect(pair_config(), root / "data", progress=False)
    model = GMCModel.from_space(gym.make(PAIR_ID).observation_space, SMALL_MODEL)
    checkpoint = save_gmc(model, root / "gmc", {"env_id": PAIR_ID})
    config = tiny_pendulum_experiment(total=40)
    agent = train_agent(config, "state", 0, root / "agent", progress_bar=False)
    stage = Stage(root / "run", "collect", root / "run" / "data", {"x": 1})
    stage.output.mkdir(parents=True)
    stage.begin()
    stage.finish(1.0)
    run = root / "pretrain_run"
    run.mkdir()
    identity = pretraining_identity(pair_config(), load_dataset(dataset), "gmc")
    (run / "run.json").write_text(json.dumps({"identity": identity, "experiment": {}, "data_dir": str(dataset)}))
    (run / "model.safetensors").write_bytes(b"")  # has_weights: the run saved something
    (run / "config.json").write_text("{}")
    return {"root": root, "dataset": dataset, "checkpoint": checkpoint, "agent": agent, "stage_run": root / "run",
            "pretrain_run": run, "identity": identity}  # type: ignore[dict-item]


def gmc_error_or_result(call: Any) -> Any:
    """``call()``'s result, or None if it raised a gmc-rl error; any other exception fails the test."""
    try:
        return call()
    except GMCError:
        return None


@pytest.mark.parametrize("budget", BUDGETS)
def test_config_files(budget, tmp_path):
    valid = (ROOT / "experiments" / "quick.yaml").read_bytes()
    file = tmp_path / "config.yaml"

    @settings(max_examples=budget, **SETTINGS)
    @given(st.one_of(byte_mutation(valid), st.text(max_size=200).map(str.encode), st.binary(max_size=200)))
    def check(content: bytes) -> None:
        file.write_bytes(content)
        config = gmc_error_or_result(lambda: load_config(file))
        assert config is None or isinstance(config, ExperimentConfig)

    check()


@pytest.mark.parametrize("name", ["metadata.json", "train.npz", "val.npz"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_dataset_directories(budget, name, made, tmp_path):
    source = made["dataset"]
    valid = load_dataset(source)

    @settings(max_examples=max(budget // 3, 10), **SETTINGS)
    @given(mutation_of(source / name))
    def check(content: bytes) -> None:
        loaded = gmc_error_or_result(lambda: load_dataset(damaged_copy(source, tmp_path / "d", name, content)))
        if loaded is not None:  # a change that keeps the file valid must keep its data (e.g. JSON key order)
            for split in ("train", "val"):
                for key, array in valid.observations(split).items():
                    np.testing.assert_array_equal(loaded.observations(split)[key], array)

    check()


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_gmc_checkpoints(budget, name, made, tmp_path):
    source = made["checkpoint"]
    reference = load_gmc(source).state_dict()

    @settings(max_examples=max(budget // 2, 10), **SETTINGS)
    @given(mutation_of(source / name))
    def check(content: bytes) -> None:
        model = gmc_error_or_result(lambda: load_gmc(damaged_copy(source, tmp_path / "c", name, content)))
        if model is not None:  # loaded: then with exactly the saved weights
            for key, tensor in model.state_dict().items():
                assert torch.equal(tensor, reference[key]), key

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_agent_descriptions(budget, made, tmp_path):
    source = made["agent"]

    @settings(max_examples=budget, **SETTINGS)
    @given(mutation_of(source / "agent.json"))
    def check(content: bytes) -> None:
        info = gmc_error_or_result(lambda: read_agent_json(damaged_copy(source, tmp_path / "a", "agent.json",
                                                                        content)))
        assert info is None or isinstance(info, dict) and isinstance(info["config"], dict)

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_pretraining_run_files(budget, made, tmp_path):
    source, identity = made["pretrain_run"], made["identity"]

    @settings(max_examples=budget, **SETTINGS)
    @given(mutation_of(source / "run.json"))
    def check(content: bytes) -> None:
        directory = damaged_copy(source, tmp_path / "r", "run.json", content)
        state = gmc_error_or_result(lambda: check_pretraining_dir(directory, identity, resume=True, epochs=1))
        assert state is None  # no trainer state in it: nothing to resume, or refused

    check()


@pytest.mark.parametrize("budget", BUDGETS)
def test_stage_markers(budget, made, tmp_path):
    run = made["stage_run"]
    marker = run / "stages" / "collect.json"

    @settings(max_examples=budget, **SETTINGS)
    @given(mutation_of(marker))
    def check(content: bytes) -> None:
        copy = damaged_copy(run, tmp_path / "s", "stages/collect.json", content)
        stage = Stage(copy, "collect", copy / "data", {"x": 1})
        done = stage.is_done()  # a damaged marker means "not done" (the stage runs again); never an exception
        if done:  # only a marker that still says done, for this stage, hash and output
            data = json.loads(content)
            assert data["status"] == "done" and data["hash"] == stage.hash

    check()


ARRAY_DTYPES = st.sampled_from([np.uint8, np.int8, np.int64, np.float16, np.float32, np.float64, np.bool_])


@st.composite
def observation_batch(draw: Any, space: gym.spaces.Dict) -> dict[str, np.ndarray]:
    """A batch for ``space``'s modalities: any dtype, the right shape or one off, values anywhere."""
    batch = {}
    size = draw(st.integers(1, 3))
    for name, sub in space.spaces.items():
        shape = list(sub.shape)
        if draw(st.integers(0, 4)) == 0:
            axis = draw(st.integers(0, len(shape) - 1))
            shape[axis] = max(shape[axis] + draw(st.sampled_from([-1, 1])), 0)
        dtype = draw(ARRAY_DTYPES)
        fill = draw(st.sampled_from(["valid", "nan", "inf", "huge", "negative"]))
        array = np.asarray(sub.sample(), dtype=np.float64)[None].repeat(size, 0) if list(sub.shape) == shape \
            else np.zeros((size, *shape))
        if fill == "nan":
            array = np.full_like(array, math.nan)
        elif fill == "inf":
            array = np.full_like(array, math.inf)
        elif fill == "huge":
            array = np.full_like(array, 1e30)
        elif fill == "negative":
            array = -np.abs(array) - 1
        with np.errstate(invalid="ignore", over="ignore"):
            batch[name] = array.astype(dtype)
    return batch


@pytest.mark.parametrize("budget", BUDGETS)
def test_encode_inputs(budget, made):
    model = load_gmc(made["checkpoint"])
    space = gym.make(PAIR_ID).observation_space

    @settings(max_examples=budget, **SETTINGS)
    @given(observation_batch(space))
    def check(batch: dict[str, np.ndarray]) -> None:
        latent = gmc_error_or_result(lambda: model.encode(batch))
        if latent is not None:  # accepted: only arrays the space allows, and then a finite unit latent per row
            for name, array in batch.items():
                sub = space[name]
                assert array.shape[1:] == sub.shape and np.isfinite(array.astype(np.float64)).all(), name
                assert array.dtype == sub.dtype or np.issubdtype(sub.dtype, np.floating) and \
                    np.issubdtype(array.dtype, np.floating), (name, array.dtype)
            assert latent.shape == (len(next(iter(batch.values()))), model.latent_dim)
            assert torch.isfinite(latent).all()

    check()


POLICY_SPACES = [
    gym.spaces.Box(-1.0, 1.0, (4,), np.float32),  # a GMC latent
    gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),  # an unbounded state or MVAE latent
    gym.spaces.Box(0, 255, (2, 3), np.uint8),  # an image a raw agent's CNN reads
]


@st.composite
def policy_observation(draw: Any) -> tuple[gym.spaces.Box, Any]:
    """A space of :data:`POLICY_SPACES` and an observation for it: any dtype, one observation or a batch, the right
    shape or one off, values anywhere, sometimes a masked array or a dict of sensors."""
    space = draw(st.sampled_from(POLICY_SPACES))
    shape = list(space.shape)
    if draw(st.integers(0, 4)) == 0:
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] += draw(st.sampled_from([-1, 1]))
    if draw(st.booleans()):
        shape = [draw(st.integers(1, 3)), *shape]
    values = draw(st.sampled_from(["inside", "edge", "nan", "inf", "huge", "below", "fraction"]))
    low = np.broadcast_to(np.nan_to_num(space.low, posinf=1e3, neginf=-1e3).astype(np.float64), space.shape)
    high = np.broadcast_to(np.nan_to_num(space.high, posinf=1e3, neginf=-1e3).astype(np.float64), space.shape)
    middle = (low + high) / 2 if list(space.shape) == shape[-len(space.shape):] else np.zeros(shape[-len(space.shape):])
    array = np.broadcast_to(middle, shape).copy()
    fills = {"nan": math.nan, "inf": math.inf, "huge": 1e30, "below": -1e3 - 5.0, "fraction": 0.5}
    if values == "edge":
        array = np.broadcast_to(high if high.shape == array.shape[-len(high.shape):] else 0.0, shape).copy()
    elif values in fills:
        array.flat[draw(st.integers(0, array.size - 1))] = fills[values]
    with np.errstate(invalid="ignore", over="ignore"):
        observation: Any = array.astype(draw(ARRAY_DTYPES))
    wrapper = draw(st.sampled_from(["array", "array", "tensor", "masked", "dict"]))
    if wrapper == "tensor":
        observation = torch.from_numpy(observation)
    elif wrapper == "masked":
        observation = np.ma.masked_array(observation, mask=np.zeros(observation.shape, bool))
    elif wrapper == "dict":
        observation = {"sensor": observation}
    return space, observation


@pytest.mark.parametrize("budget", BUDGETS)
def test_policy_observations(budget):
    """``Agent.predict``'s check: an observation is accepted only if it is in the space's class (an array, not a
    masked one or a dict; a dtype the space holds; its shape, one or a batch; finite; within the bounds)."""
    from gmc_rl.agents.loading import check_policy_observation

    @settings(max_examples=budget, **SETTINGS)
    @given(policy_observation())
    def check(case: tuple[gym.spaces.Box, Any]) -> None:
        space, observation = case
        accepted = gmc_error_or_result(lambda: check_policy_observation(observation, space) is not None)
        if accepted:
            assert isinstance(observation, (np.ndarray, torch.Tensor)) and not np.ma.isMaskedArray(observation)
            value = np.asarray(observation)
            assert value.shape in (space.shape, value.shape[:1] + space.shape), value.shape
            if np.issubdtype(space.dtype, np.integer):
                assert np.issubdtype(value.dtype, np.integer) and value.dtype != np.bool_, value.dtype
            else:
                assert value.dtype != np.bool_
            as_float = value.astype(np.float64)
            assert np.isfinite(as_float).all()
            assert (as_float >= space.low - 1e-3).all() and (as_float <= space.high + 1e-3).all()

    check()
