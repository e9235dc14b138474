"""How well the true state can be read from an encoder's latents: the state probe, run before any agent is trained.

A controller can only act on what its input holds. When an env exposes its true state (``info["state"]``, recorded
by :func:`gmc_rl.collect.collect` in the dataset's ``states`` array), the probe fits a regression from a latent to
each state variable and scores it (R^2) on other episodes: for the complete latent (what the controller is trained
on) and for the latent of each modality alone (what it gets when the others are missing, through the encoder's own
rule). On a dataset (:func:`probe_dataset_split`) it is fitted on up to :data:`MAX_FIT_ROWS` rows of the training
split and scored on the validation split; on one sequence of rows (:func:`probe_states` without ``fit_*``) it is
fitted on the first :data:`FIT_FRACTION` of them and scored on the rest.

Two regressions are reported:

- ``knn``: the mean state of the ``k`` nearest fitted latents (Euclidean). It reads any smooth function, as the
  controller's MLP can, and it decides the warnings. Fitted and scored rows come from different episodes, so
  temporal neighbours of a scored row are not among its fitted rows. A k-NN needs fitted rows close to every scored
  one: fitted on the 1,333 first validation rows of ReacherSensors it read the joint speeds of an encoder whose
  distilled controller comes within 12 % of the true-state agent at R^2 0.11 and -0.17 (a false warning), fitted on
  6,000 training rows at 0.78 and 0.52, while an encoder whose controller stays 3.4x worse reads -0.16 and -0.14
  either way (experiments/results/frame_order/README.md).
- ``linear``: ridge regression with an intercept, the usual linear probe; a variable can be readable for the MLP
  (high ``knn``) and still low here.

A variable whose ``knn`` R^2 from the complete latent is below :data:`READABLE_R2` is named in a warning: a
controller trained on that latent is blind to it. The probe is only as good as the states it is given: on a
random-policy dataset it measures how an encoder separates the states random play reaches, which need not be the
resolution a controller needs near its goal (measured on CartPoleSensors in
``experiments/results/gmc_diagnosis/README.md``: there it does not tell the failing encoder from the working one,
while the same probe on a true-state agent's states does).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> states = rng.uniform(-1, 1, size=(600, 2))
    >>> latent = states[:, :1] * 3.0                  # holds the first variable, not the second
    >>> knn_r2(latent, states) > 0.9
    array([ True, False])
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from gmc_rl.data import STATES_KEY, MultimodalDataset
from gmc_rl.errors import DatasetError

READABLE_R2 = 0.5
"""A state variable whose k-NN R^2 from the complete latent falls below this is reported as unreadable."""
NEIGHBOURS = 10
"""k of the k-nearest-neighbour regression."""
FIT_FRACTION = 2 / 3
"""Without separate rows to fit on: the share of the rows (the first ones) the regressions are fitted on; the rest
are scored."""
MAX_FIT_ROWS = 6_000
"""Most rows of a dataset's training split the probe is fitted on (evenly spaced): enough neighbours for a k-NN in
a latent of 32, few enough to encode in seconds."""
MIN_ROWS = 30
"""Fewest rows the probe runs on (a smaller split gives no meaningful R^2)."""
COMPLETE = "complete"
PROBE_FILE = "state_probe.json"
"""Written beside a pretrained encoder when its dataset records true states."""


class LatentEncoder(Protocol):
    """What the probe needs of a model: its modality names and ``encode(obs, modalities)`` (None: every one)."""

    modalities: list[str]

    def encode(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> torch.Tensor: ...


def _split(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cut = int(round(FIT_FRACTION * len(features)))
    return features[:cut], targets[:cut], features[cut:], targets[cut:]


def _r2(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R^2 per column; a constant column (nothing to explain) scores 1 when predicted exactly, else 0."""
    residual = ((truth - predicted) ** 2).sum(axis=0)
    total = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    safe = np.where(total > 1e-12, total, 1.0)
    return np.where(total > 1e-12, 1.0 - residual / safe, np.where(residual <= 1e-12, 1.0, 0.0))


Rows = tuple[np.ndarray, np.ndarray]
"""(latents, states) of the rows a regression is fitted on."""


