"""experiments/from_scripts.py: the whole experiment written out on the public API, run on a smoke budget."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from gmc_rl.experiments.from_scripts import TINY, parse_args

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "from_scripts.py"
CONDITIONS = ["complete", "image", "sound", "dropout:0.5"]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The printed Markdown table's data rows: condition -> the other cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("condition", "---"):
            rows[cells[0]] = cells[1:]
    return rows


def test_tiny_flags_replace_the_defaults_and_explicit_flags_win():
    real = parse_args([])
    assert real.collect_steps == 20_000 and real.env_kwargs == {} and real.out == Path("runs/from_scripts")
    tiny = parse_args(["--tiny", "--episodes", "3"])
    assert tiny.env_kwargs == {"max_episode_steps": 40}
    assert tiny.collect_steps == TINY["collect_steps"] and tiny.sac_steps == TINY["sac_steps"]
    assert tiny.episodes == 3


def test_script_runs_end_to_end_and_prints_a_row_per_condition(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    # One row per condition, every cell a finite number; complete is the reference of the loss column.
    rows = table_rows(result.stdout)
    assert list(rows) == CONDITIONS, result.stdout
    for condition, (reward, half_width, episode_return, loss) in rows.items():
        values = [float(reward), float(half_width), float(episode_return), float(loss.removesuffix(" %"))]
        assert all(math.isfinite(value) for value in values), (condition, values)
    assert float(rows["complete"][3].removesuffix(" %")) == 0.0

    # The files it says it wrote exist and hold what the table shows.
    written = [Path(line.removeprefix("wrote ")) for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert written == [out / "data", out / "gmc", out / "sac.zip", out / "results.json", out / "results.md"]
    assert (out / "data" / "metadata.json").is_file() and (out / "data" / "train.npz").is_file()
    assert (out / "gmc" / "config.json").is_file() and (out / "gmc" / "model.safetensors").is_file()
    assert (out / "sac.zip").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert list(results) == CONDITIONS
    for condition in CONDITIONS:
        assert results[condition]["episodes"] == 2
        assert float(rows[condition][0]) == round(results[condition]["per_step_reward"]["mean"], 3)
    assert table_rows((out / "results.md").read_text()) == rows
