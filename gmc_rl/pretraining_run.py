"""The output directory of an encoder pretraining run, shared by every method (GMC, MVAE, one registered later).

A pretraining run writes into one directory::

    run.json                 what decides the weights (env, data file hashes, pretrain settings), the config, and
                             whether the run has finished ("status": "running" until the method's training returns)
    config.json + weights    the best model by validation loss (method-specific checkpoint format)
    last/trainer_state.pt    the resumable state, saved every ``pretrain.checkpoint_every`` epochs

:func:`open_pretraining_run` is the one place that decides what may happen to such a directory:

- a directory that holds no run must be empty (a user's files are never overwritten);
- trained weights are never replaced: a run with other settings is refused, and so is a run with the same settings
  unless ``resume``, which continues from ``last/`` (``epochs``, ``checkpoint_every`` and ``device`` may change);
- a run that failed before saving any weights (e.g. a non-finite loss at epoch 1) holds nothing to lose and is
  started over, with the corrected settings;
- a finished run whose resume point ``last/`` was deleted (to save space) is not resumed: that would start over and
  replace its finished model (:func:`refuse_finished_without_resume_point`);
- one process at a time works in the directory (:mod:`gmc_rl.locking`);
- an agent is never trained on an encoder whose run has not finished (:func:`require_finished`): stopped half way,
  its weights are those of an early epoch, without the steps that follow the epochs (modality fit, reference
  latents), and nothing else would say so.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from gmc_rl.checkpoint import load_training_state, resolve_device
from gmc_rl.config import ExperimentConfig, check_batch_size, pretrain_identity, to_dict
from gmc_rl.data import MultimodalDataset
from gmc_rl.errors import ConfigError
from gmc_rl.io import read_json_object, refuse_long_name, refuse_non_file, resolve_path, write_json_atomic
from gmc_rl.locking import HOLDER_FILE, LOCK_FILE, directory_lock

RUN_FILE = "run.json"
LAST_DIR = "last"
TRAINER_STATE = "trainer_state.pt"
BEST_CONFIG = "config.json"
"""The best model's checkpoint config, written by every method's save function."""
STATUS_RUNNING, STATUS_COMPLETE = "running", "complete"
"""``run.json``'s ``status``: written "running" when a run starts or resumes, "complete" when its training returns. A
``run.json`` without one was written before gmc-rl recorded it, by a run that cannot be told apart: it counts as
complete."""
_RUN_FILE_FIX = "remove it (and pretrain into a new --out), or restore the run's run.json from a copy"
FREE_KEYS = ("epochs", "checkpoint_every", "device")
"""pretrain keys that may change when resuming (more epochs, another device) without changing the run."""


def pretraining_identity(config: ExperimentConfig, dataset: MultimodalDataset, method: str) -> dict[str, Any]:
    """What decides the trained weights of a ``method`` encoder: env, data files and the pretrain settings that
    method reads (:func:`~gmc_rl.config.pretrain_identity`, minus :data:`FREE_KEYS`)."""
    pretrain = {key: value for key, value in pretrain_identity(config.pretrain, method).items()
                if key not in FREE_KEYS}
    files = {name: info.get("sha256") for name, info in sorted((dataset.metadata.get("files") or {}).items())}
    return json.loads(json.dumps({"env_id": dataset.env_id, "data": files, "pretrain": pretrain}))


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf where two nested dicts differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def has_weights(out_dir: Path) -> bool:
    """True if a pretraining run in ``out_dir`` saved a model (its best or its latest state)."""
    return (out_dir / BEST_CONFIG).is_file() or (out_dir / LAST_DIR).exists()


def recorded_method(out_dir: Path, record: dict[str, Any]) -> str | None:
    """The method of the pretraining run in ``out_dir``: as its ``run.json`` (``record``) says, or, for a run
    recorded before the method was, as the format of its best checkpoint says (``gmc-rl/<method>-checkpoint``)."""
    method = record.get("method")
    if isinstance(method, str):
        return method
    try:
        fmt = read_json_object(out_dir / BEST_CONFIG, "checkpoint config", {"format": str}, ConfigError)["format"]
    except (OSError, ValueError):
        return None
    return fmt.removeprefix("gmc-rl/").removesuffix("-checkpoint") if fmt.startswith("gmc-rl/") else None


def resume_hint(method: str, run_dir: Path) -> str:
    """The command that continues the ``method`` pretraining run in ``run_dir``: GMC's own ``pretrain``; the
    baselines pretrain (and resume) through ``train --pretrain-data``."""
    if method == "gmc":
        return f"`gmc-rl pretrain --resume --out {run_dir}` (with its --data and config)"
    return (f"`gmc-rl train --method {method} --encoder {run_dir} --pretrain-data DATA --out AGENT` (with its "
            "config), which resumes the pretraining before training")


def check_pretraining_dir(out_dir: Path, identity: dict[str, Any], resume: bool, epochs: int,
                          verbose: bool = False, method: str | None = None) -> dict[str, Any] | None:
    """Apply the rules of the module docstring to ``out_dir``; return the state to resume from (or None).

    Raises:
        ConfigError: ``out_dir`` holds other files, a run with other settings, (without ``resume``) a run with
            the same settings, or a run that already trained more than ``epochs`` epochs (resuming cannot undo
            epochs, and the run would record fewer epochs than its weights and history hold).
    """
    refuse_long_name(out_dir, "pretraining directory", ConfigError)  # before it is probed or a parent made
    run_file = out_dir / RUN_FILE
    refuse_non_file(run_file, "pretraining run file", ConfigError, _RUN_FILE_FIX)
    if not run_file.is_file():
        leftovers = [p.name for p in out_dir.iterdir()
                     if not p.name.startswith(".tmp-") and p.name not in (LOCK_FILE, HOLDER_FILE)
                     ] if out_dir.is_dir() else []
        if leftovers:
            raise ConfigError(
                f"output directory {out_dir} is not empty ({sorted(leftovers)[:5]}) and holds no pretraining run; "
                "choose a new or empty --out"
            )
        return None
    previous = read_json_object(run_file, "pretraining run file", {"identity": dict}, ConfigError,
                                optional={"status": str})
    diffs = differences(previous["identity"], identity)
    if not has_weights(out_dir):
        if verbose and diffs:
            tqdm.write(f"{out_dir} holds a pretraining run that saved no weights; starting over with the new settings")
        return None
    recorded = recorded_method(out_dir, previous)
    if method is not None and recorded is not None and recorded != method:
        raise ConfigError(
            f"output directory {out_dir} holds a {recorded} pretraining run, not a {method} one; it is not "
            f"overwritten. Continue it with {resume_hint(recorded, out_dir)}, or train into another directory"
        )
    if diffs:
        raise ConfigError(
            f"output directory {out_dir} holds a pretraining run made with a different config or dataset "
            f"({'; '.join(diffs[:6])}); it is not overwritten: train into another directory or delete that one"
        )
    if not resume:
        raise ConfigError(
            f"output directory {out_dir} already holds a pretraining run with these settings; pass --resume to "
            "continue it (--epochs may be raised), or choose another --out to train a new model"
        )
    if not (out_dir / LAST_DIR / TRAINER_STATE).is_file():
        refuse_finished_without_resume_point(out_dir, previous)
        if verbose:
            tqdm.write(f"{out_dir} has no checkpoint yet; starting from epoch 0")
        return None
    state = load_training_state(out_dir / LAST_DIR, {"optimizer": dict, "history": list, "best_val": float})
    if state["epoch"] > epochs:
        raise ConfigError(
            f"output directory {out_dir} holds a pretraining run that has already trained {state['epoch']} epochs, "
            f"more than pretrain.epochs {epochs}; resuming cannot undo epochs: pass --pretrain.epochs "
            f"{state['epoch']} or more, or train into another directory"
        )
    return state


def refuse_finished_without_resume_point(out_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to resume the finished run in ``out_dir`` (``record``: its ``run.json``) whose resume point
    ``last/trainer_state.pt`` is gone: resuming would start over from epoch 0 and replace its finished model, which
    users may keep alone (resume points may be deleted to save space). An unfinished run without one (stopped before
    its first ``last/``) holds only an early epoch's weights and is started over, as before."""
    if record.get("status", STATUS_COMPLETE) != STATUS_COMPLETE:
        return
    raise ConfigError(
        f"{out_dir} holds a finished pretraining run whose resume point {out_dir / LAST_DIR / TRAINER_STATE} is gone; "
        "resuming would start over from epoch 0 and replace its finished model, so it is kept and nothing is "
        f"trained. Use it as it is (e.g. `gmc-rl train --encoder {out_dir}` without --pretrain-data), or pretrain "
        "a new run into another --out to train more epochs"
    )


