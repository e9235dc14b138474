"""A path that is not what a command expects is named for what it is.

Every loader and every output directory answers the same cases the same way: a path that does not exist, a broken
symbolic link (naming its target), a file where a directory is expected, a directory where a file is, and an empty
value (which ``Path("")`` would silently turn into the current directory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gmc_rl.cli import main, refuse_empty_values
from gmc_rl.errors import ConfigError, ModalityError
from gmc_rl.io import ensure_writable_dir, read_json, require_existing, require_path, wrong_path
from gmc_rl.modalities import ModalitySpec, check_observation_batch

ENV = "gmc_rl/PendulumSound-v0"


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """``file``, ``folder``, ``broken`` (a link to nowhere) and ``missing`` under the working directory."""
    monkeypatch.chdir(tmp_path)
    Path("file").write_text("x")
    Path("folder").mkdir()
    Path("broken").symlink_to(tmp_path / "nowhere" / "target")
    return tmp_path


def test_wrong_path_names_each_case(paths):
    assert wrong_path("missing", "thing") == "thing not found: missing"
    assert wrong_path("broken", "thing") == (f"thing not found: broken is a broken symbolic link "
                                             f"(to {paths / 'nowhere' / 'target'})")
    assert wrong_path("file", "thing") == "thing file is a regular file, not a directory"
    assert wrong_path("folder", "thing", "file") == "thing folder is a directory, not a file"
    assert require_existing("folder", "thing") == Path("folder")
    assert require_existing("file", "thing", "file") == Path("file")


@pytest.mark.parametrize("name, kind, error", [
    ("missing", "directory", FileNotFoundError),
    ("broken", "directory", FileNotFoundError),
    ("file", "directory", NotADirectoryError),
    ("folder", "file", IsADirectoryError),
])
def test_require_existing_raises_the_os_error_of_each_case(paths, name, kind, error):
    with pytest.raises(error):
        require_existing(name, "thing", kind)
    with pytest.raises(ConfigError):  # or the caller's own error class
        require_existing(name, "thing", kind, ConfigError)


def test_a_json_file_that_is_a_directory_is_named_so(paths):
    with pytest.raises(IsADirectoryError, match="stage marker folder is a directory, not a file"):
        read_json("folder", "stage marker")


def test_an_empty_string_is_not_a_path():
    with pytest.raises(ConfigError, match="got an empty string"):
        require_path("", "a dataset must be a path", ConfigError)
    assert require_path(".", "a dataset must be a path", ConfigError) == Path(".")


@pytest.mark.parametrize("argv, named", [
    (["--data", "", "--out", "p"], "flag --data"),
    (["--data", "d", "--out="], "flag --out"),
    (["--data", "d", "--out", "   "], "flag --out"),
    (["", "--out", "r"], "argument 1"),
    (["RUN", "\t", "--out", "r"], "argument 2"),
])
def test_empty_values_are_refused_naming_where(argv, named):
    with pytest.raises(ConfigError, match=f"{named} is given an empty value"):
        refuse_empty_values(argv)
    refuse_empty_values(["--data", "d", "--out", "."])  # the current directory, spelled out, is a path


@pytest.mark.parametrize("command", [
    ["pretrain", "--data", "", "--out", "p"],
    ["collect", "--env", ENV, "--out", ""],
    ["evaluate", "--agent", ""],
    ["report", "", "--out", "r"],
    ["train", "--method", "state", "--env", ENV, "--out="],
    ["pipeline", "--config", ""],
])
def test_every_command_refuses_an_empty_value_in_one_line(paths, capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gmc-rl {command[0]}: error: flag") or "argument 1" in err
    assert "is given an empty value" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in paths.iterdir()) == ["broken", "file", "folder"]  # nothing written


@pytest.mark.parametrize("command, what", [
    (["pretrain", "--env", ENV, "--data", "{}", "--out", "p"], "dataset directory"),
    (["evaluate", "--agent", "{}"], "agent directory"),
    (["report", "{}", "--out", "r"], "run directory"),
    (["align", "--model", "{}", "--data", "folder"], "checkpoint"),
    (["train", "--method", "gmc", "--env", ENV, "--encoder", "{}", "--out", "a"], "gmc encoder checkpoint"),
])
@pytest.mark.parametrize("name, says", [
    ("missing", "not found: missing"),
    ("broken", "not found: broken is a broken symbolic link (to "),
    ("file", "file is a regular file, not a directory"),
])
def test_a_directory_argument_names_what_the_path_is(paths, capsys, command, what, name, says):
    assert main([word.replace("{}", name) for word in command]) == 2
    err = capsys.readouterr().err
    assert f"{what} {says}" in err or f"{what} {says.split(': ', 1)[-1]}" in err, err
    assert "File exists" not in err


@pytest.mark.parametrize("out", ["broken", "broken/sub"])
def test_an_output_under_a_broken_link_is_named(paths, out):
    with pytest.raises(PermissionError, match="broken is a broken symbolic link .*; remove it or choose another path"):
        ensure_writable_dir(out, "dataset directory")
    assert not (paths / "nowhere").exists()


def test_a_masked_array_is_refused_rather_than_read_as_nan(paths):
    spec = ModalitySpec(name="sound", shape=(2,), dtype="float32", kind="vector", low=-1.0, high=1.0)
    masked = np.ma.masked_array(np.zeros((3, 2), np.float32), mask=[[0, 1], [0, 0], [0, 0]])
    with pytest.raises(ModalityError, match=r"modality 'sound': a masked array \(numpy.ma"):
        check_observation_batch({"sound": masked}, {"sound": spec}, ["sound"])
    assert check_observation_batch({"sound": masked.filled(0.0)}, {"sound": spec}, ["sound"]) == 3


# -- symbolic link loops, quoted names, links to a checkpoint's file -------------------------------------------------


@pytest.fixture
def loop(paths):
    Path("loopa").symlink_to("loopb")
    Path("loopb").symlink_to("loopa")
    return Path("loopa")


def test_a_symbolic_link_loop_is_named_not_a_traceback(loop):
    from gmc_rl.io import distinct_paths, resolve_path

    assert wrong_path(loop, "agent directory") == ("agent directory not found: loopa is a symbolic link loop (it "
                                                   "never reaches a file or directory)")
    for call in (lambda: resolve_path(loop), lambda: distinct_paths([loop, "folder"])):
        with pytest.raises(OSError, match="loopa is a symbolic link loop"):
            call()


@pytest.mark.parametrize("command", [
    ["evaluate", "--agent", "loopa"],
    ["report", "loopa", "--out", "r"],
    ["report", "folder", "--out", "loopa/sub"],
    ["collect", "--env", ENV, "--out", "loopa/sub"],
])
def test_commands_name_a_symbolic_link_loop_in_one_line(loop, capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert "loopa" in err and "is a symbolic link loop" in err and len(err.splitlines()) == 1, err


def test_a_name_with_a_newline_or_blanks_is_shown_quoted(paths):
    assert wrong_path("folder\n", "checkpoint") == "checkpoint not found: 'folder\\n'"
    assert wrong_path(" ", "dataset directory") == "dataset directory not found: ' '"


def test_a_link_to_a_checkpoints_file_names_its_checkpoint(tmp_path):
    from gmc_rl.checkpoint import checkpoint_dir

    (tmp_path / "ckpt").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "ckpt" / name).write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "ckpt" / "config.json")
    assert checkpoint_dir(tmp_path / "link") == (tmp_path / "ckpt").resolve()


def test_a_collection_policy_that_is_not_a_file_is_named(paths):
    from gmc_rl.collect import load_behaviour_policy

    for name, says in [("folder", "policy file folder is a directory, not a file"),
                       ("broken", "policy file not found: broken is a broken symbolic link"),
                       ("missing.zip", "policy file not found: missing.zip")]:
        with pytest.raises(ConfigError, match=says):
            load_behaviour_policy(name, None, None)


# -- outputs that would replace or mix with what is not theirs --------------------------------------------------------


def test_a_plot_replaces_only_a_plot_gmc_rl_wrote(paths):
    import os
    import zlib

    from gmc_rl.io import LATENTS_PCA, PNG_KIND_KEY, PNG_SOFTWARE, is_own_png
    from gmc_rl.metrics import check_png_out

    def check_plot_path(plot):
        check_png_out(plot, "--plot")

    os.mkfifo("fifo.png")
    Path("photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"a user's picture")
    Path("link.png").symlink_to(paths / "photo.png")
    Path("ckpt").mkdir()
    Path("ckpt/model.safetensors").write_text("x")
    Path("dir.png").mkdir()
    for plot, says in [("file", "must name a .png file"), ("notes.txt", "must name a .png file"),
                       ("photo.png", "exists and is not a plot gmc-rl wrote; it is not overwritten"),
                       ("link.png", "is a symbolic link"), ("broken", "must name a .png"),
                       ("fifo.png", r"is a FIFO \(named pipe\), not a regular file"),
                       ("dir.png", "is a directory, not a file"),
                       ("ckpt/pca.png", "lies in a checkpoint directory")]:
        with pytest.raises(ConfigError, match=says):
            check_plot_path(plot)
    check_plot_path("new.png")
    def text_chunk(keyword: str, text: str) -> bytes:
        body = keyword.encode() + b"\x00" + text.encode()
        return len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")

    Path("own.png").write_bytes(b"\x89PNG\r\n\x1a\n" + text_chunk("Software", PNG_SOFTWARE)
                                + text_chunk(PNG_KIND_KEY, LATENTS_PCA))
    assert is_own_png("own.png", LATENTS_PCA) and not is_own_png("photo.png", LATENTS_PCA)
    check_plot_path("own.png")  # gmc-rl's own plot is replaced
    Path("old.png").write_bytes(b"\x89PNG\r\n\x1a\n" + text_chunk("Software", PNG_SOFTWARE))
    with pytest.raises(ConfigError, match="before its figures said what they show"):
        check_plot_path("old.png")  # an unmarked gmc-rl PNG may be an evaluation's results figure


def test_results_never_go_into_an_agents_own_folders(paths):
    from gmc_rl.pipeline import check_results_out

    Path("agent/checkpoints").mkdir(parents=True)
    Path("agent/agent.json").write_text("{}")
    for out in ("agent/checkpoints", "agent/tb", "agent/tb/x", "agent/eval"):
        with pytest.raises(ConfigError, match="the agent's own .* folder, which its training writes"):
            check_results_out(out, "evaluate")
    check_results_out("agent/robustness", "evaluate")


@pytest.mark.parametrize("command", [["pretrain", "--out", "{}", "--resume"], ["train", "--out", "{}", "--resume"]])
@pytest.mark.parametrize("name, says", [("file", "--out file is a regular file, not a directory"),
                                        ("broken", "--out not found: broken is a broken symbolic link")])
def test_resume_names_what_out_is(paths, capsys, command, name, says):
    assert main([word.replace("{}", name) for word in command]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("name, content", [("results.png", b"\x89PNG\r\n\x1a\n a user's own figure"),
                                           ("results.md", b"my notes\n")])
def test_a_users_file_beside_gmc_rl_results_is_not_overwritten(paths, name, content):
    """Before, only results.json was checked: a user's results.png or results.md beside it was replaced."""
    from helpers import fake_run

    from gmc_rl.pipeline import merge_runs
    from gmc_rl.results import write_results

    results = merge_runs([fake_run(paths / "RUN", "gmc-seed0", [-5.0, -7.0])])
    write_results(results, "out")
    write_results(results, "out")  # gmc-rl's own results are replaced
    Path("out", name).write_bytes(content)
    with pytest.raises(ConfigError, match=f"{name} is not .* gmc-rl wrote"):
        write_results(results, "out")
    assert Path("out", name).read_bytes() == content


