"""One agent's evaluation, videos and transfer diagnostics, as the pipeline and ``gmc-rl evaluate``/``align`` run
them.

Each function takes a ``gmc_rl.agents.Agent`` or its directory. The pipeline's evaluate stages call them per agent;
:mod:`gmc_rl.pipeline` re-exports every name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gmc_rl.errors import ConfigError
from gmc_rl.methods import encoder_method_names
from gmc_rl.stages import Log


def _as_agent(agent: Any) -> Any:
    from gmc_rl.agents import load_agent

    if isinstance(agent, (str, os.PathLike)):
        return load_agent(agent)  # it names an agent.zip that is a directory, FIFO or broken link
    return agent


def agent_predictor(agent: Any, action_limit: float = 0.0) -> Callable[[Any], Any]:
    """The deterministic ``predict`` of an agent, its actions clipped to ``[-action_limit, action_limit]`` when
    ``action_limit`` > 0 (``evaluate.action_limit``; a Box action space only)."""
    from gmc_rl.evaluate import clipped_predictor, sb3_predictor

    predict = sb3_predictor(agent.model)
    return clipped_predictor(predict, agent.model.action_space, action_limit) if action_limit > 0 else predict


def evaluate_agent(agent: Any, conditions: Sequence[str], episodes: int, seeds: Sequence[int],
                   n_envs: int, progress: bool = True, encoding_rules: Sequence[str] = (),
                   action_limit: float = 0.0) -> dict[str, Any]:
    """Evaluate an agent (a ``gmc_rl.agents.Agent`` or its directory) under ``conditions``.

    Episodes are run by :func:`gmc_rl.evaluate.evaluate_conditions` on ``agent.make_vec_env`` with deterministic
    actions (clipped to ``[-action_limit, action_limit]`` when ``action_limit`` > 0). Returns ``{"agent",
    "method", "env_id", "seeds", "evaluation"}``, and for an agent that reads a GMC encoder with
    ``encoding_rules`` given, ``"rules": {rule: evaluation}``: the same agent, seeds and conditions with the
    encoder's single-sensor rule set to ``rule`` (``GMCModel.encoding_rule``; no retraining). The complete
    condition takes the joint path under every rule, so its episodes are not run again but copied.

    Raises:
        ConfigError: ``seeds`` closer than ``min(n_envs, episodes)`` apart, which would replay each other's episodes
            (:func:`gmc_rl.evaluate.check_disjoint_seeds`), checked before the agent is loaded.
    """
    from gmc_rl.evaluate import check_disjoint_seeds, evaluate_conditions
    from gmc_rl.model import GMCModel

    check_disjoint_seeds(seeds, n_envs, episodes)
    agent = _as_agent(agent)
    seeds = [int(s) for s in seeds]
    predict = agent_predictor(agent, action_limit)
    name = Path(agent.path).name
    evaluation = evaluate_conditions(agent.make_vec_env, predict, list(conditions), episodes,
                                     seeds, n_envs, progress=progress, description=name)
    record = {"agent": str(agent.path), "method": agent.method, "env_id": agent.env_id, "seeds": seeds,
              "evaluation": evaluation}
    if encoding_rules and isinstance(agent.encoder, GMCModel):
        partial_conditions = [c for c in conditions if c != "complete"]
        record["rules"] = {}
        for rule in encoding_rules:
            with agent.encoder.encoding_rule(rule):
                by_rule = evaluate_conditions(agent.make_vec_env, predict, partial_conditions, episodes, seeds,
                                              n_envs, progress=progress, description=f"{name} ({rule})") \
                    if partial_conditions else {}
            record["rules"][rule] = {c: evaluation[c] if c == "complete" else by_rule[c] for c in conditions}
    return record


def video_names(agent_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """A video file name stem per agent directory, unique among them: the folder's name (``state-seed0``), or where
    two agents share it (``run1/agents/state-seed0``, ``run2/agents/state-seed0``) the fewest trailing parts of
    their paths that tell them apart, joined with ``-`` (``run1-agents-state-seed0``)."""
    parts = [Path(os.path.abspath(p)).parts[1:] or ("agent",) for p in agent_dirs]
    names = []
    for i, own in enumerate(parts):
        others = [other for j, other in enumerate(parts) if j != i]
        for count in range(1, len(own) + 1):
            if all(other[-count:] != own[-count:] for other in others):
                break
        names.append("-".join(own[-count:]))
    return names


def agent_video_paths(name: str, conditions: Sequence[str], out_dir: str | os.PathLike) -> list[Path]:
    """The video files :func:`record_agent_videos` writes for the agent named ``name``: one ``.mp4`` per condition
    (and the ``.gif`` written instead where no MP4 writer is installed)."""
    paths = []
    for condition in conditions:
        safe = condition.replace(":", "_").replace("+", "-")
        path = Path(out_dir) / f"{name}-{safe}.mp4"
        paths += [path, path.with_suffix(".gif")]
    return paths


def check_agent_videos(names: Sequence[str], conditions: Sequence[str], out_dir: str | os.PathLike,
                       agent_dirs: Sequence[str | os.PathLike] | None = None) -> None:
    """Refuse, before anything is evaluated, videos of the agents ``names`` that would share a file (two agents
    under one name: one video would replace the other) or replace a file gmc-rl did not write.

    Raises:
        ConfigError: naming both agents, or the files in the way.
    """
    from gmc_rl.video import check_video_destinations

    labels = [str(p) for p in agent_dirs] if agent_dirs is not None else list(names)
    first: dict[str, str] = {}
    for name, label in zip(names, labels):
        if name in first:
            raise ConfigError(f"the agents {first[name]} and {label} would write the same videos "
                              f"({name}-<condition>.mp4 in {out_dir}): one would replace the other; evaluate them "
                              "with separate --out folders")
        first[name] = label
    check_video_destinations([p for name in names for p in agent_video_paths(name, conditions, out_dir)])


def record_agent_videos(agent: Any, conditions: Sequence[str], out_dir: str | os.PathLike,
                        seed: int = 0, log: Log = print, name: str | None = None) -> list[Path]:
    """One episode video per condition of an agent (or its directory): ``out_dir/<name>-<condition>.mp4``
    (``.gif`` when no MP4 writer is installed); ``name`` defaults to the agent's folder name (give
    :func:`video_names`' when several agents write into one folder). The agent's envs are rebuilt with
    ``render_mode="rgb_array"``.

    Raises:
        ConfigError: a file at one of the video paths that gmc-rl did not write (checked before any episode runs).
    """
    from gmc_rl.agents.observations import make_method_vec_env
    from gmc_rl.evaluate import sb3_predictor
    from gmc_rl.video import record_episode

    agent = _as_agent(agent)
    env_kwargs = {**agent.env_kwargs, "render_mode": "rgb_array"}
    name = name or Path(agent.path).name
    check_agent_videos([name], conditions, out_dir)
    paths = []
    for condition, path in zip(conditions, agent_video_paths(name, conditions, out_dir)[::2]):
        venv = make_method_vec_env(agent.method, agent.env_id, env_kwargs, condition, 1, seed, agent.encoder)
        try:
            path = record_episode(venv, sb3_predictor(agent.model), path, title=f"{name} | {condition}", seed=seed)
        finally:
            venv.close()
        log(f"  video {path}")
        paths.append(path)
    return paths


def remove_earlier_videos(out_dir: str | os.PathLike, keep: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Remove from ``out_dir`` the videos of earlier results, all but ``keep`` (the current results' videos), and
    the folder if that empties it; return the removed files.

    A results folder shows one set of results: videos of agents or conditions the rewritten results no longer
    have would stand beside them (red-team six F13). Only videos gmc-rl wrote go: ``.mp4``/``.gif`` files that
    carry its tag (:func:`gmc_rl.video.is_own_video`); a user's files stay.
    """
    from gmc_rl.video import is_own_video

    out_dir = Path(out_dir)
    if not out_dir.is_dir() or out_dir.is_symlink():
        return []
    kept = {Path(path).name for path in keep}
    removed = [path for path in sorted(out_dir.iterdir()) if path.name not in kept
               and path.suffix.lower() in (".mp4", ".gif") and not path.is_symlink() and is_own_video(path)]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed and not any(out_dir.iterdir()):
        out_dir.rmdir()
    return removed