@contextlib.contextmanager
def open_pretraining_run(config: ExperimentConfig, method: str, dataset: MultimodalDataset,
                         data_dir: str | os.PathLike, out_dir: str | os.PathLike, resume: bool, verbose: bool = False
                         ) -> Iterator[dict[str, Any] | None]:
    """Own ``out_dir`` for a pretraining run of the registered method ``method`` on ``dataset`` with ``config``;
    yield the state to resume from.

    First the inputs are checked (the dataset was collected on ``config.env_id``; the batch size fits its training
    split). The directory is checked before anything is written in it, then locked, checked again (another process may
    have written in between) and its ``run.json`` written; the lock is held until the ``with`` body ends.
    """
    if dataset.env_id != config.env_id:
        raise ConfigError(
            f"dataset {data_dir} was collected on {dataset.env_id!r} but the config's env_id is {config.env_id!r}; "
            f"pass --env {dataset.env_id} or the matching --config"
        )
    check_batch_size(config.pretrain.batch_size, len(dataset.train["rewards"]), "pretrain.batch_size",
                     f"the training split of dataset {data_dir}")
    resolve_device(config.pretrain.device, "pretrain.device")  # an unavailable GPU is refused before any write
    out_dir = Path(out_dir)
    identity = pretraining_identity(config, dataset, method)
    epochs = int(config.pretrain.epochs)
    check_pretraining_dir(out_dir, identity, resume, epochs, method=method)
    with directory_lock(out_dir, "pretraining output directory"):
        state = check_pretraining_dir(out_dir, identity, resume, epochs, verbose, method)
        record = {"identity": identity, "method": method, "experiment": to_dict(config), "data_dir": str(data_dir)}
        write_json_atomic(out_dir / RUN_FILE, {**record, "status": STATUS_RUNNING})
        yield state
        write_json_atomic(out_dir / RUN_FILE, {**record, "status": STATUS_COMPLETE})  # only when the body returned