def test_more_reference_neighbours_than_reference_latents_is_refused_not_clamped():
    """Before, pretraining clamped them silently (min), while set_reference_latents refuses the same thing."""
    from gmc_rl.config import PretrainConfig

    with pytest.raises(ConfigError, match=r"'pretrain.reference_neighbours': must be at most "
                                          r"pretrain.reference_latents \(3\), got 5"):
        PretrainConfig(reference_latents=3, reference_neighbours=5)
    assert PretrainConfig(reference_latents=0, reference_neighbours=5).reference_neighbours == 5  # none stored


def test_a_flag_given_twice_is_refused_whatever_the_command(capsys):
    """Before, argparse kept the last value silently (--model, --data, --out, --plot); --import may repeat."""
    from gmc_rl.cli import refuse_repeated_flags

    for argv in (["--model", "p1", "--model", "p2"], ["--out=e1", "--out", "e2"], ["--plot", "a.png", "--plot=b.png"]):
        with pytest.raises(ConfigError, match=r"is given 2 times \(.*\); give it once"):
            refuse_repeated_flags(argv)
    refuse_repeated_flags(["--import", "a", "--import", "b", "--seeds", "0", "1"])
    assert main(["align", "--model", "p1", "--model", "p2", "--data", "d1"]) == 2
    assert "--model is given 2 times (p1, p2); give it once" in capsys.readouterr().err


