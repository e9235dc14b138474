"""Red-team pass six, F13: results rewritten in place left the earlier results' TensorBoard events and videos
beside them (``pipeline --update``: two values at step 0 in ``eval/tb``; ``gmc-rl evaluate`` into the same
``--out``: the other agent's scalars and videos). Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import tiny_state_config

from gmc_rl.cli import main
from gmc_rl.results import build_results, load_results, pool_runs, summarize, write_tensorboard

TINY = tiny_state_config("tiny_f13")


def _scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar tag in the event files of ``log_dir`` with all its values (one per event file that has it)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _results(methods: dict[str, float]) -> dict:
    """Results of one agent per method with the given mean return under complete and sound."""
    per_method = {method: pool_runs([(f"{method}-seed0", {condition: summarize(
        [({"seed": 0}, [value + shift, value + shift], [10, 10])]) for condition, shift in
        (("complete", 0.0), ("sound", -5.0))})]) for method, value in methods.items()}
    return build_results(per_method, env_id="x")


def _users_events(log_dir: Path) -> None:
    """A user's own TensorBoard run in ``log_dir``, which gmc-rl must keep."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        writer.add_scalar("loss/train", 1.0, 0)


def test_f13_rewritten_tensorboard_results_replace_the_earlier_events(tmp_path):
    """The second write leaves one value per tag, its own, and no tag of a method it no longer has; the user's
    event file and other files in tb/ stay."""
    log_dir = tmp_path / "tb"
    _users_events(log_dir)
    (log_dir / "notes.txt").write_text("mine")
    write_tensorboard(_results({"gmc": -100.0, "state": -50.0}), log_dir)
    write_tensorboard(_results({"state": -20.0}), log_dir)
    scalars = _scalars(log_dir)
    assert scalars["robustness_return/state/complete"] == [-20.0]
    assert scalars["hparams/return/state/sound"] == [-25.0]
    assert not [tag for tag in scalars if "/gmc/" in tag]
    assert scalars["loss/train"] == [1.0] and (log_dir / "notes.txt").read_text() == "mine"
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 3  # the user's, and gmc-rl's scalars and hparams
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny state-only pipeline run (seconds); its config is ``tiny.yaml`` beside it."""
    root = tmp_path_factory.mktemp("f13")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    run = root / "run"
    assert main(["pipeline", "--config", str(root / "tiny.yaml"), "--out", str(run), "--no-progress"]) == 0
    return run


def _evaluate(agent: Path, out: Path, *conditions: str, video: bool) -> None:
    flags = ["--video"] if video else []
    assert main(["evaluate", "--agent", str(agent), "--conditions", *conditions, "--episodes", "1", "--n-envs", "1",
                 "--out", str(out), "--no-progress", *flags]) == 0


def test_f13_evaluate_into_the_same_out_replaces_events_and_videos(tiny_run, tmp_path):
    """Each evaluate (and a report) into one --out leaves only its own results' scalars and videos; the user's
    video, notes and event file there stay."""
    agent, out = tiny_run / "agents" / "state-seed0", tmp_path / "evv"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "mine.mp4").write_bytes(b"my own video")
    _users_events(out / "tb")
    _evaluate(agent, out, "complete", "sound", video=True)
    assert sorted(p.stem for p in (out / "videos").glob("state-*")) == ["state-seed0-complete", "state-seed0-sound"]
    _evaluate(agent, out, "complete", video=True)
    assert [p.stem for p in (out / "videos").glob("state-*")] == ["state-seed0-complete"]
    _evaluate(agent, out, "image", video=False)
    scalars = _scalars(out / "tb")
    mean = load_results(out)["results"]["state"]["image"]["episode_return"]["mean"]
    assert scalars["robustness_return/state/image"] == [pytest.approx(mean)]
    assert {tag.rsplit("/", 1)[-1] for tag in scalars if tag.startswith("robustness")} == {"image"}
    assert not list((out / "videos").glob("state-*")) and scalars["loss/train"] == [1.0]
    assert (out / "videos" / "mine.mp4").read_bytes() == b"my own video"
    # a report into the folder writes no TensorBoard data: the evaluation's events and videos go with its results
    _evaluate(agent, out, "complete", video=True)
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    assert list(_scalars(out / "tb")) == ["loss/train"] and not list((out / "videos").glob("state-*"))


def test_f13_pipeline_update_replaces_the_earlier_events(tiny_run):
    """A retrained agent's results replace the earlier ones in eval/tb: one value per tag, results.json's."""
    config = tiny_run.parent / "tiny.yaml"
    assert main(["pipeline", "--config", str(config), "--out", str(tiny_run), "--no-progress",
                 "--agent.total_timesteps", "160", "--update"]) == 0
    results = load_results(tiny_run / "eval")
    scalars = _scalars(tiny_run / "eval" / "tb")
    for condition in ("complete", "image"):
        mean = results["results"]["state"][condition]["episode_return"]["mean"]
        assert scalars[f"robustness_return/state/{condition}"] == [pytest.approx(mean)]
    assert all(len(values) == 1 for values in scalars.values()), scalars
    assert np.isfinite(scalars["hparams/return/state/image"][0])


def test_videos_turned_off_with_update_leave_with_their_marker(tmp_path):
    """`pipeline --update --evaluate.video false` left the earlier videos and the video stage's marker (which would
    have skipped the stage when videos were turned on again)."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "evaluate": {**TINY["evaluate"], "video": True}}))
    run = tmp_path / "run"
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    assert list((run / "eval" / "videos").glob("*.mp4"))
    (run / "eval" / "videos" / "mine.txt").write_text("a user's note")
    assert main(["pipeline", "--config", str(config), "--out", str(run), "--no-progress", "--evaluate.video",
                 "false", "--update"]) == 0
    assert not list((run / "eval" / "videos").glob("*.mp4"))
    assert (run / "eval" / "videos" / "mine.txt").read_text() == "a user's note"
    assert not (run / "stages" / "video.json").exists()
