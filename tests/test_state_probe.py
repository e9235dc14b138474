"""experiments/state_probe.py: the linear probe's R^2 tells a latent that holds the state from one that does not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("state_probe", ROOT / "experiments" / "state_probe.py")
assert _spec is not None and _spec.loader is not None
state_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(state_probe)


def test_probe_reads_a_linear_code_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    states = rng.normal(size=(900, 2))
    mixing = rng.normal(size=(2, 6))
    latents = np.hstack([states @ mixing, rng.normal(size=(900, 4))])  # the state, mixed, plus unrelated units
    r2 = state_probe.probe_r2(latents, states)
    assert r2.shape == (2,) and np.all(r2 > 0.99)
    unrelated = state_probe.probe_r2(rng.normal(size=(900, 10)), states)
    assert np.all(unrelated < 0.1)


def test_probe_sees_a_dimension_the_latent_lacks() -> None:
    rng = np.random.default_rng(1)
    states = rng.normal(size=(900, 2))
    latents = np.hstack([states[:, :1] * 3.0, rng.normal(size=(900, 3))])  # only the first dimension is encoded
    r2 = state_probe.probe_r2(latents, states)
    assert r2[0] > 0.99 and r2[1] < 0.1