def test_outputs_never_go_into_another_artifacts_folders(paths):
    """Before, report/evaluate --out RUN/stages or PRETRAINING/tb, and pipeline --out RUN/data/x, were accepted
    (the last one broke the run's collect stage)."""
    from gmc_rl.config import ExperimentConfig
    from gmc_rl.run_dir import check_results_out, check_run_dir

    Path("run/stages").mkdir(parents=True)
    Path("run/stages/collect.json").write_text("{}")
    Path("run/gmc-rl-run.json").write_text("{}")
    Path("pre/tb").mkdir(parents=True)
    Path("pre/tb/events.out").write_text("x")
    Path("pre/model.safetensors").write_text("x")
    for out in ("run/stages", "run/stages/x", "pre/tb", "pre/tb/a/b"):
        with pytest.raises(ConfigError, match="a folder of (a pipeline run|a checkpoint) directory"):
            check_results_out(out, "report")
        with pytest.raises(ConfigError, match="a pipeline run gets a folder of its own"):
            check_run_dir(ExperimentConfig(), f"{out}/newrun")
    check_results_out("run/comparison", "report")  # a new folder of its own inside a run is fine
    check_run_dir(ExperimentConfig(), "elsewhere/newrun")


def test_plot_latents_pca_from_python_replaces_only_its_own_plots(paths):
    """Before, plot_latents_pca(model, obs, "d/train.npz") replaced the dataset file with a PNG."""
    import torch
    from helpers import sample_batch, space_m2

    from gmc_rl.config import ModelConfig
    from gmc_rl.metrics import plot_latents_pca
    from gmc_rl.model import GMCModel

    torch.manual_seed(0)
    model = GMCModel.from_space(space_m2(), ModelConfig(latent_dim=4, common_dim=8, head_hidden=8,
                                                        conv_channels=[4], mlp_hidden=[8]))
    obs = sample_batch(space_m2(), 6)
    Path("train.npz").write_bytes(b"data")
    Path("photo.png").write_bytes(b"\x89PNG\r\n\x1a\n a user's picture")
    for target, says in [("train.npz", "must name a .png file"), ("photo.png", "is not a plot gmc-rl wrote"),
                         ("file", "must name a .png file")]:
        with pytest.raises(ConfigError, match=says):
            plot_latents_pca(model, obs, target)
    assert Path("train.npz").read_bytes() == b"data"
    plot_latents_pca(model, obs, "pca.png")
    plot_latents_pca(model, obs, "pca.png")  # its own plot is replaced


