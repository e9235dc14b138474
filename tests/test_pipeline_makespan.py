"""benchmarks/pipeline_makespan.py: replaying a run's recorded stage times with N workers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from gmc_rl.config import load_config, to_dict
from gmc_rl.pipeline import _plan, env_modalities, resolve_conditions

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("pipeline_makespan", ROOT / "benchmarks" / "pipeline_makespan.py")
assert _spec is not None and _spec.loader is not None
makespan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(makespan)

# a (10 s) feeds b and c (5 s each); d (1 s) needs nothing and comes last in plan order.
ORDER = ["a", "b", "c", "d"]
AFTER: dict[str, tuple[str, ...]] = {"a": (), "b": ("a",), "c": ("a",), "d": ()}
SECONDS = {"a": 10.0, "b": 5.0, "c": 5.0, "d": 1.0}


def test_one_worker_runs_every_stage_in_turn() -> None:
    assert makespan.replay(ORDER, AFTER, SECONDS, 1) == 21.0


def test_more_workers_take_ready_stages_in_plan_order() -> None:
    # Two workers: a and d start at once (b and c wait for a), then b and c together from 10 s to 15 s.
    assert makespan.replay(ORDER, AFTER, SECONDS, 2) == 15.0
    # One worker per stage cannot beat the chain a -> b.
    assert makespan.replay(ORDER, AFTER, SECONDS, 8) == makespan.critical_path(ORDER, AFTER, SECONDS) == 15.0


def test_stages_that_wait_for_each_other_are_reported() -> None:
    with pytest.raises(SystemExit, match="cycle"):
        makespan.replay(["x", "y"], {"x": ("y",), "y": ("x",)}, {"x": 1.0, "y": 1.0}, 2)


def _finished_run(tmp_path: Path) -> Path:
    """A run directory of the quick config whose every planned stage has a done-marker of 60 s."""
    config = load_config(ROOT / "experiments" / "quick.yaml")
    run_dir = tmp_path / "run"
    (run_dir / "stages").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    conditions = resolve_conditions(config.evaluate.conditions, env_modalities(config.env_id, config.env_kwargs))
    tasks, _, _ = _plan(config, run_dir, conditions)
    for task in tasks:
        task.stage.marker.write_text(json.dumps({"stage": task.stage.name, "hash": task.stage.hash,
                                                 "status": "done", "seconds": 60.0}))
    return run_dir


def test_recorded_stages_follow_the_run_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _finished_run(tmp_path)
    order, after, seconds = makespan.recorded_stages(run_dir)
    assert order[0] == "collect" and "collect" in after["pretrain"]
    assert set(seconds) == set(order) and all(value == 60.0 for value in seconds.values())
    assert makespan.main([str(run_dir), "--workers", "1", "2"]) == 0
    assert f"{len(order)} stages" in capsys.readouterr().out


def test_a_stage_without_a_matching_marker_is_named(tmp_path: Path) -> None:
    run_dir = _finished_run(tmp_path)
    marker = run_dir / "stages" / "pretrain.json"
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, "hash": "0" * 16}))  # made with other settings
    with pytest.raises(SystemExit, match="pretrain"):
        makespan.recorded_stages(run_dir)
