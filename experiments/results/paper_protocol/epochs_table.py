"""Issue 26, deliverable 3: the table epochs x single-sensor rule -> worst single-sensor loss per pretraining seed.

Reads the `gmc-rl evaluate` results of d3.sh (DIR/eval<E>_s<S>/results.json, rows gmc = projection and
gmc-mean = the paper's plain mean) and the alignment of each encoder (DIR/align<E>_s<S>.json from `gmc-rl align
--json`), prints Markdown and writes the numbers as JSON:

    python experiments/results/paper_protocol/epochs_table.py /work/scratch/i26_d3 \
        --out experiments/results/paper_protocol/epochs.json > experiments/results/paper_protocol/epochs.md

The loss is that of the mean episode return against the same agent's with every sensor, as a fraction of its
magnitude (gmc_rl.evaluate.relative_loss; positive = worse); "worst" is the larger of image alone and sound alone.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from gmc_rl.evaluate import relative_loss, t_critical

RULES = {"gmc": "projection", "gmc-mean": "mean"}
SENSORS = ("image", "sound")


def paired_half_width(complete: list[float], other: list[float]) -> float:
    """95 % half width of the loss from the paired per-episode differences (both conditions start from the same
    states: the same evaluation seeds), as a fraction of |mean complete return|."""
    diff = np.asarray(complete) - np.asarray(other)
    return float(t_critical(diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size) / abs(np.mean(complete)))


def cell(results: dict, row: str) -> dict:
    table = results["results"][row]
    complete = table["complete"]["episode_return"]["mean"]
    returns = {c: [r for unit in table[c]["per_seed"] for r in unit["returns"]] for c in ("complete", *SENSORS)}
    losses = {s: relative_loss(complete, table[s]["episode_return"]["mean"]) for s in SENSORS}
    half_widths = {s: paired_half_width(returns["complete"], returns[s]) for s in SENSORS}
    worst = max(losses, key=losses.get)
    return {"complete_return": complete, "losses": losses, "loss_half_width95": half_widths, "worst_sensor": worst,
            "worst_loss": losses[worst], "per_step": {c: table[c]["per_step_reward"]["mean"] for c in returns}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    found: dict = {}
    for path in sorted(args.dir.glob("eval*_s*/results.json")):
        epochs, seed = path.parent.name.removeprefix("eval").split("_s")
        results = json.loads(path.read_text())
        for row, rule in RULES.items():
            found.setdefault(int(epochs), {}).setdefault(rule, {})[int(seed)] = cell(results, row)
        align = args.dir / f"align{epochs}_s{seed}.json"
        if align.is_file():
            found[int(epochs)].setdefault("alignment", {})[int(seed)] = json.loads(align.read_text())
    args.out.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    seeds = sorted({s for by_rule in found.values() for rule in RULES.values() for s in by_rule.get(rule, {})})
    print("| pretraining epochs | rule | " + " | ".join(f"pretraining seed {s}" for s in seeds) + " |")
    print("|---|---|" + "---|" * len(seeds))
    for epochs in sorted(found):
        for rule in RULES.values():
            cells = []
            for s in seeds:
                c = found[epochs].get(rule, {}).get(s)
                cells.append("not run" if c is None else
                             f"{100 * c['worst_loss']:+.1f} ± {100 * c['loss_half_width95'][c['worst_sensor']]:.1f} % "
                             f"({c['worst_sensor']}; complete {c['per_step']['complete']:.3f}/step)")
            print(f"| {epochs} | {rule} | " + " | ".join(cells) + " |")
    print()
    print("| pretraining epochs | pretraining seed | retrieval@1 image / sound | positive cosine image / sound |")
    print("|---|---|---|---|")
    for epochs in sorted(found):
        for s, align in sorted(found[epochs].get("alignment", {}).items()):
            r, p = align["retrieval_at_1"], align["pos_cos"]
            print(f"| {epochs} | {s} | {r['image']:.3f} / {r['sound']:.3f} | {p['image']:.4f} / {p['sound']:.4f} |")


if __name__ == "__main__":
    main()
