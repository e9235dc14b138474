"""``gmc-rl align``: per-modality alignment of a pretrained GMC model on a dataset split, as a table."""

from __future__ import annotations

import argparse
import json

HELP = ("show how well each modality's latent aligns with the complete latent (retrieval@1, cosines on a dataset; "
        "or, with --agent, the transfer diagnostics on the states a trained agent visits)")

EPILOG = """\
examples:
  gmc-rl align --model runs/quick/gmc --data runs/quick/data   # alignment (and state probe) on the validation split
  gmc-rl align --agent runs/quick/agents/gmc-seed0                     # transfer diagnostics of a trained agent

The dataset metrics describe the behaviour policy's states. The transfer diagnostics are measured on the states
the agent visits with every sensor: the latent gap ||z_S - z_complete||, the action gap |pi(z_S) - pi(z_complete)|
(a fraction of half the action range), and the closed-loop drift of paired episodes (the same start run with every
sensor and with the subset S: the mean distance between the complete latents of the two trajectories). A drift
well above the latent gap means that the agent's behaviour changes without the sensor, not only its input.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--model", help="GMC checkpoint directory (config.json + model.safetensors); not with --agent")
    parser.add_argument("--data", help="dataset directory written by `gmc-rl collect`; not with --agent")
    parser.add_argument("--agent", default=None,
                        help="a trained agent directory (GMC, MVAE or another method with an encoder): report its "
                             "transfer diagnostics instead (the dataset flags --model, --data, --split, "
                             "--batch-size, --temperature and --plot do not apply then)")
    parser.add_argument("--episodes", type=int, default=10,
                        help="with --agent: paired episodes per modality subset")
    parser.add_argument("--horizon", type=int, default=100,
                        help="with --agent: steps of each paired episode for the drift")
    parser.add_argument("--split", default="val", choices=["train", "val"], help="dataset split")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="retrieval among shuffled batches of this size (chance = 1/batch size; a size "
                             "above the split's is the whole split)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the batch shuffle (with --agent: of the first paired episode)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="also report the GMC loss at this temperature (default: the one used in pretraining)")
    parser.add_argument("--plot", default=None, help="also save a PCA plot of the latents to this PNG")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


DATASET_FLAGS = ("--model", "--data", "--split", "--batch-size", "--temperature", "--plot")
"""Flags of the alignment on a dataset; the transfer diagnostics (``--agent``) read none of them."""

AGENT_FLAGS = ("--episodes", "--horizon")
"""Flags of the transfer diagnostics (``--agent``); the alignment on a dataset reads none of them."""


def refuse_other_mode_flags(args: argparse.Namespace) -> None:
    """Refuse flags the chosen mode would ignore: with ``--agent`` the diagnostics use the agent's own encoder and
    env, so ``--model OTHER --agent A`` would silently report A's encoder (and ``--plot`` would write nothing);
    without it ``--episodes``/``--horizon`` have nothing to run. ``args.given_flags`` lists the flags written on
    the command line (set by :func:`gmc_rl.cli._run_command`; a flag given at its default counts too).

    Raises:
        ConfigError: naming every such flag and the mode that ignores it.
    """
    from gmc_rl.errors import ConfigError

    given = set(getattr(args, "given_flags", ()))
    stray = [flag for flag in (DATASET_FLAGS if args.agent is not None else AGENT_FLAGS) if flag in given]
    if not stray:
        return
    one = len(stray) == 1
    if args.agent is not None:
        why = ("with --agent: the transfer diagnostics use the agent's own encoder on its env, no dataset or other "
               f"model; leave {'it' if one else 'them'} out, or drop --agent for the alignment of --model on --data")
    else:
        why = (f"without --agent: {'it sets' if one else 'they set'} the transfer diagnostics of a trained agent; "
               f"leave {'it' if one else 'them'} out, or give --agent DIR")
    raise ConfigError(f"{', '.join(stray)} {'does' if one else 'do'} not apply {why}")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gmc_rl.checkpoint import load_gmc
    from gmc_rl.dataset_sources import load_dataset
    from gmc_rl.errors import CheckpointError, ConfigError
    from gmc_rl.metrics import check_png_out, evaluate_alignment, plot_latents_pca
    from gmc_rl.modalities import compare_specs
    from gmc_rl.state_probe import probe_dataset_split

    refuse_other_mode_flags(args)
    if args.agent is not None:
        return _diagnose(args)
    if args.model is None or args.data is None:
        raise ConfigError("gmc-rl align needs --model and --data (alignment on a dataset) or --agent (diagnostics)")
    if args.batch_size < 2:
        raise ConfigError(f"--batch-size must be at least 2, got {args.batch_size}")
    if args.plot:
        check_png_out(args.plot, "--plot")  # before anything is computed
    model = load_gmc(args.model, device=args.device)
    dataset = load_dataset(args.data)
    problems = compare_specs(model.specs, dataset.specs)
    if problems:
        raise CheckpointError(f"model {args.model} does not fit dataset {args.data}: " + "; ".join(problems))
    temperature = args.temperature if args.temperature is not None else model.provenance.get("temperature")
    joints = model.provenance.get("loss") == "joints_as_negatives"
    observations = dataset.observations(args.split)
    report = evaluate_alignment(model, observations, args.batch_size, args.seed, temperature, joints)
    if args.plot:
        plot_latents_pca(model, observations, args.plot, seed=args.seed)
    probe = probe_dataset_split(model, dataset, args.split)  # None unless the dataset records true states
    if args.json:
        print(json.dumps({**report.to_json(), "chance_retrieval_at_1": report.chance_retrieval_at_1,
                          "state_probe": None if probe is None else probe.to_json()}, indent=2))
        return 0
    console = Console()
    if report.batch_size < args.batch_size:
        console.print(f"--batch-size {args.batch_size} is more than the {report.batch_size} samples of the "
                      f"{args.split} split: retrieval is among all {report.batch_size}", markup=False, soft_wrap=True)
    table = Table(title=f"GMC alignment on {args.split} ({report.n_samples} samples, batches of {report.batch_size}; "
                        f"chance retrieval@1 = {report.chance_retrieval_at_1:.3f})")
    table.add_column("modality")
    table.add_column("retrieval@1", justify="right")
    table.add_column("positive cos", justify="right")
    table.add_column("negative cos", justify="right")
    if report.loss_per_modality is not None:
        table.add_column(f"loss (tau={temperature:g})", justify="right")
    for name in report.modalities:
        row = [name, f"{report.retrieval_at_1[name]:.3f}", f"{report.pos_cos[name]:.3f}", f"{report.neg_cos[name]:.3f}"]
        if report.loss_per_modality is not None:
            row.append(f"{report.loss_per_modality[name]:.3f}")
        table.add_row(*row)
    console.print(table)
    if probe is not None:
        console.print(f"State probe on {args.split} (R^2 of a k-NN (linear) regression per state variable):",
                      markup=False)
        console.print(probe.table(), markup=False, highlight=False)
        for line in probe.warnings():
            console.print(f"warning: {line}", markup=False, soft_wrap=True)
    if args.plot:
        console.print(f"PCA plot saved to {args.plot}")
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    """``--agent``: the transfer diagnostics of a trained agent that reads an encoder (GMC, MVAE, ...), for every
    proper subset of its modalities."""
    from rich.console import Console
    from rich.table import Table

    from gmc_rl.agents import load_agent
    from gmc_rl.evaluate import format_loss
    from gmc_rl.pipeline import diagnose_agent
    from gmc_rl.wrappers.conditions import all_subset_conditions

    agent = load_agent(args.agent, device=args.device if args.device != "auto" else "cpu")
    report = diagnose_agent(agent, all_subset_conditions(agent.modalities), episodes=args.episodes,
                            horizon=args.horizon, seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = Table(title=f"Transfer diagnostics of {args.agent} ({args.episodes} paired episodes, first "
                        f"{args.horizon} steps; seeds {args.seed}..{args.seed + args.episodes - 1})")
    for column in ("modalities", "latent gap", "action gap", "drift", "reward loss (paired episodes)"):
        table.add_column(column, justify="left" if column == "modalities" else "right")
    for subset, gaps in report.items():
        table.add_row(subset, f"{gaps['latent_gap']:.3f}", f"{gaps['action_gap']:.3f}", f"{gaps['drift']:.3f}",
                      format_loss(gaps["reward_loss"]))
    Console().print(table)
    return 0
