"""``gmc-rl evaluate``: robustness of trained agents under sensor conditions -> results.json / .md / .png."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gmc_rl.commands.common import ConfigFlags
from gmc_rl.io import resolve_path

HELP = "evaluate trained agents under sensor conditions (complete, subsets, dropout, noise) and tabulate the results"
CONFIG = ConfigFlags(sections=("evaluate",), top_level=("seeds",), short="evaluate",
                     top_level_help={"seeds": "evaluation seeds, at least --n-envs apart (seed s seeds its envs "
                                              "s, s+1, ...): each runs --episodes episodes of every agent "
                                              "(e.g. --seeds 0 10 20 with 10 envs)"})

EPILOG = """\
examples:
  gmc-rl evaluate --agent runs/pendulum/sac --conditions complete image sound dropout:0.5 --episodes 100
  gmc-rl evaluate --agent runs/quick/agents/gmc-seed0 runs/quick/agents/raw-seed0 --seeds 0 10 --out cmp

Agents of the same method are pooled into one table row. --evaluate.encoding_rules mean adds a row gmc-mean: the same
GMC agents with the paper's single-sensor rule (plain mean of the present modalities' latents) instead of their
checkpoint's projection; --evaluate.action_limit 1.0 clips every action to [-1, 1] (the authors' evaluation torque).
Without --conditions: complete + every non-empty proper
subset of the modalities (the word "subsets" in a list expands to the same). --seeds are the evaluation seeds:
each runs --episodes episodes, its sub-env i seeded seed + i, so seeds closer than --n-envs apart (0 1 with 10 envs)
would replay each other's episodes and are refused. --config reads the 'evaluate' section and 'seeds' of an
experiment config.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--agent", nargs="+", required=True, metavar="DIR",
                        help="agent directories written by `gmc-rl train` or `gmc-rl pipeline`")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where results.json/.md/.png go (default: AGENT/robustness for one agent, else "
                             "the agents' common parent directory/robustness)")
    parser.add_argument("--no-action-fit", action="store_true",
                        help="evaluate GMC agents with the encoder they were trained on, not their action fit "
                             "(AGENT/action_fit, used when present)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _default_out(agent_dirs: list[Path]) -> Path:
    if len(agent_dirs) == 1:
        return agent_dirs[0] / "robustness"
    parents = [resolve_path(p).parent for p in agent_dirs]
    common = Path(*[parts[0] for parts in zip(*[p.parts for p in parents]) if len(set(parts)) == 1] or ["."])
    return common / "robustness"


def _refuse_copies(agent_dirs: list[Path]) -> None:
    """Refuse two agent directories holding the same trained policy (``cp -r A B``): pooled, one agent would count
    twice and the intervals would shrink as if there were twice the data (``report`` refuses copied records so)."""
    from gmc_rl.data import file_sha256
    from gmc_rl.errors import ConfigError

    seen: dict[str, Path] = {}
    for path in agent_dirs:
        policy = path / "agent.zip"
        if not policy.is_file():
            continue  # load_agent names what is missing
        digest = file_sha256(policy)
        if digest in seen:
            raise ConfigError(f"{seen[digest]} and {path} hold the same trained agent (identical agent.zip): "
                              "evaluating both would count one agent twice; give it once")
        seen[digest] = path


DISTILLATION_SETTINGS = ("rounds", "steps", "epochs", "batch_size", "lr")
"""The keys of agent.json's ``distillation`` that decide the agent (not the teacher's path or the history)."""


def made_with(info: dict[str, Any]) -> dict[str, Any]:
    """What an agent (its agent.json ``info``) was trained with on its env, but its seed: agents of one method pooled
    into one row must agree on all of it (the env and its ``env_kwargs`` are checked for every agent before)."""
    identity = {key: value for key, value in (info.get("identity") or {}).items() if key != "seed"}
    distillation = info.get("distillation") or {}
    return {"training": identity, "total_timesteps": info.get("total_timesteps"),
            "distillation": {key: distillation.get(key) for key in DISTILLATION_SETTINGS} if distillation else None}


def _refuse_unlike_agents(agent_dirs: list[Path], methods: list[str]) -> None:
    """Refuse agents of one method made with different settings (another number of training steps, other
    hyperparameters): pooled into one row, different methods would be averaged as if they were seeds of one
    (``report`` refuses such runs so)."""
    from gmc_rl.agents.agent_dir import read_agent_json
    from gmc_rl.errors import ConfigError

    first: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, method in zip(agent_dirs, methods):
        own = made_with(read_agent_json(path))
        seen = first.setdefault(method, (path, own))
        if seen[1] != own:
            differ = [key for key in own if own[key] != seen[1][key]]
            shown = "; ".join(f"{key}: {seen[1][key]!r} vs {own[key]!r}" for key in differ)
            raise ConfigError(f"{seen[0]} and {path} are {method} agents made with different settings ({shown}): "
                              "pooled into one row they would be averaged as seeds of one method; evaluate them "
                              "separately")


def _settings(ev: Any, seeds: list[int], conditions: list[str]) -> dict[str, Any]:
    """The evaluation settings that ``results.json`` records (the ``evaluate`` section ``ev`` of the config)."""
    settings: dict[str, Any] = {"episodes": ev.episodes, "seeds": seeds, "n_envs": ev.n_envs,
                                "conditions": conditions}
    if ev.encoding_rules:
        settings["encoding_rules"] = list(ev.encoding_rules)
    if ev.action_limit > 0:
        settings["action_limit"] = ev.action_limit
    return settings


def run(args: argparse.Namespace) -> int:
    from gmc_rl.agent_evaluation import remove_earlier_videos
    from gmc_rl.agents.agent_dir import check_agent_files
    from gmc_rl.commands.common import print_tables
    from gmc_rl.errors import ConfigError
    from gmc_rl.evaluate import check_disjoint_seeds
    from gmc_rl.io import distinct_paths, require_existing
    from gmc_rl.locking import RESULTS_LOCK, directory_lock
    from gmc_rl.pipeline import check_results_out, evaluate_agent, record_agent_videos, resolve_conditions
    from gmc_rl.results import (
        TENSORBOARD_DIR,
        build_results,
        check_earlier_results,
        pool_runs,
        record_rows,
        write_results,
        write_tensorboard,
    )

    config = args.experiment
    ev = config.evaluate
    seeds_from = None if "--seeds" in args.given_flags or not args.config else f"--config {args.config}"
    check_disjoint_seeds(config.seeds, ev.n_envs, ev.episodes, source=seeds_from)  # before anything is loaded
    agent_dirs = distinct_paths(args.agent)  # an agent given twice, in any spelling, is evaluated once
    for path in agent_dirs:
        require_existing(path, "agent directory")
        check_agent_files(path)  # an agent.zip replaced by a directory is named, not called unfinished
        if not (path / "agent.json").is_file():
            raise FileNotFoundError(f"{path} is not an agent directory (no agent.json)")
    _refuse_copies(agent_dirs)
    from gmc_rl.agents import load_agent

    agents = [load_agent(path, action_fit=not args.no_action_fit) for path in agent_dirs]
    envs = {json.dumps([a.env_id, a.env_kwargs], sort_keys=True) for a in agents}
    if len(envs) > 1:  # one table is one env: other env_kwargs (gravity, episode length) are another task
        raise ConfigError(f"the agents were trained on different environments ({', '.join(sorted(envs))} as [env id, "
                          "env_kwargs]); evaluate them separately")
    _refuse_unlike_agents(agent_dirs, [a.method for a in agents])
    conditions = resolve_conditions(ev.conditions, agents[0].modalities)
    seeds = list(config.seeds)
    out = Path(args.out) if args.out else _default_out(agent_dirs)
    check_results_out(out, "evaluate")
    check_earlier_results(out)  # a user's own results.png in --out: refused now, not after the evaluation
    video_names = None
    if ev.video:  # two agents of one folder name get distinct videos; a user's file in videos/ is refused now
        from gmc_rl.agent_evaluation import check_agent_videos
        from gmc_rl.agent_evaluation import video_names as unique_video_names

        video_names = unique_video_names(agent_dirs)
        check_agent_videos(video_names, conditions, out / "videos", agent_dirs)

    runs: dict[str, list] = {}
    names: dict[str, list[str]] = {}
    videos: list[Path] = []
    with directory_lock(out, RESULTS_LOCK):  # a second evaluate (or report) on this --out is refused at once
        for index, (path, agent) in enumerate(zip(agent_dirs, agents)):
            print(f"evaluating {path} ({agent.method}) under {len(conditions)} conditions x {len(seeds)} seeds x "
                  f"{ev.episodes} episodes")
            record = evaluate_agent(agent, conditions, ev.episodes, seeds, ev.n_envs, progress=not args.no_progress,
                                    encoding_rules=ev.encoding_rules, action_limit=ev.action_limit)
            for row, evaluation in record_rows(record):  # gmc-mean etc. with evaluate.encoding_rules
                runs.setdefault(row, []).append((path.name, evaluation))
                names.setdefault(row, []).append(str(path))
            if video_names is not None:
                videos += record_agent_videos(agent, conditions, out / "videos", seed=seeds[0], name=video_names[index])
        per_method = {method: pool_runs(items) for method, items in runs.items()}
        settings = _settings(ev, seeds, conditions)
        results = build_results(per_method, env_id=agents[0].env_id, settings=settings, agents=names)
        paths = write_results(results, out)
        paths["tensorboard"] = write_tensorboard(results, out / TENSORBOARD_DIR)  # the earlier results' events go
        remove_earlier_videos(out / "videos", videos)  # and their videos: out holds only these results
    print()
    print_tables(results, "Mean per-step reward (95 % CI):")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
