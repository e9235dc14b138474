"""gmc_rl.methods: the representation-method registry, its built-in entries, and a new method added in one place.

The toy method below is everything a new method needs: an encoder (a fixed random linear projection of the
flattened vector modalities and the downscaled image), its "pretraining" (writing config.json + weights), a
weights-only loader, a space check and a batched VecEnv wrapper, plus one ``register_method`` call. It then runs
through the pipeline, ``gmc-rl train`` and the transfer diagnostics without any other change.
"""

from __future__ import annotations

import ast
import json
import math
import pickle
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import tiny_config
from safetensors.torch import load_file, save_file
from stable_baselines3.common.vec_env import VecEnv

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.config import ExperimentConfig, config_hash, to_dict
from gmc_rl.data import finite_json, load_dataset
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.methods import (
    EncoderStage,
    Lazy,
    RepresentationMethod,
    encoder_method_names,
    get_method,
    method_names,
    register_method,
    unregister_method,
)
from gmc_rl.modalities import ModalitySpec, compare_specs, modality_specs
from gmc_rl.wrappers.vec_latent import VecEncodedLatent

ROOT = Path(__file__).resolve().parents[1]
ENV = "gmc_rl/PendulumSound-v0"
IMAGE_STRIDE = 8


# ---------------------------------------------------------------------------------------------------------------
# Registry and built-in entries.


def test_get_method_names_the_valid_ones_and_suggests():
    with pytest.raises(ConfigError, match=r"unknown method 'mvea'; valid: \['gmc', 'raw', 'mvae', 'state', 'muse'\]\. "
                                          r"Did you mean 'mvae'\?"):
        get_method("mvea")
    with pytest.raises(ConfigError, match="unknown method 3"):
        get_method(3)
    with pytest.raises(ConfigError, match="config key 'methods': unknown method 'gcm'.*Did you mean 'gmc'"):
        ExperimentConfig(methods=["gcm"])
    assert method_names() == ["gmc", "raw", "mvae", "state", "muse"]
    assert encoder_method_names() == ["gmc", "mvae", "muse"]


def test_builtin_entries():
    from gmc_rl.checkpoint import check_space_matches, load_gmc
    from gmc_rl.mvae import VecMVAELatent, load_mvae, pretrain_mvae
    from gmc_rl.pretrain import pretrain
    from gmc_rl.wrappers import StateObservation, VecGMCLatent

    def resolve(target: Lazy) -> Any:
        module, _, attribute = target.target.partition(":")
        return getattr(import_module(module), attribute)

    gmc, raw, mvae, state = (get_method(name) for name in ("gmc", "raw", "mvae", "state"))
    assert gmc.needs_encoder and gmc.expose_mask and gmc.encoder_flag == "--gmc"
    assert [resolve(f) for f in (gmc.pretrain, gmc.load, gmc.check_space, gmc.wrap_vec_env)] == \
        [pretrain, load_gmc, check_space_matches, VecGMCLatent]
    assert gmc.encoder_stage == EncoderStage("pretrain", "gmc", "pretrain GMC", {})
    assert mvae.needs_encoder and mvae.expose_mask and mvae.encoder_flag == "--mvae"
    assert [resolve(f) for f in (mvae.pretrain, mvae.load, mvae.wrap_vec_env)] == \
        [pretrain_mvae, load_mvae, VecMVAELatent]
    assert mvae.encoder_stage == EncoderStage("mvae", "mvae", "pretrain MVAE", {"model": "mvae"})
    assert not raw.needs_encoder and raw.wrap_env is None and raw.wrap_vec_env is None and not raw.expose_mask
    assert not state.needs_encoder and resolve(state.wrap_env) is StateObservation
    # the lazy references pickle, so pipeline workers (jobs > 1) receive them
    assert pickle.loads(pickle.dumps(gmc.pretrain)) == gmc.pretrain


