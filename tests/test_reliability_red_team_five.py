"""Red-team pass five, B1-B4: videos that replaced a user's file or each other, and report pooling runs evaluated
under other conditions or made on differently configured envs. Each test failed before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from helpers import fake_run

from gmc_rl.errors import ConfigError
from gmc_rl.pipeline import merge_runs
from gmc_rl.results import summarize


def _frames(count: int = 4) -> list[np.ndarray]:
    return [np.full((16, 16, 3), 30 * i, dtype=np.uint8) for i in range(count)]


def test_b1_a_video_never_replaces_a_users_file(tmp_path):
    """`evaluate --evaluate.video true` replaced DIR/videos/<agent>-<condition>.mp4 that the user had put there."""
    from gmc_rl.video import write_video

    videos = tmp_path / "videos"
    videos.mkdir()
    mine = videos / "gmc-seed0-complete.mp4"
    mine.write_bytes(b"my precious video")
    with pytest.raises(ConfigError, match=r"gmc-seed0-complete\.mp4 was not written by gmc-rl"):
        write_video(_frames(), mine, fps=10)
    assert mine.read_bytes() == b"my precious video"
    # evaluate checks every video path before it evaluates anything
    from gmc_rl.agent_evaluation import check_agent_videos

    with pytest.raises(ConfigError, match=r"gmc-seed0-complete\.mp4 was not written by gmc-rl"):
        check_agent_videos(["gmc-seed0"], ["complete", "sound"], videos)
    # a video gmc-rl wrote is replaced on a rerun
    own = write_video(_frames(), videos / "clip.mp4", fps=10)
    assert write_video(_frames(6), own, fps=10) == own


def test_b2_two_agents_of_one_folder_name_get_their_own_videos(tmp_path):
    """`evaluate --agent run1/agents/state-seed0 run2/agents/state-seed0 --evaluate.video true` wrote both videos
    to videos/state-seed0-complete.mp4: one was lost."""
    from gmc_rl.agent_evaluation import agent_video_paths, check_agent_videos, video_names

    first, second = tmp_path / "run1" / "agents" / "state-seed0", tmp_path / "run2" / "agents" / "state-seed0"
    names = video_names([first, second, tmp_path / "run1" / "agents" / "gmc-seed0"])
    assert names == ["run1-agents-state-seed0", "run2-agents-state-seed0", "gmc-seed0"]
    paths = [agent_video_paths(name, ["complete"], tmp_path / "videos")[0] for name in names]
    assert len(set(paths)) == 3
    with pytest.raises(ConfigError, match=r"the agents .*run1.* and .*run2.* would write the same videos"):
        check_agent_videos(["state-seed0", "state-seed0"], ["complete"], tmp_path / "videos", [first, second])


def test_b3_report_refuses_runs_evaluated_under_other_conditions(tmp_path):
    """The complete cell pooled two agents, the sound cell one: a true-state agent showed +6.9 % under sound."""
    fake_run(tmp_path / "a", "gmc-seed0", [-100.0, -110.0])
    b = fake_run(tmp_path / "b", "gmc-seed1", [-200.0, -210.0])
    record_path = b / "eval" / "runs" / "gmc-seed1.json"
    record = json.loads(record_path.read_text())
    record["evaluation"]["sound"] = summarize([({"seed": 0}, [-300.0, -310.0], [10, 10])])
    record_path.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=r"gmc-seed0 and .*gmc-seed1 \('gmc' agents\) were evaluated under "
                                          r"different conditions \(\['complete'\] vs \['complete', 'sound'\]\)"):
        merge_runs([tmp_path / "a", b])


def test_b4_report_refuses_runs_of_differently_configured_envs(tmp_path):
    """Runs of one env id with other env_kwargs (gravity) were pooled into one cell."""
    fake_run(tmp_path / "a", "gmc-seed0", [-100.0, -110.0])
    b = fake_run(tmp_path / "b", "gmc-seed1", [-200.0, -210.0])
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["env_kwargs"] = {"g": 2.0}
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"a and .*b were made with different env_kwargs \(g: unset vs 2\.0"):
        merge_runs([tmp_path / "a", b])