def test_results_and_plots_written_from_python_keep_out_of_artifacts(paths):
    """Before, only the commands checked their --out: ``write_results(results, "RUN/eval")`` from Python replaced a
    pipeline run's own results, and ``plot_latents_pca`` added a PNG to a dataset's or an agent's folders."""
    import torch
    from helpers import fake_run, sample_batch, space_m2

    from gmc_rl.config import ModelConfig
    from gmc_rl.metrics import plot_latents_pca
    from gmc_rl.model import GMCModel
    from gmc_rl.pipeline import merge_runs
    from gmc_rl.results import write_results

    results = merge_runs([fake_run(paths / "other", "gmc-seed0", [-5.0, -7.0])])
    Path("run/eval").mkdir(parents=True)
    Path("run/gmc-rl-run.json").write_text("{}")
    Path("run/data").mkdir()
    Path("run/data/train.npz").write_text("x")
    Path("agent/checkpoints").mkdir(parents=True)
    Path("agent/agent.json").write_text("{}")
    Path("data/metadata.json").parent.mkdir()
    Path("data/metadata.json").write_text("{}")
    refused = {"run/eval": "the evaluation folder of the pipeline run", "run/eval/sub": "the evaluation folder",
               "run": "is a pipeline run directory", "run/data/x": "a folder of a pipeline run directory",
               "agent/checkpoints": "the agent's own checkpoints/ folder", "data": "is a dataset directory",
               "": "out_dir is empty", "run/../run/eval": "the evaluation folder"}
    for out, says in refused.items():
        with pytest.raises(ConfigError, match=says):
            write_results(results, out, plot=False)
    assert sorted(p.name for p in Path("run/eval").iterdir()) == []
    write_results(results, "run/eval", plot=False, replace=True)  # the run's own report stage
    write_results(results, "agent/robustness", plot=False)  # a folder of results beside the agent's own

    torch.manual_seed(0)
    model = GMCModel.from_space(space_m2(), ModelConfig(latent_dim=4, common_dim=8, head_hidden=8,
                                                        conv_channels=[4], mlp_hidden=[8]))
    obs = sample_batch(space_m2(), 6)
    for target, says in [("data/pca.png", "lies in a dataset directory"),
                         ("agent/checkpoints/pca.png", "the agent.s own checkpoints/ folder"),
                         ("run/data/pca.png", "a folder of a pipeline run directory")]:
        with pytest.raises(ConfigError, match=says):
            plot_latents_pca(model, obs, target)
        assert not Path(target).exists()
    plot_latents_pca(model, obs, "agent/robustness/pca.png")
