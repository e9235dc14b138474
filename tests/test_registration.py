"""``import gmc_rl`` registers every env id the documentation names, the latent one included, in a fresh process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import torch

from gmc_rl.checkpoint import save_gmc
from gmc_rl.config import ModelConfig
from gmc_rl.model import GMCModel

ROOT = Path(__file__).resolve().parents[1]
MISSPELLED = {"gmc_rl/PendulumSond-v0"}  # docs/reliability.md shows the message for this deliberate typo


def documented_ids() -> set[str]:
    """Every ``gmc_rl/<Name>-v<N>`` id written in README.md and docs/*.md."""
    text = "".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    return set(re.findall(r"gmc_rl/[A-Za-z]+-v[0-9]+", text)) - MISSPELLED


def fresh_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (no module of this process carried over); it prints one JSON line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_documented_ids_include_the_latent_one():
    assert {"gmc_rl/PendulumSound-v0", "gmc_rl/CartPoleSensors-v0", "gmc_rl/AcrobotSensors-v0",
            "gmc_rl/GMCLatent-v0"} <= documented_ids()


def test_import_gmc_rl_registers_every_documented_id_before_or_after_gymnasium():
    ids = sorted(documented_ids())
    for first, second in (("gmc_rl", "gymnasium"), ("gymnasium", "gmc_rl")):
        found = fresh_python(
            f"import json, sys; import {first}; import {second}; import gymnasium as gym\n"
            f"print(json.dumps({{'registered': [i for i in {ids!r} if i in gym.registry], "
            f"'wrappers_imported': 'gmc_rl.wrappers' in sys.modules}}))")
        assert found == {"registered": ids, "wrappers_imported": False}, (first, second)  # registration stays cheap


def test_make_vec_env_builds_the_latent_id_after_import_gmc_rl_alone(tmp_path):
    import gmc_rl  # noqa: F401  (registers the ids in this process, to build the checkpoint)

    torch.manual_seed(0)
    model = GMCModel.from_space(gym.make("gmc_rl/PendulumSound-v0").observation_space,
                                ModelConfig(latent_dim=6, common_dim=16, head_hidden=16, conv_channels=[4],
                                            mlp_hidden=[8]))
    checkpoint = save_gmc(model, tmp_path / "gmc", {"env_id": "gmc_rl/PendulumSound-v0"})
    kwargs = {"env_id": "gmc_rl/PendulumSound-v0", "checkpoint": str(checkpoint)}
    found = fresh_python(
        "import json\nimport gmc_rl\nfrom stable_baselines3.common.env_util import make_vec_env\n"
        f"venv = make_vec_env('gmc_rl/GMCLatent-v0', n_envs=2, seed=0, env_kwargs={kwargs!r})\n"
        "obs = venv.reset()\n"
        "print(json.dumps({'shape': list(obs.shape), 'space': str(venv.observation_space)}))")
    assert found == {"shape": [2, 6], "space": "Box(-1.0, 1.0, (6,), float32)"}
