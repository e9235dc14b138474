"""Where the pipeline's tasks run: this machine (:mod:`gmc_rl.stages`) or a Ray instance or cluster
(:mod:`gmc_rl.ray_backend`, the optional extra ``ray``).

This module sits above both, so neither imports the other for the choice: ``gmc-rl pipeline --backend local|ray``
comes here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gmc_rl import ray_backend, stages
from gmc_rl.errors import ConfigError
from gmc_rl.stages import Log, Task

BACKENDS = ("local", "ray")
"""Where :func:`run_tasks` runs the tasks: this machine's process pool, or Ray (:mod:`gmc_rl.ray_backend`)."""


def check_backend(backend: str, address: str | None = None) -> None:
    """Refuse an unknown backend, an ``address`` without Ray, and ``backend="ray"`` when Ray is not installed.

    Raises:
        ConfigError: one line saying what is wrong (for a missing Ray, the command that installs it).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {list(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError("an address (--address) is a Ray cluster's: it needs --backend ray")
    if address is not None:
        check_ray_address(address)
    if backend == "ray":
        ray_backend.require_ray()


_RAY_ADDRESS = re.compile(r"(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")


def check_ray_address(address: str) -> None:
    """Refuse an ``address`` that cannot name a Ray cluster, before anything is written or Ray is started.

    Accepted: ``auto`` (the cluster this machine belongs to), ``local`` (a new Ray instance here, as no address),
    ``HOST:PORT`` (the head's GCS, e.g.
    ``10.0.0.1:6379`` or ``[::1]:6379``) and ``ray://HOST:PORT`` (Ray Client), with a port in 1-65535. Whether a
    cluster listens there is checked when the pipeline connects.

    Raises:
        ConfigError: one line naming the address and the accepted forms.
    """
    match = _RAY_ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if address not in ("auto", "local") and not (match and 1 <= int(match.group("port")) <= 65535):
        raise ConfigError(f"--address {address!r} is not a Ray cluster address: give HOST:PORT (e.g. 10.0.0.1:6379),"
                          " ray://HOST:PORT, auto or local")


def run_tasks(tasks: Sequence[Task], *, jobs: int = 1, progress: bool = True, log: Log = print,
              backend: str = "local", address: str | None = None) -> None:
    """Run every task whose stage is not done, on ``backend``.

    ``"local"``: :func:`gmc_rl.stages.run_tasks` (in order with ``jobs=1``, else up to ``jobs`` worker processes).
    ``"ray"``: each task as a Ray task, on a local Ray instance or, with ``address``, on the cluster there
    (:func:`gmc_rl.ray_backend.run_tasks_ray`); ``jobs`` then sets each task's share of the CPUs.
    """
    stages.check_tasks(tasks, jobs)
    check_backend(backend, address)
    if backend == "ray":
        stages.check_unchanged([task.stage for task in tasks])
        ray_backend.run_tasks_ray(list(tasks), jobs, log, address)
    else:
        stages.run_tasks(tasks, jobs=jobs, progress=progress, log=log)
