"""``gmc-rl align``: per-modality alignment of a pretrained GMC model on a dataset split, as a table."""

from __future__ import annotations

import argparse
import json

HELP = "show how well each modality's latent aligns with the complete latent (retrieval@1, cosines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="GMC checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--data", required=True, help="dataset directory written by `gmc-rl collect`")
    parser.add_argument("--split", default="val", choices=["train", "val"], help="dataset split (default: val)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="retrieval among shuffled batches of this size (chance = 1/batch size; default 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch shuffle")
    parser.add_argument("--temperature", type=float, default=None,
                        help="also report the GMC loss at this temperature (default: the one used in pretraining)")
    parser.add_argument("--plot", default=None, help="also save a PCA plot of the latents to this PNG")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gmc_rl.checkpoint import load_gmc
    from gmc_rl.data import load_dataset
    from gmc_rl.errors import CheckpointError, ConfigError
    from gmc_rl.metrics import evaluate_alignment, plot_latents_pca
    from gmc_rl.modalities import compare_specs

    if args.batch_size < 2:
        raise ConfigError(f"--batch-size must be at least 2, got {args.batch_size}")
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
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    table = Table(title=f"GMC alignment on {args.split} ({report.n_samples} samples, batches of {report.batch_size}; "
                        f"chance retrieval@1 = {1 / report.batch_size:.3f})")
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
    console = Console()
    console.print(table)
    if args.plot:
        console.print(f"PCA plot saved to {args.plot}")
    return 0
