"""``gmc-rl train``: train an SB3 agent on complete observations into a self-contained agent directory.

Examples::

    gmc-rl train --env gmc_rl/PendulumSound-v0 --gmc runs/pendulum/gmc --algo sac --out runs/pendulum/sac
    gmc-rl train --config experiments/pendulum_sound.yaml --method raw --seed 1 --out runs/pendulum/raw-1
    gmc-rl train --method state --out runs/pendulum/state --total-timesteps 20000
    gmc-rl train --method mvae --mvae runs/pendulum/mvae --pretrain-data runs/pendulum/data \
                 --out runs/pendulum/mvae-agent       # pretrain the MVAE first, then train on it
    gmc-rl train --method my_method --encoder runs/pendulum/my_encoder --out runs/pendulum/mine
    gmc-rl train --out runs/pendulum/sac --resume          # continue an interrupted run

The methods are those of the registry :mod:`gmc_rl.methods`. The encoder checkpoint of any method is given with
``--encoder DIR``; the built-in ones also keep their own flag (``--gmc DIR``, ``--mvae DIR``). Every key of the
``agent`` config section has a flag (``--algo``, ``--total-timesteps``, ``--n-envs``,
``--hyperparams '{"learning_rate": 0.001}'``, ``--eval-freq``, ``--eval-episodes``, ``--checkpoint-freq``,
``--device``); flags override ``--config``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from gmc_rl.commands.common import ConfigFlags, config_file_or, peek
from gmc_rl.config import ExperimentConfig, from_dict, stored_config
from gmc_rl.errors import ConfigError
from gmc_rl.io import refuse_long_name, wrong_path
from gmc_rl.methods import GENERIC_ENCODER_FLAG, RepresentationMethod, get_method, method_names

HELP = "train an SB3 agent (GMC latent, raw, MVAE or true-state observations) on complete observations"
CONFIG = ConfigFlags(sections=("agent", "pretrain"), top_level=("name", "env_id", "env_kwargs"), short="agent")
"""The agent section, and the pretrain section for --pretrain-data. Not ``--seeds``/``--methods``: train makes one
agent (``--seed``, ``--method``); :data:`PIPELINE_FLAGS` refuses them."""

PIPELINE_FLAGS = {"--seeds": "give its seed with --seed N", "--methods": "give its method with --method M"}
"""The pipeline's several-agent flags, refused by train with the flag to use instead (they were once accepted and
ignored: ``train --seeds 0 1`` trained seed 0 only)."""

DEFAULT_METHOD = "gmc"


def _own_flags() -> dict[str, RepresentationMethod]:
    """The methods that have a checkpoint flag of their own (``--gmc``, ``--mvae``), by flag."""
    methods = (get_method(name) for name in method_names())
    return {m.encoder_flag: m for m in methods if m.encoder_flag != GENERIC_ENCODER_FLAG}


def _dest(flag: str) -> str:
    """The argparse attribute of a flag ("--gmc" -> "gmc")."""
    return flag.lstrip("-").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    choices = method_names()
    parser.add_argument("--out", required=True, help="agent directory to write (new or empty, or with --resume)")
    parser.add_argument("--method", default=None, choices=choices,
                        help=f"what the policy observes; train makes one agent, of one method (default: "
                             f"{DEFAULT_METHOD}): "
                             + "; ".join(f"{name}: {get_method(name).description}" for name in choices))
    parser.add_argument(GENERIC_ENCODER_FLAG, default=None, metavar="DIR",
                        help="pretrained encoder checkpoint directory (any method that reads an encoder)")
    for flag, method in _own_flags().items():
        parser.add_argument(flag, dest=_dest(flag), default=None, metavar="DIR",
                            help=f"pretrained {method.name} checkpoint directory (method {method.name}; same as "
                                 f"{GENERIC_ENCODER_FLAG})")
    parser.add_argument("--pretrain-data", "--mvae-data", dest="pretrain_data", default=None, metavar="DATA_DIR",
                        help="first pretrain the method's encoder on this dataset (gmc-rl collect) into its "
                             "checkpoint directory, with the config's pretrain settings (resumed if interrupted)")
    parser.add_argument("--seed", type=int, default=None,
                        help="agent seed (default: the first of the config's seeds); train makes one agent, "
                             "gmc-rl pipeline one per method and seed (--seeds, --methods)")
    parser.add_argument("--teacher", default=None, metavar="DIR",
                        help="train the policy by imitating this true-state agent (gmc-rl train --method state) "
                             "with DAgger instead of by RL (agent.distill_rounds rounds of agent.distill_steps "
                             "steps); the env must report info['state'] (docs/agents.md, 'Distillation from a "
                             "true-state teacher')")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (steps continue, not restart)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="SB3 verbosity")


def base_config(argv: Sequence[str]) -> ExperimentConfig:
    """The config the flags apply to.

    - ``--resume`` without ``--config``: the config of the run being resumed;
    - ``--config``: that file;
    - else an encoder checkpoint (``--gmc``, ``--mvae``, ``--encoder``) without ``--env``: the defaults with the env
      (id and keyword arguments) the checkpoint was pretrained on, so that ``gmc-rl train --gmc runs/gmc`` trains on
      the env of its encoder; with ``--pretrain-data`` the env of that dataset;
    - else the defaults.

    ``--seeds`` and ``--methods`` are refused first (:func:`refuse_pipeline_flags`).
    """
    from gmc_rl.agents.agent_dir import AGENT_JSON, read_agent_json
    from gmc_rl.env_ids import check_env_id

    refuse_pipeline_flags(argv)

    encoder_flags = [GENERIC_ENCODER_FLAG, *_own_flags()]
    given = peek(argv, "--config", "--out", "--resume", "--env", "--env_id", "--pretrain-data", "--mvae-data",
                 *encoder_flags)
    env_id = given.env or given.env_id
    if env_id:  # a "module:Name" id named on the command line may import its module (agent.json's may not)
        check_env_id(env_id, allow_import=True)
    if given.resume and not given.config and given.out and (Path(given.out) / AGENT_JSON).is_file():
        return stored_config(read_agent_json(Path(given.out))["config"])
    if given.resume and given.out and os.path.lexists(given.out) and not Path(given.out).is_dir():  # say what it is
        raise ConfigError(f"--resume continues the agent in --out, but {wrong_path(given.out, '--out')}")
    if given.config or env_id:
        return config_file_or(argv)
    data = given.pretrain_data or given.mvae_data
    if data:
        return _env_of_dataset(data)
    encoders = [getattr(given, _dest(flag)) for flag in encoder_flags if getattr(given, _dest(flag)) is not None]
    if len(encoders) == 1:
        return _env_of_checkpoint(Path(encoders[0]))
    return config_file_or(argv)


def refuse_pipeline_flags(argv: Sequence[str]) -> None:
    """Raise ConfigError for ``--seeds`` or ``--methods`` in ``argv`` (also ``--seeds=0``), naming the flag to use.

    They are the pipeline's (one agent per method and seed); train makes one agent, so several seeds or methods
    would be trained as one, and a single value would be a second spelling of ``--seed``/``--method``.
    """
    for word in argv:
        if word == "--":
            return
        flag = word.partition("=")[0]
        if flag in PIPELINE_FLAGS:
            raise ConfigError(f"{flag} is gmc-rl pipeline's flag (one agent per method and seed); gmc-rl train makes "
                              f"one agent: {PIPELINE_FLAGS[flag]}")


def _env_of_checkpoint(directory: Path) -> ExperimentConfig:
    """The defaults with the env an encoder checkpoint was pretrained on (its ``config.json`` provenance).

    The id is read from a file, so the module of a ``"module:Name"`` id must have been imported by the user
    (``--import MODULE``); nothing is imported here. A directory that is not a checkpoint is left to the command's
    own checks (it names the problem): the defaults are returned.
    """
    from gmc_rl.checkpoint import CONFIG_FILE
    from gmc_rl.env_ids import check_env_id
    from gmc_rl.io import read_json_object

    file = directory / CONFIG_FILE
    if not file.is_file():
        return ExperimentConfig()
    provenance = read_json_object(file, "checkpoint config", {}, ConfigError).get("provenance")
    if not isinstance(provenance, dict):  # another method's checkpoint format: its loader checks it
        return ExperimentConfig()
    env_id, env_kwargs = provenance.get("env_id"), provenance.get("env_kwargs", {})
    if not isinstance(env_id, str):
        raise ConfigError(f"{file} records no env id (provenance.env_id); pass --env ID")
    if not isinstance(env_kwargs, dict):
        raise ConfigError(f"{file}: provenance.env_kwargs must be a mapping, got {type(env_kwargs).__name__}")
    check_env_id(env_id, allow_import=False, key="provenance.env_id", source=file)
    return from_dict(ExperimentConfig, {"env_id": env_id, "env_kwargs": env_kwargs})


def _env_of_dataset(data: str) -> ExperimentConfig:
    """The defaults with the env (id and keyword arguments) a dataset was collected on (``--pretrain-data``)."""
    from gmc_rl.data import METADATA_FILE, MINARI_PREFIX, read_metadata
    from gmc_rl.env_ids import check_env_id

    if data.startswith(MINARI_PREFIX):
        from gmc_rl.minari_data import minari_env_id

        env_id, env_kwargs, source = minari_env_id(data[len(MINARI_PREFIX):]), {}, data
    else:
        metadata = read_metadata(data)
        env_id, env_kwargs = str(metadata["env_id"]), dict(metadata.get("env_kwargs") or {})
        source = str(Path(data) / METADATA_FILE)
    check_env_id(env_id, allow_import=False, key="env_id", source=source)
    return from_dict(ExperimentConfig, {"env_id": env_id, "env_kwargs": env_kwargs})


def _encoder_argument(args: argparse.Namespace, method: RepresentationMethod) -> str | None:
    """The encoder checkpoint directory given for ``method`` (its own flag or ``--encoder``), or None.

    Raises:
        ConfigError: a flag of another method, ``--encoder`` for a method without an encoder, or the checkpoint
            given twice.
    """
    given = {flag: getattr(args, _dest(flag)) for flag in (GENERIC_ENCODER_FLAG, *_own_flags())
             if getattr(args, _dest(flag), None) is not None}
    for flag, owner in _own_flags().items():
        if flag in given and owner is not method:
            raise ConfigError(f"{flag} is only used with --method {owner.name} (got --method {method.name})")
    if GENERIC_ENCODER_FLAG in given and not method.needs_encoder:
        raise ConfigError(f"{GENERIC_ENCODER_FLAG} is only used with a method that reads an encoder "
                          f"(got --method {method.name})")
    if len(given) > 1:
        raise ConfigError(f"give the encoder checkpoint once: {' or '.join(given)}")
    return next(iter(given.values()), None)


def _distill(args: argparse.Namespace, config: ExperimentConfig, method: str, seed: int, out: Path,
             encoder: str | None) -> Path:
    """``train --teacher``: the policy imitates the true-state agent (:mod:`gmc_rl.agents.distillation`) with the
    config's ``agent.distill_rounds`` and ``agent.distill_steps``."""
    from gmc_rl.agents.distillation import distill_agent

    return distill_agent(config, method, seed, out, args.teacher, encoder_dir=encoder,
                         progress_bar=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    from gmc_rl.agents import train_agent
    from gmc_rl.agents.agent_dir import AGENT_JSON, check_agent_files, read_agent_json
    from gmc_rl.checkpoint import resolve_device
    from gmc_rl.env_ids import IMPORT_FLAG, split_env_id

    out = Path(args.out)
    refuse_long_name(out, "--out", ConfigError)  # before it is probed or a parent made
    if out.is_dir():  # an agent.json or agent.zip replaced by a directory or a FIFO is named as such
        check_agent_files(out)
    stored = read_agent_json(out) if args.resume and (out / AGENT_JSON).is_file() else None
    config = args.experiment
    method = get_method(args.method or (str(stored["method"]) if stored else DEFAULT_METHOD))
    seed = args.seed if args.seed is not None else int(stored["seed"]) if stored else int(config.seeds[0])
    encoder = _encoder_argument(args, method)
    resolve_device(config.agent.device, "agent.device")  # --device cuda without CUDA: refused before pretraining
    if args.pretrain_data is not None:
        if method.pretrain is None:  # the method reads no encoder
            raise ConfigError(f"--pretrain-data is only used with a method that reads an encoder "
                              f"(got --method {method.name})")
        if encoder is None:
            raise ConfigError(f"--pretrain-data needs {method.encoder_flag} DIR: the directory to pretrain the "
                              f"{method.name} encoder into")
        print(f"pretraining the {method.name} encoder on {args.pretrain_data} into {encoder}")
        method.pretrain(config, args.pretrain_data, encoder, resume=True, progress=not args.no_progress)
    if args.teacher is not None:
        path = _distill(args, config, method.name, seed, out, encoder)
    else:
        path = train_agent(config, method.name, seed, out, encoder_dir=encoder, resume=args.resume,
                           progress_bar=not args.no_progress, verbose=args.verbose)
    if config.agent.action_fit_rounds > 0:
        from gmc_rl.agents.action_fit import ActionFitSettings, fit_agent

        fitted = fit_agent(path, ActionFitSettings.from_config(config.agent), progress=not args.no_progress)
        if fitted is not None:
            print(f"action fit ({config.agent.action_fit_rounds} rounds) saved in {fitted}")
    info = read_agent_json(path)
    print(f"agent ({info['method']}, {info['algo']}, seed {info['seed']}, {info['num_timesteps']} steps) "
          f"saved in {path}")
    module, _ = split_env_id(str(info["env_id"]))
    flag = f"{IMPORT_FLAG} {module} " if module else ""  # the agent.json of a "module:id" env needs its module
    print(f"evaluate it with: gmc-rl evaluate {flag}--agent {path}")
    return 0
