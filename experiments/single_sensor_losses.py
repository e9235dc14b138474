"""Single-sensor losses per agent, and how many agent x sensor pairs lose more than a threshold, from result files.

Reads either kind of file gmc-rl's runs write:

- an independent-loop JSON of ``experiments/independent_returns.py --json`` (agent -> mean return with every
  sensor, ``complete``, and with each modality alone);
- a pipeline ``results.json`` (``gmc-rl pipeline`` / ``gmc-rl report``): the ``--method`` row's per-agent mean
  episode returns, every single-modality condition.

For each agent it prints the loss of each single sensor against the same agent with every sensor,
``100 * (complete - alone) / |complete|`` (positive is worse), then the count of pairs above ``--threshold``
(10 % by default, the robustness check's bound). With ``--against METHOD`` (a results.json only) it also prints
each agent's return with every sensor beside the same seed's agent of METHOD (e.g. ``state``, the true-state
agent) and their ratio, and counts the agents within ``--threshold`` of it (the every-sensor comparison). The
counts in experiments/results/action_fit come from it::

    cd experiments/results/action_fit
    python ../../single_sensor_losses.py own_loop/acrobot_pretrain_seed[01]_fit.json
    python ../../single_sensor_losses.py pendulum_sound_quick_pretrain_seed*/results.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path


def agent_returns(path: Path, method: str = "gmc") -> dict[str, dict[str, float]]:
    """Agent -> condition -> mean episode return, with ``complete`` and every single-modality condition."""
    data = json.loads(path.read_text())
    if "results" not in data:  # independent_returns.py: already agent -> condition -> mean return
        return {agent: {name: float(value) for name, value in means.items()} for agent, means in data.items()}
    rows = data["results"][method]
    singles = [condition for condition in rows if condition != "complete" and "+" not in condition
               and ":" not in condition]
    returns: dict[str, dict[str, float]] = {}
    for condition in ["complete", *singles]:
        for entry in rows[condition]["per_seed"]:
            returns.setdefault(entry["agent"], {})[condition] = float(entry["episode_return"])
    return returns


def single_sensor_losses(returns: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Agent -> modality -> loss in % against the agent with every sensor (positive: the sensor alone does worse).

    >>> single_sensor_losses({"a": {"complete": -100.0, "image": -110.0, "sound": -95.0}})
    {'a': {'image': 10.0, 'sound': -5.0}}
    """
    return {agent: {name: 100 * (means["complete"] - value) / abs(means["complete"])
                    for name, value in means.items() if name != "complete"}
            for agent, means in returns.items()}


def seed_of(agent: str) -> str:
    """The seed part of an agent's name (``gmc-seed3`` -> ``seed3``), which pairs agents of two methods."""
    return agent.rsplit("-", 1)[-1]


def against(returns: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Agent -> (its return with every sensor, the same seed's ``other`` agent's) for the agents both have.

    >>> against({"gmc-seed0": {"complete": -88.0}}, {"state-seed0": {"complete": -80.0}})
    {'gmc-seed0': (-88.0, -80.0)}
    """
    by_seed = {seed_of(agent): means["complete"] for agent, means in other.items()}
    return {agent: (means["complete"], by_seed[seed_of(agent)]) for agent, means in returns.items()
            if seed_of(agent) in by_seed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="independent-loop JSONs or pipeline results.json files")
    parser.add_argument("--method", default="gmc", help="the row of a results.json (default gmc)")
    parser.add_argument("--threshold", type=float, default=10.0, help="loss in %% that counts (default 10)")
    parser.add_argument("--against", metavar="METHOD", help="also compare every-sensor returns with this method's "
                                                            "agent of the same seed (results.json only; e.g. state)")
    args = parser.parse_args(argv)
    failing = total = close = compared = 0
    for path in args.files:
        if args.against:
            pairs = against(agent_returns(path, args.method), agent_returns(path, args.against))
            for agent, (mine, theirs) in pairs.items():
                print(f"{path} {agent}: every sensor {mine:.1f}, {args.against} {theirs:.1f} "
                      f"(ratio {mine / theirs:.3f})")
                close += 100 * (theirs - mine) / abs(theirs) <= args.threshold  # lost at most the threshold
                compared += 1
        for agent, losses in single_sensor_losses(agent_returns(path, args.method)).items():
            print(f"{path} {agent}: " + " ".join(f"{name} {value:+.1f}" for name, value in losses.items()))
            failing += sum(value > args.threshold for value in losses.values())
            total += len(losses)
    if args.against:
        print(f"{close} of {compared} agents within {args.threshold:g} % of {args.against} with every sensor")
    print(f"{failing} of {total} agent x sensor pairs lose more than {args.threshold:g} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
