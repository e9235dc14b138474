"""Robustness evaluation: run a policy under sensor conditions and summarise its rewards with confidence intervals.

The harness is env-agnostic and knows nothing of how agents are built: it receives a factory
``make_vec_env(condition, n_envs, seed) -> VecEnv`` (which applies the sensor condition and whatever observation
wrapper the agent needs) and a ``predict(obs) -> actions`` function (deterministic actions). For each condition and
seed it runs exactly ``episodes`` episodes over a vectorized env, counting completed episodes the way SB3's
``evaluate_policy`` does: every sub-env gets a fixed quota of episodes, so short episodes are not over-represented.

Reported metrics (see :func:`summarize`):

- ``per_step_reward``: total reward / total steps over all episodes (the GMC paper's "average per-step reward"),
  with a 95 % confidence interval from the delta method for a ratio of means (for equal-length episodes this is the
  t-interval of the per-episode averages);
- ``episode_return``: mean undiscounted episode return with a 95 % t-interval over episodes;
- per-seed values, and the spread of the per-seed means (standard deviation and t-interval over seeds).

Example:
    >>> from stable_baselines3.common.env_util import make_vec_env
    >>> def factory(condition, n_envs, seed):
    ...     return make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)
    >>> result = evaluate_conditions(factory, lambda obs: obs[:, :1] * 0.0, ["complete"], episodes=2, seeds=[0],
    ...                              n_envs=2, progress=False)
    >>> round(result["complete"]["per_step_reward"]["mean"], 3) < 0
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gmc_rl.errors import ConfigError, SensorValueError

CONFIDENCE = 0.95
"""Level of every confidence interval reported."""

LOSS_THRESHOLD = 0.10
"""A condition whose per-step reward is more than this fraction worse than with every sensor counts as a loss."""


def relative_loss(reference: float, value: float) -> float:
    """How much worse ``value`` is than ``reference`` as a fraction of ``|reference|`` (rewards: higher is better).

    0.1 means 10 % worse; negative means better. NaN when the reference is 0.
    """
    if reference == 0:
        return float("nan")
    return (reference - value) / abs(reference)


def defined_loss(reference: float, value: float) -> float | None:
    """:func:`relative_loss`, or None when it is not defined (a reference of 0): what a JSON record stores."""
    loss = relative_loss(reference, value)
    return loss if math.isfinite(loss) else None


def format_loss(loss: float | None, spec: str = "+.1f") -> str:
    """A loss fraction as a percentage (``spec`` formats the number), or "n/a" when it is not defined."""
    if loss is None or not math.isfinite(loss):
        return "n/a"
    return f"{100 * loss:{spec}} %"

Predict = Callable[[Any], Any]
VecEnvFactory = Callable[[str, int, int], Any]


# ---------------------------------------------------------------------------------------------------------------
# Student-t critical values (no SciPy dependency).


def _t_pdf(x: float, dof: float) -> float:
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    return math.exp(log_norm - (dof + 1) / 2 * math.log1p(x * x / dof))


def _t_cdf_from_zero(x: float, dof: float, intervals: int = 2000) -> float:
    """P(0 <= T <= x) by Simpson's rule (the density is smooth, so this is accurate to ~1e-10)."""
    h = x / intervals
    total = _t_pdf(0.0, dof) + _t_pdf(x, dof)
    for i in range(1, intervals):
        total += (4 if i % 2 else 2) * _t_pdf(i * h, dof)
    return total * h / 3