def _fit_and_test(latents: np.ndarray, states: np.ndarray, fit: Rows | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    latents, states = np.asarray(latents, np.float64), np.asarray(states, np.float64)
    if fit is None:
        return _split(latents, states)
    return np.asarray(fit[0], np.float64), np.asarray(fit[1], np.float64), latents, states


def knn_r2(latents: np.ndarray, states: np.ndarray, neighbours: int = NEIGHBOURS, fit: Rows | None = None
           ) -> np.ndarray:
    """R^2 per state variable of a ``neighbours``-nearest-neighbour regression from ``latents``: fitted on ``fit``
    and scored on all the rows given, or without ``fit`` fitted on the first :data:`FIT_FRACTION` of the rows and
    scored on the rest."""
    fit_x, fit_y, test_x, test_y = _fit_and_test(latents, states, fit)
    k = min(neighbours, len(fit_x))
    distances = torch.cdist(torch.from_numpy(test_x), torch.from_numpy(fit_x))
    nearest = distances.topk(k, largest=False).indices.numpy()
    return _r2(test_y, fit_y[nearest].mean(axis=1))


def linear_r2(latents: np.ndarray, states: np.ndarray, ridge: float = 1e-3, fit: Rows | None = None) -> np.ndarray:
    """R^2 per state variable of a ridge regression with intercept (fitted and scored as by :func:`knn_r2`)."""
    fit_x, fit_y, test_x, test_y = _fit_and_test(latents, states, fit)
    design = np.hstack([fit_x, np.ones((len(fit_x), 1))])
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ fit_y)
    return _r2(test_y, np.hstack([test_x, np.ones((len(test_x), 1))]) @ weights)


@dataclass
class StateProbeReport:
    """R^2 per state variable for the complete latent and each single-modality latent."""

    variables: list[str]
    knn: dict[str, list[float]]
    """``"complete"`` and each modality -> k-NN R^2 per variable (decides the warnings)."""
    linear: dict[str, list[float]]
    """The same for the linear probe."""
    rows: int
    """Rows scored."""
    threshold: float = READABLE_R2
    fitted_on: str = f"the first {FIT_FRACTION:.2f} of the rows"
    """Which rows the regressions were fitted on."""

    def unreadable(self, latent: str = COMPLETE) -> list[str]:
        """The variables whose k-NN R^2 from ``latent`` is below the threshold."""
        return [name for name, r2 in zip(self.variables, self.knn[latent]) if r2 < self.threshold]

    def warnings(self) -> list[str]:
        """One line per unreadable variable of the complete latent (the controller's input), naming it."""
        lines = []
        for index, (name, r2) in enumerate(zip(self.variables, self.knn[COMPLETE])):
            if r2 < self.threshold:
                alone = [m for m in self.knn if m != COMPLETE and self.knn[m][index] >= self.threshold]
                hint = f" (readable from {', '.join(alone)} alone)" if alone else ""
                lines.append(f"state variable {name!r} cannot be read from the complete latent (k-NN R^2 {r2:.2f} < "
                             f"{self.threshold}){hint}: a controller trained on it will not see {name}")
        return lines

    def table(self) -> str:
        """A plain-text table: one row per latent, k-NN R^2 (linear R^2 in brackets) per variable."""
        width = max(len(name) for name in self.knn)
        header = " " * width + " | " + " | ".join(f"{name:>13s}" for name in self.variables)
        lines = [header]
        for latent in self.knn:
            cells = [f"{k:5.2f} ({lin:5.2f})" for k, lin in zip(self.knn[latent], self.linear[latent])]
            lines.append(f"{latent:<{width}s} | " + " | ".join(f"{cell:>13s}" for cell in cells))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "variables": self.variables, "rows": self.rows, "threshold": self.threshold,
            "neighbours": NEIGHBOURS, "fitted_on": self.fitted_on,
            "knn_r2": self.knn, "linear_r2": self.linear,
            "unreadable": {latent: self.unreadable(latent) for latent in self.knn},
            "warnings": self.warnings(),
        }


def state_variables(names: object, dim: int) -> list[str]:
    """``names`` (e.g. a dataset's ``state_names``) when it is one non-empty string per state column, else
    ``state[i]``."""
    if isinstance(names, (list, tuple)) and len(names) == dim and all(isinstance(n, str) and n for n in names):
        return list(names)
    return [f"state[{i}]" for i in range(dim)]


def _encode(model: LatentEncoder, observations: Mapping[str, np.ndarray], modalities: Sequence[str] | None,
            batch_size: int) -> np.ndarray:
    total = len(next(iter(observations.values())))
    with torch.no_grad():
        parts = [model.encode({name: array[start:start + batch_size] for name, array in observations.items()},
                              modalities).detach().cpu().double().numpy()
                 for start in range(0, total, batch_size)]
    return np.concatenate(parts)


