"""The on-disk format of an agent directory, written atomically and read without unpickling.

An agent directory is self-contained: everything needed to rebuild the policy and its observation stack is in it::

    agent.json        what the agent is: method, algo, env_id, env_kwargs, seed, modalities, spaces, the full
                      experiment config, versions, status ("training" or "complete"), steps trained, and the SHA-256
                      of encoder/'s config and weights (checked on load: :func:`check_encoder_digests`)
    agent.zip         the trained SB3 model (SB3's own zip format, written at the end of training)
    encoder/          copy of the GMC or MVAE checkpoint the policy reads (config.json + model.safetensors)
    checkpoints/      resumable state: latest.json -> step_<N>/{model.zip, replay_buffer.npz}
    eval/             evaluations.json (EvalCallback history on complete observations) and best_model.zip
    tb/               TensorBoard event files

SB3's ``.zip`` stores the policy and optimiser weights as ``.pth`` files (read here with
``torch.load(weights_only=True)``) next to a ``data`` entry with pickled Python objects. That entry is never read:
the algorithm is rebuilt from ``agent.json`` with :func:`gmc_rl.agents.registry.build_algorithm` and only the
weights are loaded into it (:func:`load_model_weights`).
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import recursive_setattr

from gmc_rl.config import config_hash, merge_hyperparams
from gmc_rl.data import file_sha256
from gmc_rl.env_ids import check_env_id
from gmc_rl.errors import CheckpointError
from gmc_rl.io import (
    make_staging_dir,
    path_kind,
    read_json_object,
    refuse_non_file,
    remove_path,
    require_existing,
    require_fields,
    write_bytes_atomic,
    write_json_atomic,
    wrong_path,
)
from gmc_rl.sb3_zip import check_weight_entries

FORMAT = "gmc-rl-agent"
FORMAT_VERSION = 1

AGENT_JSON = "agent.json"
MODEL_ZIP = "agent.zip"
ENCODER_DIR = "encoder"
ACTION_FIT_DIR = "action_fit"
"""The GMC encoder fitted to the agent's actions (gmc_rl.agents.action_fit), when the agent has one."""
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"
TB_DIR = "tb"

ENCODER_FILES = ("config.json", "model.safetensors", "history.json")
"""Files of a GMC/MVAE checkpoint copied into ``encoder/`` (resume state and TensorBoard logs are left out)."""

ENCODER_DIGESTS = "encoder_sha256"
"""Key of ``agent.json`` recording the SHA-256 of the encoder copy's files (:data:`DIGESTED_ENCODER_FILES`), so that
an ``encoder/`` replaced by another checkpoint of the same architecture is refused on load rather than read."""
DIGESTED_ENCODER_FILES = ("model.safetensors", "config.json")
"""The files of ``encoder/`` that decide the latent the policy reads, weights first (``history.json`` is a record
only)."""

STATUS_TRAINING = "training"
STATUS_COMPLETE = "complete"


def save_model_atomic(model: BaseAlgorithm, path: str | os.PathLike) -> Path:
    """Save an SB3 model to ``path`` (a ``.zip``) atomically: a crash never leaves a truncated file."""
    buffer = io.BytesIO()
    model.save(buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)


def _torch_reason(exc: BaseException) -> str:
    """One line of why torch could not load an entry, without torch's advice (to load it with weights_only=False, or
    to allow the global it names), which is wrong for a corrupt or hostile file."""
    text = str(exc)
    prefix = ""
    if "WeightsUnpickler error:" in text:  # the cause; the text before it is the advice
        text, prefix = text.split("WeightsUnpickler error:", 1)[1], "Weights only load failed: "
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0] if lines and "weights_only" not in lines[0] else type(exc).__name__
    reason = reason.split(". ", 1)[0].rstrip(".")  # its first sentence: then come advice and bug-report requests
    reason = prefix + reason
    return reason if len(reason) <= 200 else reason[:197] + "..."


