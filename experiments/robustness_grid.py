"""Check GMC agents for single-sensor robustness with an evaluation loop of its own, and relate the losses to the
transfer diagnostics.

For every agent directory given (``RUN_DIR/agents/gmc-seed<N>`` of pipeline runs), this script

1. evaluates the agent with its own episode loop - plain ``gymnasium.make`` envs, the agent's frozen GMC encoder
   (``model.encode(obs, modalities)``) and its SB3 policy, no gmc-rl wrapper or evaluation harness - with complete
   observations and with each single modality, on evaluation seeds that the pipeline does not use (1000 + i);
   each episode's score is its reward sum over its length (the paper's per-step reward);
2. computes the transfer diagnostics of :func:`gmc_rl.transfer.diagnose_transfer` (latent gap and action gap on
   the visited states, closed-loop drift of paired episodes);
3. prints one row per agent and modality - the loss against complete with the 95 % interval of the paired
   per-episode differences (both conditions start from the same states), whether it is above 10 %, and each
   diagnostic - then, per diagnostic, how well it separates the losses (rank correlation, and the best threshold's
   agreement with the measured losses);
4. writes everything to ``--out`` (JSON) and the same tables as Markdown next to it (``.md``).

Example::

    OMP_NUM_THREADS=1 python experiments/robustness_grid.py runs/grid/*/agents/gmc-seed* --episodes 50 \\
        --out experiments/results/robustness_grid/quick.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import gmc_rl  # noqa: F401  (registers the gmc_rl/ ids)
from gmc_rl.agents import load_agent
from gmc_rl.config import PretrainConfig
from gmc_rl.data import load_dataset
from gmc_rl.evaluate import LOSS_THRESHOLD, relative_loss, sb3_predictor, t_critical
from gmc_rl.io import write_json_atomic, write_text_atomic
from gmc_rl.pretrain import reference_latents
from gmc_rl.transfer import diagnose_transfer

DIAGNOSTICS = ("latent_gap", "action_gap", "drift", "reward_loss")
EVAL_SEED_OFFSET = 1000


def evaluate(agent: Any, modalities: list[str] | None, episodes: int, seed: int) -> list[float]:
    """Per-episode per-step rewards of ``episodes`` episodes run side by side, the policy fed ``modalities``."""
    envs_ = [gym.make(agent.env_id, **agent.env_kwargs) for _ in range(episodes)]
    observations = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs_)]
    totals, lengths = np.zeros(episodes), np.zeros(episodes, dtype=int)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        batch = {name: np.stack([obs[name] for obs in observations]) for name in observations[0]}
        with torch.no_grad():
            latents = agent.encoder.encode(batch, modalities).cpu().numpy()
        actions, _ = agent.model.predict(latents, deterministic=True)
        for i in np.flatnonzero(running):
            observations[i], reward, terminated, truncated, _ = envs_[i].step(actions[i])
            totals[i] += reward
            lengths[i] += 1
            running[i] = not (terminated or truncated)
    for env in envs_:
        env.close()
    return list(totals / lengths)


def add_reference_latents(encoder: Any, data_dir: Path) -> None:
    """Give a GMC model without reference latents the ones pretraining with the default settings would store."""
    settings = PretrainConfig()
    train = load_dataset(data_dir).train
    observations = {name: torch.from_numpy(train[name]) for name in encoder.modalities}
    seed = int(encoder.provenance.get("pretrain_seed", 0))
    encoder.set_reference_latents(reference_latents(encoder, observations, settings.reference_latents, seed),
                                  settings.reference_neighbours)


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation (ties get their mean rank)."""
    def ranks(values: list[float]) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        out = np.empty(len(values))
        sorted_values = np.asarray(values)[order]
        i = 0
        while i < len(values):
            j = i
            while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
                j += 1
            out[order[i:j + 1]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def best_threshold(values: list[float], failed: list[bool]) -> tuple[float, int]:
    """The threshold t for "predicted loss: value > t" that agrees with most measured outcomes, and that count."""
    candidates = sorted(set(values))
    cuts = [candidates[0] - 1.0] + [(a + b) / 2 for a, b in zip(candidates, candidates[1:])] + [candidates[-1]]
    scored = [(sum((v > cut) == f for v, f in zip(values, failed)), cut) for cut in cuts]
    agree, cut = max(scored, key=lambda item: (item[0], -item[1]))
    return cut, agree


def summarize(paths: list[Path]) -> str:
    """One Markdown row per agent from result files of this script: its loss with each sensor alone (± 95 %)."""
    rows = [row for path in paths for row in json.loads(path.read_text())["rows"]]
    agents = list(dict.fromkeys(row["agent"] for row in rows))
    modalities = list(dict.fromkeys(row["modality"] for row in rows))
    lines = ["| agent | complete | " + " | ".join(f"{m} only: loss" for m in modalities) + " |",
             "|---|---:|" + "---:|" * len(modalities)]
    for agent in agents:
        mine = {row["modality"]: row for row in rows if row["agent"] == agent}
        cells = [f"{100 * mine[m]['loss']:+.1f} ± {100 * mine[m]['loss_ci95']:.1f} %"
                 + (" **(> 10 %)**" if mine[m]["failed"] else "") if m in mine else "–" for m in modalities]
        complete = next(iter(mine.values()))["complete"]
        name = f"{Path(agent).parents[1].name}/{Path(agent).name}"
        lines.append(f"| {name} | {complete:.3f} | " + " | ".join(cells) + " |")
    complete = [next(row["complete"] for row in rows if row["agent"] == agent) for agent in agents]
    spread = [f"complete {np.mean(complete):.3f} (agents {min(complete):.3f} to {max(complete):.3f})"]
    for m in modalities:
        values = [row["subset"] for row in rows if row["modality"] == m]
        losses = [100 * row["loss"] for row in rows if row["modality"] == m]
        spread.append(f"{m} only {np.mean(values):.3f} (loss {np.mean(losses):+.1f} %, agents {min(losses):+.1f} to "
                      f"{max(losses):+.1f} %)")
    failed = sum(row["failed"] for row in rows)
    lines += ["", f"Mean per-step reward over the {len(agents)} agents: " + "; ".join(spread) + ".", "",
              f"{failed} of {len(rows)} agent x sensor pairs lose more than {100 * LOSS_THRESHOLD:.0f} %.", "",
              "| diagnostic | rank correlation with the loss | best threshold agrees on |", "|---|---:|---:|"]
    for key in DIAGNOSTICS:
        values = [row[key] for row in rows]
        rho = spearman(values, [row["loss"] for row in rows])
        _, agree = best_threshold(values, [row["failed"] for row in rows])
        lines.append(f"| {key} | {'n/a' if math.isnan(rho) else f'{rho:+.2f}'} | {agree} of {len(rows)} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--summarize":
        print(summarize([Path(p) for p in sys.argv[2:]]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="python experiments/robustness_grid.py --summarize A.json [B.json ...] "
                                            "prints one row per agent from result files")
    parser.add_argument("agents", nargs="+", help="GMC agent directories (RUN_DIR/agents/gmc-seed<N>)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per condition (default 50)")
    parser.add_argument("--diagnostic-episodes", type=int, default=10, help="paired episodes of the diagnostics")
    parser.add_argument("--horizon", type=int, default=100, help="steps of the paired episodes (default 100)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--reference-data", type=Path, default=None,
                        help="for encoders pretrained without reference latents: build them as pretraining does, "
                             "from REFERENCE_DATA/<run dir name>/data (its training split, pretrain seed and count)")
    parser.add_argument("--paper-encoding", action="store_true",
                        help="encode modality subsets with the paper's plain mean, ignoring the checkpoint's "
                             "reference latents (the same agents, without the projection)")
    args = parser.parse_args()

    rows = []
    for path in args.agents:
        agent = load_agent(path)
        if agent.encoder is None:
            raise SystemExit(f"{path}: not an encoder agent (method {agent.method})")
        if args.paper_encoding:
            agent.encoder.set_reference_latents(None)
        elif args.reference_data is not None:
            add_reference_latents(agent.encoder, args.reference_data / Path(path).parents[1].name / "data")
        subsets = [[name] for name in agent.encoder.modalities]
        seed = EVAL_SEED_OFFSET
        complete = evaluate(agent, None, args.episodes, seed)
        diagnostics = diagnose_transfer(agent.encoder, sb3_predictor(agent.model),
                                        functools.partial(gym.make, agent.env_id, **agent.env_kwargs), subsets,
                                        episodes=args.diagnostic_episodes, horizon=args.horizon, seed=seed)
        for subset in subsets:
            scores = evaluate(agent, subset, args.episodes, seed)
            loss = relative_loss(float(np.mean(complete)), float(np.mean(scores)))
            # Both conditions start from the same states (same seeds): the CI of the loss comes from the paired
            # per-episode differences, far narrower than the spread of either condition.
            differences = np.asarray(complete) - np.asarray(scores)
            half_width = t_critical(len(differences) - 1) * differences.std(ddof=1) / math.sqrt(len(differences))
            loss_ci = half_width / abs(float(np.mean(complete)))
            row = {"agent": str(path), "modality": subset[0], "complete": float(np.mean(complete)),
                   "subset": float(np.mean(scores)), "subset_std": float(np.std(scores)),
                   "complete_std": float(np.std(complete)), "loss": loss, "loss_ci95": float(loss_ci),
                   "failed": bool(loss > LOSS_THRESHOLD),
                   **{key: diagnostics[subset[0]][key] for key in DIAGNOSTICS}}
            rows.append(row)
            print(f"{path} {subset[0]:>6}: complete {row['complete']:+.3f} subset {row['subset']:+.3f} "
                  f"loss {100 * loss:+6.1f} ± {100 * loss_ci:4.1f} %{'  LOSS' if row['failed'] else ''} | "
                  + " ".join(f"{key} {row[key]:.4f}" for key in DIAGNOSTICS), flush=True)

    failed = [row["failed"] for row in rows]
    summary = {}
    print(f"\n{sum(failed)} of {len(rows)} agent x modality pairs lose more than {100 * LOSS_THRESHOLD:.0f} %")
    for key in DIAGNOSTICS:
        values = [row[key] for row in rows]
        rho = spearman(values, [row["loss"] for row in rows])
        cut, agree = best_threshold(values, failed)
        summary[key] = {"spearman_with_loss": rho, "best_threshold": cut, "agreement": agree, "pairs": len(rows)}
        rho_text = "nan" if math.isnan(rho) else f"{rho:+.2f}"
        print(f"{key:>12}: rank correlation with the loss {rho_text}; best threshold {cut:.4f} agrees on "
              f"{agree} of {len(rows)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
        write_json_atomic(args.out, {"settings": settings, "rows": rows, "summary": summary})
        write_text_atomic(args.out.with_suffix(".md"), markdown(rows, summary, args))


def markdown(rows: list[dict[str, Any]], summary: dict[str, Any], args: argparse.Namespace) -> str:
    """The rows and the predictor summary as Markdown tables (what the README quotes)."""
    encoding = "the paper's plain mean" if args.paper_encoding else "the checkpoints' encoding"
    lines = [f"Per-step reward over {args.episodes} episodes per condition (seeds {EVAL_SEED_OFFSET}+), partial "
             f"observations encoded with {encoding}; loss = how much worse than complete, ± the 95 % interval of the "
             "paired per-episode differences.", "",
             "| agent | sensor | complete | sensor only | loss | latent gap | action gap | drift | reward loss, "
             f"{args.horizon} paired steps |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        flag = " **(> 10 %)**" if row["failed"] else ""
        lines.append(f"| {row['agent']} | {row['modality']} | {row['complete']:.3f} | {row['subset']:.3f} | "
                     f"{100 * row['loss']:+.1f} ± {100 * row['loss_ci95']:.1f} %{flag} | {row['latent_gap']:.3f} | "
                     f"{row['action_gap']:.3f} | {row['drift']:.3f} | {100 * row['reward_loss']:+.1f} % |")
    lines += ["", f"{sum(row['failed'] for row in rows)} of {len(rows)} agent x sensor pairs lose more than "
              f"{100 * LOSS_THRESHOLD:.0f} %.", "", "| diagnostic | rank correlation with the loss | best threshold | "
              "agrees with the measured outcome |", "|---|---:|---:|---:|"]
    for key, item in summary.items():
        rho = "n/a" if math.isnan(item["spearman_with_loss"]) else f"{item['spearman_with_loss']:+.2f}"
        lines.append(f"| {key} | {rho} | {item['best_threshold']:.4f} | {item['agreement']} of {item['pairs']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