def require_finished(checkpoint: Path, what: str) -> None:
    """Refuse ``checkpoint`` (a pretraining run's directory, or its ``last/``) if its run has not finished.

    A checkpoint outside a pretraining run (an agent's copy of its encoder, a user's own) has no ``run.json`` and
    is not checked here.

    Raises:
        ConfigError: the run's ``run.json`` says it is still running (it was interrupted, or runs now).
    """
    resolved = resolve_path(checkpoint)  # a symbolic link to a run's last/ is that run's last/
    run_dir = resolved.parent if resolved.name == LAST_DIR else resolved
    run_file = run_dir / RUN_FILE
    refuse_non_file(run_file, "pretraining run file", ConfigError, _RUN_FILE_FIX)
    if not run_file.is_file():
        return
    record = read_json_object(run_file, "pretraining run file", {"identity": dict}, ConfigError,
                              optional={"status": str})
    status = record.get("status", STATUS_COMPLETE)
    if status != STATUS_COMPLETE:
        method = recorded_method(run_dir, record) or "gmc"
        raise ConfigError(
            f"{what} {checkpoint} comes from a pretraining run that has not finished ({run_file} says "
            f"{status!r}: it was interrupted or is still running); its weights are an early epoch's. Finish it "
            f"with {resume_hint(method, run_dir)}, or wait until it ends"
        )
