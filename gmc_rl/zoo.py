"""Run an rl-zoo3 script with gmc-rl's env ids registered: ``python -m gmc_rl.zoo SCRIPT ARGS...``.

``rl_zoo3.train`` and ``enjoy`` import gmc-rl themselves with ``--gym-packages gmc_rl``; ``record_video`` (and other
zoo scripts) have no such option and look the env id up before anything imports gmc-rl. This launcher imports
:mod:`gmc_rl` (which registers the ``gmc_rl/`` ids), then runs ``rl_zoo3.SCRIPT`` as ``python -m`` would, with the
remaining arguments. It needs the ``zoo`` extra (``pip install -e ".[zoo]"``).

It also makes latent runs self-contained. A latent hyperparameter file names its GMC encoder by a path
(``gmc_rl.wrappers.GMCLatent: {checkpoint_or_model: runs/zoo/pendulum_sound/gmc}``), which only resolves from the
directory training ran in. After ``train``, the launcher copies that encoder into the run's folder
(``<run>/<env>/encoder/``) and rewrites the run's saved ``config.yml`` to :class:`ZooRunLatent`, which reads the copy:
the run folder can then be moved or shared, and ``enjoy`` and ``record_video`` run through this launcher (which tells
:class:`ZooRunLatent` where the run lies) from any directory.

rl-zoo3 reads a run with ``yaml.UnsafeLoader`` and SB3's pickle-based ``load``; before ``enjoy``, ``record_video``,
``push_to_hub`` and ``train -i`` the launcher checks the run (:func:`check_zoo_run`) and, while the script runs,
keeps Python tags out of the YAML and every pickled model entry from being unpickled (:class:`_Guard`); see
docs/rl_zoo.md, "What the launcher checks before playing a run".

Example::

    python -m gmc_rl.zoo record_video --algo sac --env gmc_rl/PendulumSound-v0 -f runs/zoo/logs -n 300
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import gmc_rl  # noqa: F401  (registers the gmc_rl/ env ids)
from gmc_rl.agents.agent_dir import ENCODER_DIR, copy_encoder
from gmc_rl.checkpoint import checkpoint_dir
from gmc_rl.errors import CheckpointError, ConfigError
from gmc_rl.io import write_text_atomic
from gmc_rl.wrappers.latent import GMCLatent
from gmc_rl.zoo_checks import (  # noqa: F401  (re-exported: gmc_rl.zoo is where callers import them)
    _REFUSED_SCRIPTS,
    _RUN_SCRIPTS,
    ALLOW_PICKLE_FLAG,
    _Guard,
    _ZooConfigLoader,
    check_run_yaml,
    check_zoo_run,
)

USAGE = (
    "usage: python -m gmc_rl.zoo SCRIPT [ARGS...] [--allow-pickle]   (SCRIPT: an rl_zoo3 module, e.g. record_video, "
    "enjoy, train)\n  the run's config.yml/args.yml and model .zip are checked first and loaded without running "
    "code from them\n  --allow-pickle: let rl-zoo3 unpickle the run's vecnormalize.pkl / replay_buffer.pkl, which "
    "RUNS CODE from those files (only for runs you made yourself)"
)
RUN_ENV_VARIABLE = "GMC_RL_ZOO_RUN"
"""Set by the launcher to the folder of the zoo run a script loads (the one holding ``config.yml``); read by
:class:`ZooRunLatent` (an environment variable, so that env processes of a SubprocVecEnv see it too)."""
LATENT_WRAPPER = "gmc_rl.wrappers.GMCLatent"
RUN_LATENT_WRAPPER = "gmc_rl.zoo.ZooRunLatent"


class ZooRunLatent(GMCLatent):
    """:class:`~gmc_rl.wrappers.GMCLatent` on the encoder kept inside the zoo run being loaded.

    A packed run's ``config.yml`` names this wrapper instead of a checkpoint path, so that the run does not depend on
    the directory it was trained in. ``encoder`` is a folder name inside the run (``encoder``), never a path.
    """

    def __init__(self, env: gym.Env, encoder: str = ENCODER_DIR, modalities: Sequence[str] | None = None,
                 device: str = "cpu") -> None:
        if not isinstance(encoder, str) or encoder in ("", ".", "..") or Path(encoder).name != encoder:
            raise ConfigError(
                f"{RUN_LATENT_WRAPPER}: encoder must be a folder name inside the zoo run, got {encoder!r}")
        run = os.environ.get(RUN_ENV_VARIABLE)
        if not run:
            raise ConfigError(
                f"{RUN_LATENT_WRAPPER}: this zoo run keeps its GMC encoder inside its own folder, which only the "
                "gmc-rl launcher locates: run the script as `python -m gmc_rl.zoo SCRIPT ARGS` (e.g. python -m "
                "gmc_rl.zoo enjoy --algo sac --env ENV -f FOLDER)"
            )
        super().__init__(env, Path(run) / encoder, modalities=modalities, device=device)



def read_run_config(path: Path) -> dict[str, Any]:
    """A zoo run's saved hyperparameters (``config.yml``) as a dict; ConfigError if they cannot be read safely."""
    try:
        loader = _ZooConfigLoader(path.read_text(encoding="utf-8"))
        try:
            hyperparams = loader.get_single_data()
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"cannot read the zoo run's {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(hyperparams, dict):
        raise ConfigError(f"the zoo run's {path} does not hold a mapping of hyperparameters")
    return hyperparams


