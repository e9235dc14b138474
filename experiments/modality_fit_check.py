"""What the modality fit (``pretrain.modality_fit_epochs``) does for the agents of an existing pipeline run.

The fit trains only the modality encoders, so the complete latent, and with it every agent trained on complete
observations, is what it was: the run's agents need no retraining to be evaluated with a fitted encoder. This
script fits a copy of the run's GMC encoder (:func:`gmc_rl.modality_fit.fit_modality_encoders`, the code the
pipeline runs) and evaluates each given agent with an evaluation loop of its own
(:func:`gmc_rl.experiments.independent_returns.mean_episode_return`: reset seeds 1000 + i, deterministic
actions): every sensor once, then each modality alone with the original and the fitted encoder, each under the
projection onto reference latents (when the encoder holds them) and under the plain mean.

Example::

    OMP_NUM_THREADS=1 python experiments/modality_fit_check.py RUN_DIR --agents 0 1 2 --epochs 5 --episodes 20 \\
        --json fit_check.json
    python experiments/modality_fit_check.py --summarize fit_check.json   # the tables of experiments/results
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import gmc_rl  # noqa: F401  (registers the gmc_rl/ ids)
from gmc_rl.agents import load_agent
from gmc_rl.data import load_dataset
from gmc_rl.experiments.independent_returns import mean_episode_return
from gmc_rl.io import write_json_atomic
from gmc_rl.modality_fit import fit_modality_encoders


def fitted_copy(run_dir: Path, encoder: Any, epochs: int, batch_size: int, lr: float, seed: int
                ) -> tuple[Any, dict[str, Any]]:
    """A copy of ``encoder`` fitted on the training split of ``run_dir/data``, and the fit's report."""
    dataset = load_dataset(run_dir / "data")
    observations = {split: {name: torch.from_numpy(array) for name, array in dataset.observations(split).items()}
                    for split in ("train", "val")}
    fitted = copy.deepcopy(encoder)
    report = fit_modality_encoders(fitted, observations["train"], observations["val"], epochs, batch_size, lr, seed)
    return fitted, report.to_json()


def same_weights(first: Any, second: Any) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def check_agent(agent_dir: Path, fitted: Any, reference: Any, episodes: int) -> dict[str, float]:
    """Mean episode returns of one agent: ``complete``, then ``<encoder>-<rule>:<modality>`` for each modality."""
    agent = load_agent(agent_dir)
    if not same_weights(agent.encoder, reference):
        raise SystemExit(f"{agent_dir}: its encoder is not the one the first agent's was fitted from")
    env = gym.make(agent.env_id, **agent.env_kwargs)
    returns = {"complete": mean_episode_return(env, agent.encoder, agent.model, None, episodes)}
    rules = ["mean"] if agent.encoder.reference_latents is None else ["projection", "mean"]
    for label, encoder in (("original", agent.encoder), ("fitted", fitted)):
        for rule in rules:
            with encoder.encoding_rule(rule):
                for name in agent.modalities:
                    returns[f"{label}-{rule}:{name}"] = mean_episode_return(env, encoder, agent.model, [name],
                                                                            episodes)
    env.close()
    return returns


def loss_percent(complete: float, value: float) -> float:
    """The share of the complete-observation return lost, in percent (negative: a gain)."""
    return 100 * (complete - value) / abs(complete)


def summarize(paths: Sequence[str]) -> str:
    """Markdown tables of result files of this script: per agent the loss of each modality alone with the original
    encoder (its own rule) and with the fitted one under the plain mean, then per encoder and rule how many agent x
    modality pairs lose more than 10 %."""
    lines = []
    for path in paths:
        result = json.loads(Path(path).read_text())
        agents = result["agents"]
        first = next(iter(agents.values()))
        names = sorted({key.split(":")[1] for key in first if key != "complete"})
        combos = sorted({key.split(":")[0] for key in first if key != "complete"})
        own = "original-projection" if "original-projection" in combos else "original-mean"
        fit = result["fit"]
        cosines = ", ".join(f"{m} {fit['val_cosine_before'][m]:.4f} -> {fit['val_cosine_after'][m]:.4f}"
                            for m in names)
        lines += [f"**{path}** ({result['episodes']} episodes per condition; validation cosine {cosines})", "",
                  "| agent | complete | " + " | ".join(f"{m}: {own} / fitted-mean" for m in names) + " |",
                  "|---|---:|" + "---:|" * len(names)]
        for seed, returns in agents.items():
            base = returns["complete"]
            cells = [f"{loss_percent(base, returns[f'{own}:{m}']):+.1f} % / "
                     f"{loss_percent(base, returns[f'fitted-mean:{m}']):+.1f} %" for m in names]
            lines.append(f"| {seed} | {base:.1f} | " + " | ".join(cells) + " |")
        lines.append("")
        for combo in combos:
            losses = [loss_percent(r["complete"], r[f"{combo}:{m}"]) for r in agents.values() for m in names]
            lines.append(f"- {combo}: {sum(loss > 10 for loss in losses)} of {len(losses)} pairs lose more than "
                         f"10 %; mean {sum(losses) / len(losses):+.1f} %, worst {max(losses):+.1f} %")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--summarize", nargs="+", default=None, metavar="JSON",
                        help="print Markdown tables of result files of this script instead of running")
    parser.add_argument("run", type=Path, nargs="?", help="a pipeline run directory (with data/ and agents/)")
    parser.add_argument("--method", default="gmc", help="the encoder method of the agents (default gmc)")
    parser.add_argument("--agents", type=int, nargs="+", default=[0], help="agent seeds (default 0)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the fit (default 5)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per condition (default 20)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize))
        return 0
    if args.run is None:
        parser.error("give a pipeline run directory (or --summarize JSON...)")
    torch.set_num_threads(1)
    agent_dirs = [args.run / "agents" / f"{args.method}-seed{seed}" for seed in args.agents]
    first = load_agent(agent_dirs[0])
    settings = first.config.pretrain
    fitted, fit = fitted_copy(args.run, first.encoder, args.epochs, settings.batch_size, settings.lr, settings.seed)
    cosines = ", ".join(f"{m} {fit['val_cosine_before'][m]:.4f} -> {fit['val_cosine_after'][m]:.4f}"
                        for m in fit["val_cosine_after"])
    print(f"fit ({args.epochs} epochs): validation cosine to the complete latent {cosines}", flush=True)
    results: dict[str, Any] = {"run": str(args.run), "fit": fit, "episodes": args.episodes, "agents": {}}
    for seed, agent_dir in zip(args.agents, agent_dirs):
        returns = results["agents"][str(seed)] = check_agent(agent_dir, fitted, first.encoder, args.episodes)
        base = returns["complete"]
        print(f"seed {seed}: complete {base:.1f} | " + " ".join(
            f"{key} {value:.1f} ({100 * (base - value) / abs(base):+.1f} %)"
            for key, value in returns.items() if key != "complete"), flush=True)
    if args.json:
        write_json_atomic(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