def test_builtin_encoder_stages_keep_their_names_outputs_and_hashes(tmp_path):
    """Existing run directories stay finished: the stage identity of gmc and mvae is that of before the registry."""
    from gmc_rl.pipeline import _plan

    config = tiny_config(ENV, ["mvae", "state", "gmc"])
    tasks, _, _ = _plan(config, tmp_path, ["complete", "image"])
    stages = {task.stage.name: task for task in tasks}
    data = stages["collect"].stage
    # the pretrain section before pretrain.muse and the optional loss terms (all left out at their defaults)
    before_muse = {key: value for key, value in to_dict(config.pretrain).items()
                   if key not in ("muse", "temporal_weight", "frame_order_weight",
                                  "modality_fit_epochs")}
    base = {"data": data.hash, "pretrain": before_muse}
    gmc, mvae = stages["pretrain"], stages["mvae"]
    assert [t.stage.name for t in tasks[:3]] == ["collect", "pretrain", "mvae"]  # registry order, as before
    # GMC's identity holds the modality fit, on by default since it was added (MVAE ignores the key)
    fitted = {**base, "pretrain": {**before_muse, "modality_fit_epochs": config.pretrain.modality_fit_epochs}}
    assert config.pretrain.modality_fit_epochs > 0
    assert (gmc.stage.output, gmc.label, gmc.stage.hash) == (tmp_path / "gmc", "pretrain GMC", config_hash(fitted))
    assert (mvae.stage.output, mvae.label, mvae.stage.hash) == \
        (tmp_path / "mvae", "pretrain MVAE", config_hash({**base, "model": "mvae"}))
    assert stages["train_gmc-seed0"].after == ("pretrain",) and stages["train_state-seed0"].after == ()
    for task in tasks:
        pickle.dumps(task.work)  # every stage's work can be sent to a worker process
    # every method with an encoder gets transfer diagnostics (the last argument of its evaluation), the others none
    diagnostics_arg = 7  # _evaluate(run_dir, agent, out, conditions, episodes, seed, n_envs, diagnostics, ...)
    diagnosed = [name for name, task in stages.items()
                 if name.startswith("evaluate_") and task.work.args[diagnostics_arg]]
    assert diagnosed == ["evaluate_mvae-seed0", "evaluate_gmc-seed0"]


def test_method_definitions_are_checked():
    with pytest.raises(ConfigError, match="lower-case"):
        RepresentationMethod("My Method", "x")
    with pytest.raises(ConfigError, match="both pretrain and load"):
        RepresentationMethod("half", "x", pretrain=toy_pretrain)
    with pytest.raises(ConfigError, match=r"no encoder.*\['check_space'\]"):
        RepresentationMethod("plain", "x", check_space=toy_check_space)
    with pytest.raises(ConfigError, match="registered already"):
        register_method(RepresentationMethod("raw", "again"))
    with pytest.raises(ConfigError, match="unknown method 'nothing'"):
        unregister_method("nothing")
    default = RepresentationMethod("other", "x", pretrain=toy_pretrain, load=toy_load)
    assert default.encoder_stage == EncoderStage("pretrain_other", "other", "pretrain other", {"method": "other"})
    assert default.encoder_flag == "--encoder"