def pack_run_encoder(params_dir: str | os.PathLike) -> Path | None:
    """Copy a zoo run's GMC encoder into the run and point its ``config.yml`` at the copy; return the copy's folder.

    ``params_dir`` is the run's folder holding ``config.yml`` (``<folder>/<algo>/<env>_<N>/<env>``). The encoder is
    the ``gmc_rl.wrappers.GMCLatent`` entry of ``env_wrapper`` with a checkpoint path (resolved from the current
    directory, as training resolved it); it becomes ``gmc_rl.zoo.ZooRunLatent`` with the same modalities and device.
    Runs without such an entry (raw observations, or already packed) are left as they are (None).
    """
    params_dir = Path(params_dir)
    config_path = params_dir / "config.yml"
    hyperparams = read_run_config(config_path)
    wrappers = hyperparams.get("env_wrapper")
    entries: list[Any] = wrappers if isinstance(wrappers, list) else [wrappers]
    latent = [(i, entry) for i, entry in enumerate(entries) if isinstance(entry, dict) and LATENT_WRAPPER in entry]
    if not latent:
        return None
    if len(latent) > 1:
        raise ConfigError(f"{config_path} names {len(latent)} {LATENT_WRAPPER} wrappers; a run keeps one encoder")
    index, entry = latent[0]
    if not isinstance(entry[LATENT_WRAPPER], (dict, type(None))):
        raise ConfigError(f"{config_path}: the arguments of {LATENT_WRAPPER} must be a mapping")
    kwargs = dict(entry[LATENT_WRAPPER] or {})
    checkpoint = kwargs.pop("checkpoint_or_model", None)
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise ConfigError(f"{config_path}: {LATENT_WRAPPER} needs checkpoint_or_model, a checkpoint path")
    source = checkpoint_dir(checkpoint, "GMC checkpoint")
    encoder = copy_encoder(source, params_dir)
    entries[index] = {RUN_LATENT_WRAPPER: {"encoder": encoder.name, **kwargs}}
    hyperparams["env_wrapper"] = entries if isinstance(wrappers, list) else entries[0]
    write_text_atomic(config_path, yaml.safe_dump(hyperparams, sort_keys=True))
    return encoder


def _run_args(args: Sequence[str], default_folder: str) -> argparse.Namespace:
    """The zoo's own --algo, --env, -f and --exp-id from a script's arguments (the rest are the script's)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("-f", "--folder", default=default_folder)
    parser.add_argument("--exp-id", type=int, default=0)
    parser.add_argument("-optimize", "--optimize-hyperparameters", action="store_true")
    return parser.parse_known_args(list(args))[0]


def _run_folder(folder: str, algo: str, env: str, exp_id: int) -> Path:
    """The folder rl-zoo3 gives run ``exp_id`` (0: the latest) of ``algo`` on ``env`` under ``folder``."""
    from rl_zoo3.utils import EnvironmentName, get_latest_run_id

    env_name = EnvironmentName(env)
    if exp_id == 0:
        exp_id = get_latest_run_id(os.path.join(folder, algo), env_name)
    return Path(folder, algo, f"{env_name}_{exp_id}", env_name)



def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rl_zoo3.<argv[0]>`` with ``argv[1:]`` as its command line; 2 with a message when it cannot."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    script = args[0]
    if not script.isidentifier():
        print(f"{USAGE}\nerror: {script!r} is not a module name", file=sys.stderr)
        return 2
    if importlib.util.find_spec("rl_zoo3") is None:
        print('error: rl_zoo3 is not installed; install the zoo extra: pip install -e ".[zoo]"', file=sys.stderr)
        return 2
    module = f"rl_zoo3.{script}"
    if importlib.util.find_spec(module) is None:
        print(f"error: rl_zoo3 has no script {script!r} (e.g. train, enjoy, record_video)", file=sys.stderr)
        return 2
    if script in _REFUSED_SCRIPTS:
        print(f"error: the launcher does not run rl_zoo3.{script}: {_REFUSED_SCRIPTS[script]}", file=sys.stderr)
        return 2
    allow_pickle = ALLOW_PICKLE_FLAG in args[1:]
    args = [script, *(arg for arg in args[1:] if arg != ALLOW_PICKLE_FLAG)]
    training = script == "train"
    if script in _RUN_SCRIPTS or training:
        try:
            check_zoo_run(script, args[1:], allow_pickle=allow_pickle)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    run = _run_args(args[1:], default_folder="logs" if training else "rl-trained-agents")
    if training:
        previous = _run_folder(run.folder, run.algo, run.env, 0)
    else:
        os.environ[RUN_ENV_VARIABLE] = str(_run_folder(run.folder, run.algo, run.env, run.exp_id).resolve())
    sys.argv = [module, *args[1:]]
    try:
        with _Guard():
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if training and not run.optimize_hyperparameters:
        trained = _run_folder(run.folder, run.algo, run.env, 0)
        if trained != previous and (trained / "config.yml").is_file():
            try:
                encoder = pack_run_encoder(trained)
            except (ConfigError, CheckpointError, OSError) as exc:
                print(f"error: the run {trained.parent} was saved, but its GMC encoder was not copied into it: {exc}",
                      file=sys.stderr)
                return 2
            if encoder is not None:
                print(f"gmc_rl.zoo: copied the GMC encoder into {encoder}; {trained / 'config.yml'} now reads it "
                      f"({RUN_LATENT_WRAPPER}): run enjoy and record_video through python -m gmc_rl.zoo")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