def _check_states(observations: Mapping[str, np.ndarray], states: np.ndarray, variables: Sequence[str],
                  what: str) -> np.ndarray:
    if not isinstance(observations, Mapping) or not observations:
        raise DatasetError(f"the state probe needs the observations of its {what} as a mapping of modality arrays, "
                           f"got {type(observations).__name__} {observations!r:.60}")
    states = np.asarray(states)
    if states.dtype.kind not in "biuf":  # bool, integers, floats: complex, str and object states are no R^2 target
        raise DatasetError(f"the state probe needs real-valued states, got dtype {states.dtype}")
    rows = len(next(iter(observations.values())))
    if states.ndim != 2 or states.shape != (rows, len(variables)):
        raise DatasetError(f"the state probe needs one state of {len(variables)} variables per observation "
                           f"({rows} {what}), got states of shape {tuple(states.shape)}")
    if rows < MIN_ROWS:
        raise DatasetError(f"the state probe needs at least {MIN_ROWS} {what}, got {rows}")
    if not np.isfinite(states).all():
        raise DatasetError("the recorded states hold NaN or infinite values; the state probe cannot score them")
    return states


def probe_states(model: LatentEncoder, observations: Mapping[str, np.ndarray], states: np.ndarray,
                 variables: Sequence[str], batch_size: int = 512, threshold: float = READABLE_R2,
                 fit_observations: Mapping[str, np.ndarray] | None = None,
                 fit_states: np.ndarray | None = None) -> StateProbeReport:
    """Probe the complete latent and every single-modality latent of ``model`` on ``observations`` against the true
    ``states`` (rows x variables). The regressions are fitted on ``fit_observations`` and ``fit_states`` (other
    episodes, e.g. a dataset's training split) and scored on every row given; without them the rows must be in
    time order, and the first :data:`FIT_FRACTION` are fitted, the rest scored.

    Raises:
        DatasetError: states of another length or width than the observations and ``variables``, too few rows
            (:data:`MIN_ROWS`), a non-finite state, or only one of ``fit_observations`` and ``fit_states``.
    """
    states = _check_states(observations, states, variables, "rows")
    if (fit_observations is None) != (fit_states is None):
        raise DatasetError("the state probe needs both fit_observations and fit_states, or neither")
    fit_rows = None
    if fit_observations is not None and fit_states is not None:
        fit_rows = (fit_observations, _check_states(fit_observations, fit_states, variables, "fitted rows"))
    knn: dict[str, list[float]] = {}
    linear: dict[str, list[float]] = {}
    for latent, subset in [(COMPLETE, None), *((name, [name]) for name in model.modalities)]:
        features = _encode(model, observations, subset, batch_size)
        fit = None if fit_rows is None else (_encode(model, fit_rows[0], subset, batch_size), fit_rows[1])
        knn[latent] = [float(v) for v in knn_r2(features, states, fit=fit)]
        linear[latent] = [float(v) for v in linear_r2(features, states, fit=fit)]
    report = StateProbeReport(list(variables), knn, linear, len(states), threshold)
    if fit_rows is not None:
        report.fitted_on = f"{len(fit_rows[1])} other rows"
    return report


class StateProbeWarning(UserWarning):
    """A state variable cannot be read from the complete latent (:meth:`StateProbeReport.warnings`)."""


def probe_dataset_split(model: LatentEncoder, dataset: MultimodalDataset,
                        split: str = "val") -> StateProbeReport | None:
    """Probe ``model`` on a :class:`~gmc_rl.data.MultimodalDataset` split that records true states (None when it
    records none: the env exposes no ``info["state"]``, or the dataset was collected before states were kept).

    The validation split is scored with regressions fitted on up to :data:`MAX_FIT_ROWS` evenly spaced rows of the
    training split (other episodes); the training split, or a validation split without training states, is probed
    on its own rows (:func:`probe_states` without ``fit_*``)."""
    arrays = dataset.train if split == "train" else dataset.val
    if STATES_KEY not in arrays:
        return None
    states = arrays[STATES_KEY]
    if len(states) < MIN_ROWS:
        return None
    names = state_variables(dataset.metadata.get("state_names"), states.shape[1])
    train_states = dataset.train.get(STATES_KEY) if split != "train" else None
    if train_states is None or len(train_states) < MIN_ROWS:
        return probe_states(model, dataset.observations(split), states, names)
    step = -(-len(train_states) // MAX_FIT_ROWS)  # ceil: at most MAX_FIT_ROWS rows
    fit_observations = {name: array[::step] for name, array in dataset.observations("train").items()}
    report = probe_states(model, dataset.observations(split), states, names,
                          fit_observations=fit_observations, fit_states=train_states[::step])
    report.fitted_on = f"{len(train_states[::step])} rows of the training split (every {step})"
    return report


def warn_unreadable(report: StateProbeReport, where: str) -> None:
    """Issue a :class:`StateProbeWarning` per unreadable variable of the complete latent, naming ``where``."""
    for line in report.warnings():
        warnings.warn(f"{where}: {line}", StateProbeWarning, stacklevel=2)
