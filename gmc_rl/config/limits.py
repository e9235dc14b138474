"""Resource limits: sizes that cannot fit are refused with the limit in the message, before anything is allocated.

The ``MAX_*`` caps, each with the reason for its value; the memory of this machine (:func:`system_memory`); the
bytes a Gymnasium space takes (:func:`space_bytes`); and the checks that hold an estimate against them
(:func:`check_memory`, :func:`check_reference_latents`, :func:`check_batch_size`, :func:`check_gathered_steps`,
:func:`check_gathered_memory`). The built-in envs bound their own
image sizes and frame stacks: gmc_rl.envs.checks, a lower layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gmc_rl.config.checks import _require
from gmc_rl.errors import ConfigError

MAX_NAME_BYTES = 255
"""Longest name of a directory entry on common file systems (NAME_MAX of ext4, XFS, APFS, NTFS), in UTF-8 bytes."""

MAX_CONFIG_BYTES = 1 << 20
"""Largest YAML config file read (1 MiB). The shipped experiment configs are 1-3 KB. With anchors and aliases
refused (:func:`~gmc_rl.config.files.load_yaml`), the data parsed from a file grows only in proportion to the file."""

MAX_CONFIG_DEPTH = 20
"""Deepest nesting of mappings and lists in a config (YAML file, JSON flag or Python value). The deepest real
value, ``agent.hyperparams.policy_kwargs.net_arch.pi[0]``, is 6 levels down; the YAML parser, ``json.loads`` and
``copy.deepcopy`` recurse once per level and would stop with a raw RecursionError near 1000."""

MAX_LAYER_WIDTH = 4096
"""Widest network layer: ``pretrain.model`` latent_dim, common_dim, head_hidden, every entry of conv_channels and
mlp_hidden, and every width in an agent's ``policy_kwargs.net_arch`` and ``features_extractor_kwargs`` (``*_dim``).
The GMC paper's widths are 10-128 and SB3's defaults 64-400; one 4096 x 4096 layer is 64 MiB of float32 weights."""

MAX_LAYERS = 16
"""Most hidden layers in one list (conv_channels, mlp_hidden, net_arch), and most critics (``policy_kwargs.n_critics``,
SB3's default 2). Each conv layer halves the image, so a 512 px image has room for 9; the paper uses 2 conv and 2
MLP layers."""

MAX_MODEL_PARAMETERS = 100_000_000
"""Most parameters of a GMC or MVAE model, counted from the modality shapes and the architecture before a layer is
built (:func:`gmc_rl.model.parameter_count`). The paper's pendulum model has 1.9 M. 100 M parameters are 400 MB of
float32 weights and about 1.6 GB with their gradients and Adam's two moments. The first linear layer after the conv
layers grows with the image area, so large images need more conv layers (each one divides it by 4)."""

MAX_ENVS = 256
"""Most environments stepped at once (collect.n_envs, agent.n_envs, evaluate.n_envs): each is a full copy of the
env in this process (an SB3 DummyVecEnv) with its own frame buffers. The shipped configs use 1-20."""

MAX_COLLECT_STEPS = 100_000_000
"""Most transitions in one dataset (collect.steps), checked when the config is read. The shipped configs collect
20,000 (the paper's size). Collection also estimates the dataset's bytes from the env's spaces and refuses it when
it exceeds the memory (:data:`MAX_DATA_BYTES`)."""

MAX_GATHERED_STEPS = 100_000_000
"""Most env steps one distillation (agent.distill_rounds x agent.distill_steps) or one action fit
(agent.action_fit_rounds x agent.action_fit_steps) gathers, checked when the config is read, each round's steps
too. Every observation gathered is kept for the refits of the later rounds, as a dataset is (MAX_COLLECT_STEPS); the
shipped configs gather 8 x 5,000 and 3 x 3,000. Their bytes must also fit the memory
(:func:`check_gathered_memory`)."""

MAX_DATA_BYTES = 64 * 2**30
"""Largest in-memory array gmc-rl allocates for data, 64 GiB: a dataset while it is collected (and again when it is
loaded for pretraining), or an agent's replay buffer. The estimate must also fit the machine's memory
(:func:`system_memory`); the cap holds where the memory cannot be read, and keeps a typo from producing files no
machine of this project can load."""

MAX_REFERENCE_LATENTS = 1_000_000
"""Most reference latents a GMC model keeps (``pretrain.reference_latents``, a checkpoint's
``reference_latents.size``)."""

MAX_REFERENCE_BYTES = 2**30
"""Largest array of reference latents, 1 GiB of float32 (count x latent_dim x 4 bytes), checked before it is
allocated. Each bound alone is not enough: 1,000,000 latents of size 4096 (MAX_LAYER_WIDTH) would be 15.3 GiB. The
default 20,000 latents of the paper's size 10 are 0.8 MB; the cap leaves room for 1,000,000 of size 256."""

MAX_PRETRAIN_BATCH = 8192
"""Largest pretrain.batch_size: the contrastive loss builds a (2B x 2B) similarity matrix per modality, 1 GiB of
float32 at B = 8192 (the paper uses 128)."""

MAX_EPISODES = 1_000_000
"""Most evaluation episodes per condition and seed (evaluate.episodes, agent.eval_episodes); each episode's return
and length are kept."""

MAX_DIAGNOSTIC_STEPS = 100_000
"""Most evaluate.diagnostic_episodes x evaluate.diagnostic_horizon: the transfer diagnostics run one env per episode
at once, keep every observation they visit and encode them in one batch (the default is 10 x 100; the pendulum's
observations are 7 KB each)."""

MAX_BUFFER_SIZE = 100_000_000
"""Largest agent.hyperparams.buffer_size (SB3's replay buffer, allocated whole when the agent is built; rl-zoo3
uses at most 1e6). The agent also refuses a buffer whose estimated bytes exceed the machine's memory
(:func:`gmc_rl.agents.registry.check_buffer_memory`)."""

MAX_SB3_BATCH = 1_000_000
"""Largest agent.hyperparams.batch_size and n_steps (SB3's minibatch, and the rows of an on-policy rollout buffer
per env)."""


def system_memory() -> tuple[int | None, int | None]:
    """(total, available) bytes of memory for this process, or None where they cannot be read.

    On Linux, MemTotal and MemAvailable of ``/proc/meminfo``, lowered to a cgroup (container) limit when one is
    set; elsewhere the physical and free pages of ``os.sysconf``.
    """
    total = available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo if line.count(":") == 1}
        total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    except (OSError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total, available = os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            return None, None
    try:  # cgroup v2: the container's limit and what it already uses
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            total = min(total, int(limit)) if total is not None else int(limit)
            free = max(int(limit) - used, 0)
            available = min(available, free) if available is not None else free
    except (OSError, ValueError):
        pass
    return total, available


def format_bytes(count: float) -> str:
    """``count`` bytes in binary units, e.g. ``'14.5 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_reference_latents(count: int, latent_dim: int, key: str) -> None:
    """Raise ConfigError (naming ``key``) unless ``count`` reference latents of size ``latent_dim`` are allowed:
    ``count`` in [0, :data:`MAX_REFERENCE_LATENTS`] and their float32 array within :data:`MAX_REFERENCE_BYTES`.

    Checked for a config before pretraining and for a checkpoint's ``config.json`` before the array is allocated.
    """
    _require(0 <= count <= MAX_REFERENCE_LATENTS, key,
             f"must be in [0, {MAX_REFERENCE_LATENTS}] (0: the paper's mean of the present latents), got {count}")
    needed = count * latent_dim * 4
    _require(needed <= MAX_REFERENCE_BYTES, key,
             f"{count:,} reference latents of size {latent_dim} need {format_bytes(needed)}, more than "
             f"{format_bytes(MAX_REFERENCE_BYTES)} (MAX_REFERENCE_BYTES); keep at most "
             f"{MAX_REFERENCE_BYTES // (4 * latent_dim):,} of size {latent_dim}")


def _check_envs(value: int, key: str) -> None:
    """Raise ConfigError (naming ``key``) unless ``value`` environments are in [1, :data:`MAX_ENVS`]."""
    _require(0 < value <= MAX_ENVS, key, f"must be in [1, {MAX_ENVS}] (MAX_ENVS), got {value}")


def space_bytes(space: Any, itemsize: int | None = None) -> int:
    """Bytes of one value of a Gymnasium space (the sum over a ``Dict``'s entries), from its shape and dtype;
    ``itemsize`` replaces the dtype's size (SB3's rollout buffers store every value as float32)."""
    import numpy as np

    if hasattr(space, "spaces") and isinstance(space.spaces, dict):
        return sum(space_bytes(entry, itemsize) for entry in space.spaces.values())
    size = itemsize if itemsize is not None else np.dtype(space.dtype or np.int64).itemsize
    return int(np.prod(space.shape, dtype=object)) * size


def check_memory(needed: int, key: str, what: str, fix: str, memory: int | None,
                 memory_name: str = "memory available now", cap: int = MAX_DATA_BYTES) -> None:
    """Raise :class:`ConfigError` naming ``key`` if ``needed`` bytes exceed ``cap`` or ``memory`` (None: unknown).

    ``what`` says what the bytes are for, ``memory_name`` which memory ``memory`` is, ``fix`` how to lower the
    need; the message gives the estimate and both limits.
    """
    limit = cap if memory is None else min(cap, memory)
    if needed > limit:
        known = format_bytes(memory) if memory is not None else "unknown"
        raise ConfigError(
            f"config key {key!r}: {what} needs about {format_bytes(needed)}, more than the limit of "
            f"{format_bytes(limit)} ({memory_name}: {known}; cap MAX_DATA_BYTES: {format_bytes(cap)}); {fix}"
        )


def check_gathered_steps(rounds: int, steps: int, rounds_key: str, steps_key: str) -> None:
    """Raise :class:`ConfigError` (naming ``steps_key``) unless ``steps`` per round and ``rounds`` x ``steps`` in all
    are at most :data:`MAX_GATHERED_STEPS`: the observations a distillation or an action fit keeps."""
    _require(steps <= MAX_GATHERED_STEPS, steps_key,
             f"must be at most {MAX_GATHERED_STEPS} (MAX_GATHERED_STEPS), got {steps}")
    total = rounds * steps
    _require(total <= MAX_GATHERED_STEPS, steps_key,
             f"{rounds_key} x {steps_key} = {rounds} x {steps} = {total} observations, all kept in memory, must be at "
             f"most {MAX_GATHERED_STEPS} (MAX_GATHERED_STEPS); lower either")


def check_gathered_memory(rounds: int, steps: int, per_step: int, rounds_key: str, steps_key: str, what: str) -> None:
    """Raise :class:`ConfigError` (naming ``steps_key``) if ``rounds`` x ``steps`` observations of ``per_step`` bytes
    cannot be held in memory: a distillation or an action fit keeps every observation it gathers and joins them for
    each refit (two copies at the end), so 2 x rounds x steps x per_step bytes must fit the memory available now and
    :data:`MAX_DATA_BYTES` (:func:`check_memory`). ``what`` names what is gathered ("the action fit's
    observations")."""
    _, available = system_memory()
    limit = MAX_DATA_BYTES if available is None else min(MAX_DATA_BYTES, available)
    fit = max(limit // max(2 * rounds * per_step, 1), 1)
    plural = "s" if rounds != 1 else ""
    check_memory(2 * rounds * steps * per_step, steps_key,
                 f"{what} ({rounds:,} round{plural} x {steps:,} steps of {format_bytes(per_step)}, kept and joined "
                 "for each refit)", f"lower {steps_key} to at most {fit:,} (or {rounds_key})", available)


def check_batch_size(batch_size: int, n_samples: int, key: str, source: str) -> None:
    """Raise :class:`ConfigError` if ``batch_size`` (config key ``key``) exceeds the ``n_samples`` of ``source``.

    A larger batch would silently shrink to the whole dataset, which changes what the contrastive loss compares
    (fewer negatives than configured); asking for a smaller batch or more data is the honest fix.
    """
    if n_samples < batch_size:
        raise ConfigError(
            f"config key {key!r}: batch size {batch_size} is larger than the {n_samples} samples of {source}; "
            f"lower {key} to at most {n_samples} or collect more data (collect.steps)"
        )