def diagnose_agent(agent: Any, conditions: Sequence[str], episodes: int = 10, horizon: int | None = 100,
                   seed: int = 0) -> dict[str, dict[str, float | None]]:
    """Transfer diagnostics (:func:`gmc_rl.transfer.diagnose_transfer`) of an agent that reads an encoder (or its
    directory) for every modality-subset condition among ``conditions``; ``{}`` if there is none.

    Raises:
        ConfigError: the agent's method has no encoder (nothing to feed a subset of the sensors through).
    """
    import gymnasium as gym

    from gmc_rl.evaluate import sb3_predictor
    from gmc_rl.transfer import diagnose_transfer
    from gmc_rl.wrappers.conditions import parse_condition

    agent = _as_agent(agent)
    if agent.encoder is None:
        raise ConfigError(f"{agent.path} is a {agent.method!r} agent; the transfer diagnostics need an agent that "
                          f"reads an encoder ({encoder_method_names()})")
    parsed = [parse_condition(condition, agent.modalities) for condition in conditions]
    subsets = [list(c.modalities) for c in parsed if c.kind == "subset"]
    if not subsets:
        return {}

    def make_env() -> Any:
        return gym.make(agent.env_id, **agent.env_kwargs)

    return diagnose_transfer(agent.encoder, sb3_predictor(agent.model), make_env, subsets,
                             episodes=episodes, horizon=horizon, seed=seed)