def read_model_weights(model: BaseAlgorithm, path: Path) -> tuple[dict[str, Any], Any]:
    """The state dicts and torch variables in the SB3 ``.zip`` at ``path``, read as SB3's ``load_from_zip_file``
    does, after checking its entries (:func:`gmc_rl.sb3_zip.check_weight_entries`): only those SB3 writes for
    ``model``, none unpacking to more bytes than ``model``'s parameters need, so that a small zip cannot take
    gigabytes of memory.

    Raises:
        CheckpointError: the file is not a zip, holds another entry or an entry too large, or an entry is not a
            weights file torch loads with ``weights_only=True`` (the message names the entry, in one line).
    """
    params: dict[str, Any] = {}
    variables = None
    try:
        budgets = check_weight_entries(path, model)
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            for name in names:
                if name not in budgets:
                    continue
                try:
                    with archive.open(name) as handle:
                        value = torch.load(handle, map_location=model.device, weights_only=True)
                except (RuntimeError, ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
                        MemoryError) as exc:
                    raise CheckpointError(f"cannot read model file {path} entry {name!r} (corrupted or unsafe: not a "
                                          f"weights file torch loads safely): {_torch_reason(exc)}") from None
                if name == "pytorch_variables.pth":
                    variables = value
                else:
                    params[name[: -len(".pth")]] = value
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"cannot read model file {path} (corrupted or not an SB3 zip): {exc}") from exc
    return params, variables


def load_model_weights(model: BaseAlgorithm, path: str | os.PathLike) -> None:
    """Load the weights (policy, optimisers, e.g. SAC's entropy coefficient) of an SB3 ``.zip`` into ``model``.

    Only the ``.pth`` entries are read (:func:`read_model_weights`: its entries and their sizes are checked first),
    with ``torch.load(weights_only=True)``; the pickled ``data`` entry is not.

    Raises:
        CheckpointError: the file is missing, not a zip, holds entries SB3 does not write or larger than ``model``'s
            weights, or its weights do not fit ``model``'s networks.
    """
    path = require_existing(path, "model file", "file", CheckpointError)
    params, variables = read_model_weights(model, path)
    expected = set(model._get_torch_save_params()[0])
    missing = sorted(expected - set(params))
    if missing:
        raise CheckpointError(
            f"model file {path} lacks the weights of {missing}; it is not a {type(model).__name__} model"
        )
    try:
        model.set_parameters(params, exact_match=True, device=model.device)
        for name, value in (variables or {}).items():
            if value is not None:
                recursive_setattr(model, f"{name}.data", value.data)
    except (RuntimeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"the weights in {path} do not fit a {type(model).__name__} with this configuration: {exc}"
        ) from exc


def write_agent_json(directory: str | os.PathLike, info: dict[str, Any]) -> Path:
    """Write ``agent.json`` atomically (adding the format tag)."""
    path = Path(directory) / AGENT_JSON
    write_json_atomic(path, {"format": FORMAT, "format_version": FORMAT_VERSION, **info})
    return path


REQUIRED_FIELDS: dict[str, Any] = {
    "format": str,
    "method": str,
    "algo": str,
    "env_id": str,
    "env_kwargs": dict,
    "seed": int,
    "modalities": list,
    "config": dict,
    "status": str,
}
"""Keys every ``agent.json`` holds, with their JSON types."""

OPTIONAL_FIELDS: dict[str, Any] = {
    "format_version": int,
    "observation_space": str,
    "action_space": str,
    "encoder": (str, type(None)),
    "identity": dict,
    "config_hash": str,
    "total_timesteps": int,
    "num_timesteps": int,
    "train_seconds": float,
    "versions": dict,
    "distillation": dict,
    ENCODER_DIGESTS: dict,
}
"""Keys ``agent.json`` may hold (written by :func:`gmc_rl.agents.train_agent`), checked for their type when present."""

