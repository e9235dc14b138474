"""``gmc-rl pipeline``: collect -> pretrain -> train -> evaluate in one run directory, skipping finished stages."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from gmc_rl.commands.common import ConfigFlags, config_file_or, peek, print_tables
from gmc_rl.commands.config_flags import SECTIONS
from gmc_rl.config import ExperimentConfig
from gmc_rl.run_dir import is_run_dir, read_run_config

HELP = "run the whole experiment (collect, pretrain, train, evaluate) and print the robustness table"
CONFIG = ConfigFlags(sections=tuple(SECTIONS))

EPILOG = """\
examples:
  gmc-rl pipeline                                        # embedded quick config (PendulumSound, CPU)
  gmc-rl pipeline --config experiments/pendulum_sound.yaml --seeds 0 1 2 3 4
  gmc-rl pipeline --out runs/quick --seeds 0 1 --update  # add a seed to an existing run
  gmc-rl pipeline --jobs 1                               # one stage at a time, with progress bars
  gmc-rl pipeline --pretrain.epochs 3 --agent.total_timesteps 5000 --evaluate.episodes 20 --out runs/short
  gmc-rl pipeline --backend ray                          # every stage as a Ray task on a local Ray instance
  gmc-rl pipeline --backend ray --address HEAD:6379 --out /shared/runs/quick   # on a Ray cluster (docs/scale_out.md)

A rerun with the same config skips every finished stage and resumes an interrupted one; without --config, an
existing --out run continues with its own config.yaml (flags change it from there). A run directory made with
another config is refused, unless --update: then only the stages whose settings changed are redone.
With several jobs, a stage starts as soon as the stages it reads are done (the true-state agent trains while
GMC pretrains), and each job gets an equal share of the CPU cores as torch threads. With --backend ray each
stage is a Ray task asking for that share of CPUs (and a quarter of a GPU for cuda/auto stages when the cluster
has GPUs); on a cluster the run directory must be on a filesystem that every node mounts at the same path.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--out", default=None, metavar="RUN_DIR",
                        help="run directory (default: runs/<config name>)")
    parser.add_argument("--update", dest="update_run", action="store_true",
                        help="reuse a run directory made with another config, redoing the stages whose inputs changed")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="stages run at once, each in its own process (default: one per CPU core; 1 runs them "
                             "one after the other with progress bars)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="where the stages run: 'local' worker processes (default) or 'ray' tasks, on a local "
                             "Ray instance or the cluster of --address (needs: pip install -e \".[ray]\")")
    parser.add_argument("--address", default=None, metavar="ADDRESS",
                        help="with --backend ray: the Ray cluster to join (e.g. HEAD_IP:6379, as `ray start --head` "
                             "prints it); default: start a local Ray instance")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def base_config(argv: Sequence[str]) -> ExperimentConfig:
    """The ``--config`` file; else, when ``--out`` is an existing run, that run's own config (so that
    ``gmc-rl pipeline --out RUN --seeds 0 1 --update`` adds a seed to RUN's experiment instead of replacing it by
    the quick config); else the embedded quick config."""
    from gmc_rl.config import default_config_path, load_config

    if peek(argv, "--config").config is None:
        run = own_run(argv)
        if run is not None:
            return read_run_config(run)
    return config_file_or(argv, default=load_config(default_config_path()))


def own_run(argv: Sequence[str]) -> Path | None:
    """The run directory ``--out`` names when it is an existing pipeline run, else None."""
    out = peek(argv, "--out").out
    return Path(out) if out and existing_run(Path(out)) else None


def existing_run(path: Path) -> bool:
    """True if ``path`` is a pipeline run directory; False also for a path the system cannot look at (a name too
    long), which the run directory's own checks then name."""
    try:
        return is_run_dir(path)
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from gmc_rl.config import default_config_path
    from gmc_rl.pipeline import run_pipeline
    from gmc_rl.stages import usable_cpus

    config = args.experiment
    run_dir = Path(args.out) if args.out else Path("runs") / config.name
    if args.config:
        print(f"config: {args.config}")
    elif existing_run(run_dir):
        print(f"config: {run_dir / 'config.yaml'} (the run's own)")
    else:
        print(f"config: {default_config_path()} (embedded default)")
    jobs = args.jobs if args.jobs is not None else usable_cpus()
    start = time.perf_counter()
    results = run_pipeline(config, run_dir, update=args.update_run, progress=not args.no_progress,
                           log=lambda message: print(message, flush=True), jobs=jobs, backend=args.backend,
                           address=args.address)
    minutes = (time.perf_counter() - start) / 60
    print()
    print_tables(results, f"Mean per-step reward on {config.env_id} (rows: methods trained on complete observations; "
                          f"columns: sensors at evaluation; mean ± 95 % CI over {results['settings'].get('episodes')} "
                          f"episodes x seeds {results['settings'].get('seeds')}):")
    print(f"Finished in {minutes:.1f} min. Results: {run_dir / 'eval' / 'results.md'} (.json, .png)")
    return 0