def test_methods_module_is_import_light():
    """Neither torch nor SB3 load with the registry (Gymnasium does: ``import gmc_rl`` registers the env ids)."""
    code = ("import sys, gmc_rl.config, gmc_rl.methods; "
            "print(sorted(m for m in ('torch', 'stable_baselines3', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_core_does_not_import_agents_envs_or_orchestration():
    """Layering: envs <- gmc_rl core <- agents <- orchestration (pipeline with run_dir, run_merge and
    agent_evaluation, backends, stages, ray_backend, cli, commands, zoo).

    The core knows the built-in envs only through Gymnasium's registry (``import gmc_rl`` registers them). The same
    rule, with indirect imports, is an import-linter contract (``lint-imports`` in .ci/run); this test needs nothing
    but the sources. ``gmc_rl/__init__.py`` (the registration) and ``__main__.py`` are not core modules.
    """
    orchestration = {"pipeline.py", "run_dir.py", "run_merge.py", "agent_evaluation.py", "backends.py", "stages.py",
                     "ray_backend.py", "cli.py", "zoo.py", "__main__.py", "__init__.py"}
    above = ("gmc_rl.agents", "gmc_rl.envs", "gmc_rl.pipeline", "gmc_rl.run_dir", "gmc_rl.run_merge",
             "gmc_rl.agent_evaluation", "gmc_rl.backends", "gmc_rl.stages",
             "gmc_rl.ray_backend", "gmc_rl.cli", "gmc_rl.commands", "gmc_rl.zoo",
             "gmc_rl.experiments", "agents", "envs", "experiments")
    offenders = []
    for path in sorted((ROOT / "gmc_rl").rglob("*.py")):
        relative = path.relative_to(ROOT / "gmc_rl")
        if relative.parts[0] == "commands" or str(relative) in orchestration:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if isinstance(node, ast.ImportFrom) and node.module == "gmc_rl":  # from gmc_rl import envs
                names += [f"gmc_rl.{a.name}" for a in node.names]
            offenders += [f"{relative}: {name}" for name in names
                          if any(name == top or name.startswith(f"{top}.") for top in above)]
    assert not offenders


def test_mvae_is_an_encoder():
    from gmc_rl.config import ModelConfig
    from gmc_rl.mvae import MVAEModel

    space = spaces.Dict({"image": spaces.Box(0, 255, (2, 16, 16), np.uint8),
                         "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    model = MVAEModel.from_space(space, ModelConfig(latent_dim=4))
    obs = {name: np.stack([space[name].sample() for _ in range(3)]) for name in ("image", "sound")}
    with torch.no_grad():
        mean, _ = model.posterior(obs, ["sound"])
        assert model.encode(obs, ["sound"]).shape == (3, model.latent_dim) == (3, 4)
        assert torch.equal(model.encode(obs, ["sound"]), mean)
        assert torch.equal(model.encode(obs), model.posterior(obs)[0])


# ---------------------------------------------------------------------------------------------------------------
# The toy method: one module's worth of functions ...


def _features(spec: ModalitySpec, values: Any) -> torch.Tensor:
    """Flattened float features of one modality: vectors as they are, images scaled to [0, 1] and downscaled."""
    x = torch.as_tensor(np.asarray(values), dtype=torch.float32)
    if spec.kind == "image":
        x = x[..., ::IMAGE_STRIDE, ::IMAGE_STRIDE] / 255.0
    return x.reshape(len(x), -1)


class ToyEncoder:
    """A fixed random projection of the concatenated features; absent modalities contribute zeros."""

    def __init__(self, specs: Mapping[str, ModalitySpec], projection: torch.Tensor) -> None:
        self.specs = dict(specs)
        self.modalities = list(specs)
        self.projection = projection
        self.latent_dim = int(projection.shape[0])
        self.sizes = {name: _features(spec, np.zeros((1, *spec.shape))).shape[1] for name, spec in specs.items()}

    def encode(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> torch.Tensor:
        present = self.modalities if modalities is None else list(modalities)
        batch = len(np.asarray(obs[present[0]]))
        parts = [_features(self.specs[name], obs[name]) if name in present else torch.zeros(batch, self.sizes[name])
                 for name in self.modalities]
        return torch.cat(parts, dim=1) @ self.projection.T


def toy_pretrain(config: ExperimentConfig, data_dir: Path, out_dir: Path, *, resume: bool, progress: bool) -> Path:
    dataset = load_dataset(data_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = sum(ToyEncoder(dataset.specs, torch.zeros(1, 1)).sizes.values())
    generator = torch.Generator().manual_seed(config.pretrain.seed)
    projection = torch.randn(config.pretrain.model.latent_dim, size, generator=generator) / math.sqrt(size)
    save_file({"projection": projection}, str(out_dir / "model.safetensors"))
    specs = [finite_json(spec.to_json()) for spec in dataset.specs.values()]
    (out_dir / "config.json").write_text(json.dumps({"specs": specs}))
    return out_dir


def toy_load(path: Path, device: str = "cpu") -> ToyEncoder:
    config = json.loads((Path(path) / "config.json").read_text())
    specs = {spec["name"]: ModalitySpec.from_json(spec) for spec in config["specs"]}
    return ToyEncoder(specs, load_file(str(Path(path) / "model.safetensors"), device=device)["projection"])


def toy_check_space(encoder: ToyEncoder, observation_space: spaces.Space) -> None:
    problems = compare_specs(encoder.specs, modality_specs(observation_space))
    if problems:
        raise CheckpointError(f"the toy encoder does not match the env: {'; '.join(problems)}")


class ToyVecLatent(VecEncodedLatent):
    """The toy latents of every env of a VecEnv (dropped modalities arrive zero-filled): the shared base class does
    the batching of observations and SB3's terminal observations."""

    def __init__(self, venv: VecEnv, encoder: ToyEncoder) -> None:
        self.encoder = encoder
        self.keys = list(encoder.specs)
        super().__init__(venv, observation_space=spaces.Box(-np.inf, np.inf, (encoder.latent_dim,), np.float32))

    def encode(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self.encoder.encode(obs).numpy().astype(np.float32)


TOY = RepresentationMethod("toy", "a fixed random projection of the sensors", pretrain=toy_pretrain, load=toy_load,
                           check_space=toy_check_space, wrap_vec_env=ToyVecLatent)


# ... and one registry line.


@pytest.fixture
def toy_method():
    register_method(TOY)
    yield TOY
    unregister_method(TOY.name)
    assert "toy" not in method_names()


def test_toy_method_runs_through_pipeline_train_and_diagnostics(toy_method, tmp_path, capsys):
    from gmc_rl.agents import load_agent
    from gmc_rl.cli import main
    from gmc_rl.evaluate import sb3_predictor
    from gmc_rl.pipeline import run_pipeline
    from gmc_rl.transfer import diagnose_transfer

    config = tiny_config(ENV, ["toy"], evaluate={"diagnostic_episodes": 2, "diagnostic_horizon": 10})
    run_dir = tmp_path / "run"
    messages: list[str] = []
    results = run_pipeline(config, run_dir, progress=False, log=messages.append, jobs=1)
    assert results["methods"] == ["toy"]
    assert math.isfinite(results["results"]["toy"]["image"]["per_step_reward"]["mean"])
    assert any("pretrain toy" in m for m in messages)
    assert json.loads((run_dir / "stages" / "pretrain_toy.json").read_text())["status"] == "done"
    agent_dir = run_dir / "agents" / "toy-seed0"
    weights = "model.safetensors"
    assert (agent_dir / "encoder" / weights).read_bytes() == (run_dir / "toy" / weights).read_bytes()
    assert set(results["diagnostics"]["toy"]["toy-seed0"]) == {"image", "sound"}

    # a rerun skips every stage
    messages.clear()
    run_pipeline(config, run_dir, progress=False, log=messages.append, jobs=1)
    assert not [m for m in messages if "] running" in m or "] resuming" in m]

    # the reloaded agent reads the toy encoder, and the transfer diagnostics take it like any encoder
    agent = load_agent(agent_dir)
    assert isinstance(agent.encoder, ToyEncoder) and agent.method == "toy"
    assert agent.make_vec_env("sound", n_envs=2).observation_space.shape == (config.pretrain.model.latent_dim,)
    report = diagnose_transfer(agent.encoder, sb3_predictor(agent.model),
                               lambda: gym.make(ENV, max_episode_steps=20), [["image"], ["sound"]], episodes=2,
                               horizon=10)
    assert set(report) == {"image", "sound"}
    assert all(math.isfinite(report[s][key]) for s in report for key in ("latent_gap", "action_gap", "drift"))
    assert report["image"]["latent_gap"] > 0  # without the sound its features are zeros: the latent moves

    # gmc-rl train: --method toy with the generic --encoder flag (pretraining first with --pretrain-data)
    tiny = ["--env-kwargs", json.dumps({"max_episode_steps": 40}), "--total-timesteps", "120", "--eval-freq", "0",
            "--checkpoint-freq", "0", "--device", "cpu", "--no-progress",
            "--hyperparams", json.dumps({"learning_starts": 100, "batch_size": 8, "policy_kwargs": {"net_arch": [8]}})]
    encoder_dir, out = tmp_path / "toy-encoder", tmp_path / "cli-agent"
    assert main(["train", "--method", "toy", "--encoder", str(encoder_dir), "--pretrain-data", str(run_dir / "data"),
                 "--out", str(out), *tiny]) == 0
    assert json.loads((out / "agent.json").read_text())["method"] == "toy"
    assert main(["train", "--method", "toy", "--out", str(tmp_path / "a"), *tiny]) == 2
    assert "needs a pretrained encoder checkpoint directory (--encoder DIR)" in capsys.readouterr().err
    assert main(["train", "--method", "toy", "--gmc", str(encoder_dir), "--out", str(tmp_path / "b"), *tiny]) == 2
    assert "--gmc is only used with --method gmc (got --method toy)" in capsys.readouterr().err
    assert main(["train", "--method", "raw", "--encoder", str(encoder_dir), "--out", str(tmp_path / "c"), *tiny]) == 2
    assert "--encoder is only used with a method that reads an encoder" in capsys.readouterr().err
