"""``gmc-rl train``: train an SB3 agent on complete observations into a self-contained agent directory.

Examples::

    gmc-rl train --env gmc_rl/PendulumSound-v0 --gmc runs/pendulum/gmc --algo sac --out runs/pendulum/sac
    gmc-rl train --config experiments/pendulum_sound.yaml --method raw --seed 1 --out runs/pendulum/raw-1
    gmc-rl train --method state --out runs/pendulum/state --total-timesteps 20000
    gmc-rl train --method mvae --mvae runs/pendulum/mvae --mvae-data runs/pendulum/data --out runs/pendulum/mvae-agent
    gmc-rl train --out runs/pendulum/sac --resume          # continue an interrupted run

Every key of the ``agent`` config section has a flag (``--algo``, ``--total-timesteps``, ``--n-envs``,
``--hyperparams '{"learning_rate": 0.001}'``, ``--eval-freq``, ``--eval-episodes``, ``--checkpoint-freq``,
``--device``); flags override ``--config``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gmc_rl.commands.common import add_experiment_arguments, resolve_config
from gmc_rl.config import AgentConfig, ExperimentConfig, apply_arguments, from_dict
from gmc_rl.errors import ConfigError

HELP = "train an SB3 agent (GMC latent, raw, MVAE or true-state observations) on complete observations"

METHOD_CHOICES = ("gmc", "raw", "mvae", "state")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="agent directory to write (new or empty, or with --resume)")
    parser.add_argument("--method", default=None, choices=METHOD_CHOICES,
                        help="what the policy observes: gmc (GMC latent, needs --gmc; the default), raw (Dict "
                             "observation), mvae (MVAE posterior mean, needs --mvae) or state (true state; upper bound)")
    parser.add_argument("--gmc", default=None, metavar="DIR", help="pretrained GMC checkpoint directory (method gmc)")
    parser.add_argument("--mvae", default=None, metavar="DIR", help="pretrained MVAE checkpoint directory (method mvae)")
    parser.add_argument("--mvae-data", default=None, metavar="DATA_DIR",
                        help="with --method mvae: first pretrain the MVAE on this dataset (gmc-rl collect) into the "
                             "--mvae directory, with the config's pretrain settings (resumed if interrupted)")
    parser.add_argument("--seed", type=int, default=None,
                        help="agent seed (default: the first of the config's seeds)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (steps continue, not restart)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="SB3 verbosity")
    add_experiment_arguments(parser, "agent", AgentConfig)


def run(args: argparse.Namespace) -> int:
    from agents import train_agent
    from agents.agent_dir import AGENT_JSON, read_agent_json

    out = Path(args.out)
    stored = read_agent_json(out) if args.resume and (out / AGENT_JSON).is_file() else None
    if stored is not None and args.config is None:
        # Resuming: the run's own config, with only the flags given now applied on top.
        config = apply_arguments(from_dict(ExperimentConfig, stored["config"]), args)
    else:
        config = resolve_config(args)
    method = args.method or (str(stored["method"]) if stored else "gmc")
    seed = args.seed if args.seed is not None else int(stored["seed"]) if stored else int(config.seeds[0])
    encoder = args.gmc if method == "gmc" else args.mvae if method == "mvae" else None
    if method != "gmc" and args.gmc is not None:
        raise ConfigError(f"--gmc is only used with --method gmc (got --method {method})")
    if method != "mvae" and (args.mvae is not None or args.mvae_data is not None):
        raise ConfigError(f"--mvae and --mvae-data are only used with --method mvae (got --method {method})")
    if method == "mvae" and args.mvae_data is not None:
        from agents.mvae import pretrain_mvae

        if args.mvae is None:
            raise ConfigError("--mvae-data needs --mvae DIR: the directory to pretrain the MVAE into")
        print(f"pretraining the MVAE on {args.mvae_data} into {args.mvae}")
        pretrain_mvae(config, args.mvae_data, args.mvae, resume=True, progress=not args.no_progress)
    path = train_agent(config, method, seed, out, encoder_dir=encoder, resume=args.resume,
                       progress_bar=not args.no_progress, verbose=args.verbose)
    info = read_agent_json(path)
    print(f"agent ({info['method']}, {info['algo']}, seed {info['seed']}, {info['num_timesteps']} steps) saved in {path}")
    print(f"evaluate it with: gmc-rl evaluate --agent {path}")
    return 0