def _check_agrees(info: dict[str, Any], file: Path) -> None:
    """Raise CheckpointError where ``agent.json`` contradicts itself: its identity fields, its ``identity`` record
    and the experiment config stored in it must name the same method, algorithm, env, seed and hyperparameters.

    ``agent.json`` is not hashed, so this is what catches an edit of one of them: the agent would otherwise be
    rebuilt from one value (e.g. ``env_id``) while its config says another.
    """
    config = info["config"]
    agent = require_fields(config, {}, file, CheckpointError, optional={"agent": dict}, where="config").get("agent", {})
    pairs = [("env_id", info["env_id"], "config.env_id", config.get("env_id")),
             ("env_kwargs", info["env_kwargs"], "config.env_kwargs", config.get("env_kwargs")),
             ("algo", info["algo"], "config.agent.algo", agent.get("algo"))]
    identity = info.get("identity", {})
    for key in ("method", "algo", "env_id", "env_kwargs", "seed"):
        pairs.append((key, info[key], f"identity.{key}", identity.get(key)))
    method_changes = agent.get("method_hyperparams")
    hyperparams = agent.get("hyperparams")
    changes = method_changes.get(info["method"]) if isinstance(method_changes, dict) else None
    if isinstance(hyperparams, dict) and isinstance(changes, dict):
        hyperparams = merge_hyperparams(hyperparams, changes)
    pairs += [("identity.hyperparams", identity.get("hyperparams"),
               "config.agent.hyperparams (with method_hyperparams)", hyperparams),
              ("identity.n_envs", identity.get("n_envs"), "config.agent.n_envs", agent.get("n_envs"))]
    for key, value, other_key, other in pairs:
        if value is not None and other is not None and value != other:
            raise CheckpointError(
                f"{file}: key {key!r} is {value!r} but {other_key!r} is {other!r}; the agent description was edited "
                "and cannot be trusted (train the agent again, or restore its agent.json)"
            )
    if "config_hash" in info and info["config_hash"] != config_hash(config):
        raise CheckpointError(
            f"{file}: the stored experiment config does not match its 'config_hash' {info['config_hash']!r}; "
            "the agent description was edited and cannot be trusted"
        )


def check_agent_files(path: str | os.PathLike) -> None:
    """Refuse an agent directory whose ``agent.json`` or ``agent.zip`` is not a regular file (a directory, a FIFO,
    a broken link), or whose ``encoder`` is not a directory, naming what stands there: otherwise such an agent would
    read as "not an agent directory" or "not finished training". Missing files are left to the callers, which name
    them."""
    path = Path(path)
    fix = "it is not what gmc-rl wrote there: restore the agent directory from a copy, or train the agent again"
    for name in (AGENT_JSON, MODEL_ZIP):
        refuse_non_file(path / name, "agent file", CheckpointError, fix)
    encoder = path / ENCODER_DIR
    if path_kind(encoder) not in (None, "a directory"):
        raise CheckpointError(f"{wrong_path(encoder, 'agent encoder', 'directory')}; {fix}")


def encoder_digests(agent_dir: str | os.PathLike) -> dict[str, str]:
    """The SHA-256 of the files of ``agent_dir/encoder`` that decide the policy's latent, for ``agent.json``'s
    :data:`ENCODER_DIGESTS` (written when an agent is trained or distilled)."""
    encoder = Path(agent_dir) / ENCODER_DIR
    return {name: file_sha256(encoder / name) for name in DIGESTED_ENCODER_FILES}


def check_encoder_digests(agent_dir: str | os.PathLike, info: dict[str, Any]) -> None:
    """Refuse an agent whose ``encoder/`` is not the one it was trained with: each file's SHA-256 must be the one
    ``info`` (its ``agent.json``) records. An agent written before digests were recorded has none and is not
    checked. Another checkpoint of the same architecture (pretrained with another seed, say) would otherwise be
    read silently, and the policy would act on latents it never saw.

    Raises:
        CheckpointError: a recorded file differs or is missing, or the record is malformed.
    """
    recorded = info.get(ENCODER_DIGESTS)
    if recorded is None:
        return
    file = Path(agent_dir) / AGENT_JSON
    if set(recorded) != set(DIGESTED_ENCODER_FILES) or not all(isinstance(d, str) for d in recorded.values()):
        raise CheckpointError(f"{file}: key {ENCODER_DIGESTS!r} must map {list(DIGESTED_ENCODER_FILES)} to SHA-256 "
                              f"digests, got {str(recorded)[:120]}; the agent description was edited")
    fix = ("restore the agent's own encoder/ from a copy, or train an agent on this encoder (`gmc-rl train --encoder "
           "DIR --out NEW_DIR`)")
    for name in DIGESTED_ENCODER_FILES:
        target, digest = Path(agent_dir) / ENCODER_DIR / name, recorded[name]
        if not target.is_file():
            raise CheckpointError(f"the agent in {agent_dir} was trained with an encoder whose {name} is missing "
                                  f"from {target.parent}; {fix}")
        if file_sha256(target) != digest:
            raise CheckpointError(f"{target} is not the encoder the agent in {agent_dir} was trained with (its "
                                  f"SHA-256 differs from the one {file} records); {fix}")