def t_critical(dof: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided critical value of Student's t with ``dof`` degrees of freedom (12.706 for dof=1 at 95 %)."""
    if dof < 1:
        raise ValueError(f"Student's t needs at least 1 degree of freedom, got {dof}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    target = confidence / 2
    low, high = 0.0, 1.0
    while _t_cdf_from_zero(high, dof) < target:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        if _t_cdf_from_zero(mid, dof) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


_T_CACHE: dict[int, float] = {}


def _t95(dof: int) -> float:
    if dof not in _T_CACHE:
        _T_CACHE[dof] = t_critical(dof)
    return _T_CACHE[dof]


# ---------------------------------------------------------------------------------------------------------------
# Statistics.


def _interval(mean: float, half_width: float | None) -> dict[str, Any]:
    if half_width is None:
        return {"mean": mean, "half_width": None, "ci95": None}
    return {"mean": mean, "half_width": half_width, "ci95": [mean - half_width, mean + half_width]}


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95 % t-interval of ``values`` (no interval for fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("cannot summarise an empty list of values")
    mean = float(x.mean())
    if x.size < 2:
        return {**_interval(mean, None), "std": 0.0, "n": int(x.size)}
    std = float(x.std(ddof=1))
    return {**_interval(mean, _t95(x.size - 1) * std / math.sqrt(x.size)), "std": std, "n": int(x.size)}


def ratio_interval(totals: Sequence[float], lengths: Sequence[int]) -> dict[str, Any]:
    """sum(totals) / sum(lengths) with a 95 % interval by the delta method for a ratio of means.

    Episodes are the independent units: with ``d_i = R_i - r * L_i`` the standard error of ``r = sum R / sum L`` is
    ``std(d) / (sqrt(n) * mean(L))``. For episodes of equal length this equals the t-interval of the per-episode
    average rewards ``R_i / L_i``.
    """
    returns = np.asarray(totals, dtype=np.float64)
    steps = np.asarray(lengths, dtype=np.float64)
    if returns.size == 0 or returns.shape != steps.shape:
        raise ValueError(f"need matching non-empty lists of returns and lengths, got {returns.size} and {steps.size}")
    if np.any(steps <= 0):
        raise ValueError("every episode must have at least one step")
    ratio = float(returns.sum() / steps.sum())
    per_episode = returns / steps
    std = float(per_episode.std(ddof=1)) if returns.size > 1 else 0.0
    if returns.size < 2:
        return {**_interval(ratio, None), "std": std, "n": int(returns.size)}
    residuals = returns - ratio * steps
    se = float(residuals.std(ddof=1)) / (math.sqrt(returns.size) * float(steps.mean()))
    return {**_interval(ratio, _t95(returns.size - 1) * se), "std": std, "n": int(returns.size)}


def summarize(units: Sequence[tuple[dict[str, Any], Sequence[float], Sequence[int]]]) -> dict[str, Any]:
    """Summarise the episodes of one condition, given as units ``(info, returns, lengths)`` (a unit = one seed).

    Returns a dict with the pooled ``per_step_reward`` and ``episode_return`` (mean, ``ci95`` = [low, high],
    ``half_width``, ``std``, ``n``), ``episode_length`` (mean, min, max), ``episodes``, ``steps``, the per-unit
    values under ``per_seed`` (each unit's ``info`` keys plus its own metrics and its raw ``returns`` and
    ``lengths``) and ``across_seeds``: the mean, std and 95 % t-interval of the per-unit means.
    """
    if not units:
        raise ValueError("summarize needs at least one unit of episodes")
    per_seed = []
    all_returns: list[float] = []
    all_lengths: list[int] = []
    for info, returns, lengths in units:
        returns = [float(r) for r in returns]
        lengths = [int(n) for n in lengths]
        if not returns:
            raise ValueError(f"unit {info} has no episodes")
        all_returns.extend(returns)
        all_lengths.extend(lengths)
        per_seed.append({
            **info,
            "episodes": len(returns),
            "steps": int(sum(lengths)),
            "per_step_reward": float(sum(returns) / sum(lengths)),
            "episode_return": float(np.mean(returns)),
            "returns": returns,
            "lengths": lengths,
        })
    return {
        "episodes": len(all_returns),
        "steps": int(sum(all_lengths)),
        "per_step_reward": ratio_interval(all_returns, all_lengths),
        "episode_return": mean_interval(all_returns),
        "episode_length": {
            "mean": float(np.mean(all_lengths)), "min": int(min(all_lengths)), "max": int(max(all_lengths)),
        },
        "across_seeds": {
            "per_step_reward": mean_interval([u["per_step_reward"] for u in per_seed]),
            "episode_return": mean_interval([u["episode_return"] for u in per_seed]),
        },
        "per_seed": per_seed,
    }


# ---------------------------------------------------------------------------------------------------------------
# Running episodes.


class _PredictAsPolicy:
    """A ``predict(obs) -> actions`` function in the shape SB3's ``evaluate_policy`` calls (no recurrent state)."""

    def __init__(self, predict: Predict) -> None:
        self._predict = predict

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        return self._predict(observation), None


def run_episodes(venv: Any, predict: Predict, episodes: int, seed: int | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[list[float], list[int]]:
    """Run exactly ``episodes`` complete episodes on ``venv`` (an SB3 VecEnv); return (returns, lengths).

    The loop is SB3's ``evaluate_policy`` (sub-env ``i`` of ``n`` runs ``(episodes + i) // n`` episodes, so the set
    of episodes does not favour short ones; returns come from the ``Monitor`` when the envs have one). With
    ``seed`` the VecEnv is seeded (sub-env ``i`` gets ``seed + i``) before its reset, which makes the run
    reproducible for a deterministic ``predict``. Every reward is checked to be finite. ``progress(k)`` is called
    with the number of episodes that just finished.
    """
    from stable_baselines3.common.evaluation import evaluate_policy

    if episodes <= 0:
        raise ConfigError(f"the number of evaluation episodes must be positive, got {episodes}")
    finished = [0]

    def each_step(local: dict[str, Any], _globals: dict[str, Any]) -> None:
        if not np.isfinite(local["reward"]):
            raise SensorValueError(f"the environment returned a non-finite reward {local['rewards'].tolist()}")
        done = int(local["episode_counts"].sum()) + bool(local["done"])  # this episode counts once it is done
        if progress is not None and done > finished[0]:
            progress(done - finished[0])
            finished[0] = done

    if seed is not None:
        venv.seed(int(seed))
    returns, lengths = evaluate_policy(_PredictAsPolicy(predict), venv, n_eval_episodes=episodes,
                                       deterministic=True, return_episode_rewards=True, warn=False,
                                       callback=each_step)
    # SB3 annotates both result forms as one union; return_episode_rewards=True gives the per-episode lists.
    return [float(r) for r in returns], [int(n) for n in lengths]  # type: ignore[union-attr]


def envs_per_seed(n_envs: int, episodes: int) -> int:
    """Sub-envs one evaluation seed runs: ``n_envs``, or ``episodes`` when fewer (no sub-env runs idle)."""
    return min(n_envs, episodes)


def check_disjoint_seeds(seeds: Sequence[int], n_envs: int, episodes: int, source: str | None = None) -> None:
    """Refuse evaluation seeds whose sub-envs would share a seed, before any episode runs.

    Seed ``s`` seeds its sub-env ``i`` with ``s + i`` (:func:`run_episodes`; kept so that every recorded result
    reproduces), so seeds closer than :func:`envs_per_seed` apart (0 and 1 with 2 envs) replay each other's
    episodes exactly, and pooling them counts the same episodes twice: the intervals shrink as if there were more
    data. A seed given twice is the same case.

    Args:
        source: where the seeds came from when the user did not give them as evaluation seeds
            (``"--config experiments/pendulum_sound.yaml"``, whose ``seeds`` are the pipeline's agent seeds);
            the message names it rather than blaming "evaluation seeds" the user never typed. None: ``--seeds``.

    Raises:
        ConfigError: naming the two seeds and their sub-env seeds, and seeds far enough apart to use instead.
    """
    width = envs_per_seed(n_envs, episodes)
    ordered = sorted(int(s) for s in seeds)
    for low, high in zip(ordered, ordered[1:]):
        if high - low < width:
            spaced = " ".join(str(k * width) for k in range(len(ordered)))
            what = (f"seed {low} is given twice" if low == high else
                    f"seeds {low} and {high} overlap: with {width} envs per seed (n_envs {n_envs}, "
                    f"episodes {episodes}) seed {low} seeds its sub-envs {low}..{low + width - 1} and seed {high} "
                    f"seeds {high}..{high + width - 1}")
            advice = "give each seed once" if width == 1 else f"give seeds at least {width} apart"
            if source is None:
                what = f"evaluation {what}"
            else:
                what = f"the seeds {ordered} of {source}, used as evaluation seeds (no --seeds given): {what}"
                advice = ("pass distinct evaluation seeds" if width == 1 else
                          f"pass evaluation seeds at least {width} apart")
            raise ConfigError(f"{what}, so the same episodes would be run and pooled twice (too narrow intervals); "
                              f"{advice}, e.g. --seeds {spaced}")


def evaluate_conditions(
    make_vec_env: VecEnvFactory,
    predict: Predict,
    conditions: list[str],
    episodes: int,
    seeds: list[int],
    n_envs: int,
    progress: bool = True,
    description: str = "",
) -> dict[str, dict[str, Any]]:
    """Evaluate a policy under every condition: ``episodes`` episodes per seed, deterministic actions.

    Args:
        make_vec_env: ``(condition, n_envs, seed) -> VecEnv`` giving the observations the policy expects under
            that sensor condition (e.g. ``gmc_rl.agents.Agent.make_vec_env``).
        predict: batch of observations -> batch of actions (deterministic).
        conditions: condition strings ("complete", "image", "image+sound", "dropout:0.5", ...), passed through
            to ``make_vec_env``.
        episodes: episodes per condition and seed.
        seeds: evaluation seeds (each gives its own VecEnv, seeded ``seed + i`` for sub-env ``i``), at least
            ``min(n_envs, episodes)`` apart so that no two share an episode (:func:`check_disjoint_seeds`).
        n_envs: episodes run in parallel.
        progress: show a tqdm progress bar per condition.
        description: prefix of the progress bars (e.g. the agent's name).

    Returns:
        ``{condition: summary}`` with the summary of :func:`summarize` (per seed unit ``{"seed": s}``).
    """
    if not conditions:
        raise ConfigError("no evaluation conditions given")
    if len(set(conditions)) != len(conditions):
        raise ConfigError(f"evaluation conditions are repeated: {conditions}")
    if not seeds:
        raise ConfigError("no evaluation seeds given")
    if n_envs <= 0:
        raise ConfigError(f"evaluate.n_envs must be positive, got {n_envs}")
    check_disjoint_seeds(seeds, n_envs, episodes)
    from gmc_rl.progress import progress_bar

    results: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        units = []
        label = f"{description} {condition}".strip()
        with progress_bar(episodes * len(seeds), label, "ep", enabled=progress, leave=False) as bar:
            for seed in seeds:
                venv = make_vec_env(condition, envs_per_seed(n_envs, episodes), int(seed))
                try:
                    returns, lengths = run_episodes(venv, predict, episodes, seed=int(seed), progress=bar.update)
                finally:
                    venv.close()
                units.append(({"seed": int(seed)}, returns, lengths))
        results[condition] = summarize(units)
    return results


def clipped_predictor(predict: Predict, action_space: Any, limit: float) -> Predict:
    """``predict`` with every action clipped to ``[-limit, limit]`` (and to ``action_space``'s own bounds).

    The GMC authors' pendulum code evaluated its actor's tanh output as the torque, i.e. within +-1 of the env's
    +-2; ``evaluate.action_limit: 1.0`` reproduces that range for an agent that acts over the whole space.

    Raises:
        ConfigError: ``action_space`` is not a Box, or ``limit`` is not positive.
    """
    from gymnasium import spaces

    if not isinstance(action_space, spaces.Box):
        raise ConfigError(f"evaluate.action_limit needs a continuous Box action space, got {action_space}")
    if not limit > 0:
        raise ConfigError(f"evaluate.action_limit must be positive to clip actions, got {limit}")
    low = np.maximum(action_space.low, -limit)
    high = np.minimum(action_space.high, limit)
    if np.any(low > high):
        raise ConfigError(f"evaluate.action_limit {limit} leaves no action of {action_space}")

    def predict_clipped(obs: Any) -> Any:
        return np.clip(predict(obs), low, high)

    return predict_clipped


def sb3_predictor(model: Any) -> Predict:
    """``predict`` function of an SB3 model with deterministic actions (stateless policies)."""

    def predict(obs: Any) -> Any:
        actions, _ = model.predict(obs, deterministic=True)
        return actions

    return predict