def read_agent_json(directory: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``agent.json`` of an agent directory.

    Every key is checked for its type, the file must agree with itself (:func:`_check_agrees`), and its env id
    is checked without importing anything: an ``env_id`` of the form ``"module:Name"`` whose module the user has
    not imported is refused (:func:`gmc_rl.env_ids.check_env_id` with ``allow_import=False``), because a file in
    an agent directory must never make gmc-rl run code.

    Raises:
        FileNotFoundError: no agent directory (or no ``agent.json``) at ``directory``.
        CheckpointError: the file is malformed, of another format, lacks required keys, has a key of the wrong type,
            or contradicts itself.
        ConfigError: its env id names a module that is not imported, or is not registered.
    """
    directory = require_existing(directory, "agent directory")
    file = directory / AGENT_JSON
    try:
        info = read_json_object(file, "agent description", {}, CheckpointError)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{directory} is not an agent directory (no {AGENT_JSON}); train one with `gmc-rl train --out {directory}`"
        ) from exc
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{file} is not a gmc-rl agent description (format != {FORMAT!r})")
    missing = [key for key in REQUIRED_FIELDS if key not in info]
    if missing:
        raise CheckpointError(f"{file} lacks keys {missing}")
    require_fields(info, REQUIRED_FIELDS, file, CheckpointError, optional=OPTIONAL_FIELDS)
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has format version {info['format_version']}, newer than this gmc-rl understands "
            f"({FORMAT_VERSION}); upgrade gmc-rl"
        )
    if info["status"] not in (STATUS_TRAINING, STATUS_COMPLETE):
        raise CheckpointError(f"{file}: key 'status' must be {STATUS_TRAINING!r} or {STATUS_COMPLETE!r}, "
                              f"got {info['status']!r}")
    if not all(isinstance(name, str) for name in info["modalities"]):
        raise CheckpointError(f"{file}: key 'modalities' must be a list of names, got {info['modalities']!r}")
    check_env_id(info["env_id"], allow_import=False, source=file)
    _check_agrees(info, file)
    return info


def remove_action_fit(agent_dir: str | os.PathLike) -> None:
    """Remove the agent's action fit (``action_fit/``, or whatever stands at that path): it was fitted to a policy
    that training is about to change, or a new fit replaces it."""
    remove_path(Path(agent_dir) / ACTION_FIT_DIR)


def copy_encoder(source: str | os.PathLike, agent_dir: str | os.PathLike) -> Path:
    """Copy a GMC/MVAE checkpoint's weights and config into ``agent_dir/encoder`` (atomically, as a whole).

    If ``encoder/`` already exists (a resumed run) it must hold the same weights, else CheckpointError.
    """
    source, target = Path(source), Path(agent_dir) / ENCODER_DIR
    for name in ("config.json", "model.safetensors"):
        if not (source / name).is_file():
            raise CheckpointError(f"encoder checkpoint {source} has no {name}; pass a pretrained checkpoint directory")
    if target.exists():
        if source.resolve() == target.resolve():
            return target
        if file_sha256(source / "model.safetensors") != file_sha256(target / "model.safetensors"):
            raise CheckpointError(
                f"{agent_dir} was trained with a different encoder than {source}; resume with the same checkpoint "
                f"(or leave it out to use the copy in {target}), or train into a new directory"
            )
        return target
    staging = make_staging_dir(target)  # an ordinary directory (mkdtemp's would be private)
    try:
        for name in ENCODER_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)  # the umask's mode, not the source's
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
