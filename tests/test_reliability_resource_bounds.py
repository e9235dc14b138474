"""Resource bounds and ownership found by a red-team pass, each fixed for its whole class.

Before, a JSON file of any size was read whole (a raw MemoryError under a memory limit), a dataset archive was
unpacked in full before its SHA-256 was checked (gigabytes from a few megabytes, or a raw "Unable to allocate 7.28
TiB"), any PNG gmc-rl wrote counted as every writer's own (``align --plot EVAL/results.png`` replaced an
evaluation's figure), an over-long path component left folders behind with a raw ``[Errno 36]``, and
``write_results`` raised raw errors and left an empty folder. Each test covers one class and runs in seconds: no
training. The tests are rows 132-136 of the catalogue in docs/reliability.md.
"""

from __future__ import annotations

import copy
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import copy_of, fake_run, pair_config

from gmc_rl.cli import main
from gmc_rl.collect import collect
from gmc_rl.data import load_dataset, load_npz
from gmc_rl.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return collect(pair_config(), tmp_path_factory.mktemp("bounds") / "data", progress=False)


@pytest.fixture
def results(tmp_path_factory):
    from gmc_rl.pipeline import merge_runs

    return merge_runs([fake_run(tmp_path_factory.mktemp("run") / "RUN", "gmc-seed0", [-5.0, -7.0, -6.0])])


def _listing(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


# ----------------------------------------------------------------------------------------------------------------
# B2: a PNG writer replaces only a PNG of its own kind.


def test_a_png_writer_replaces_only_a_figure_of_its_own_kind(tmp_path, monkeypatch, results):
    """Before, ``gmc-rl align --plot EVAL/results.png`` and ``plot_latents_pca(..., "EVAL/results.png")`` replaced
    an evaluation's results figure: any PNG marked 'Software: gmc-rl' counted as the plot writer's own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gmc_rl.io import LATENTS_PCA, PNG_SOFTWARE, RESULTS_FIGURE, UNMARKED, png_kind, png_metadata
    from gmc_rl.metrics import check_png_out
    from gmc_rl.results import write_results

    monkeypatch.chdir(tmp_path)
    write_results(results, "ev")
    assert png_kind("ev/results.png") == RESULTS_FIGURE
    figure = Path("ev/results.png").read_bytes()
    with pytest.raises(ConfigError, match="is a results figure .* not a latents PCA plot; it is not overwritten"):
        check_png_out("ev/results.png", "--plot")  # align --plot and plot_latents_pca call it first
    assert Path("ev/results.png").read_bytes() == figure

    def save(path: str, metadata: dict[str, str]) -> None:
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1])
        fig.savefig(path, format="png", metadata=metadata)
        plt.close(fig)

    save("pca.png", png_metadata(LATENTS_PCA))
    check_png_out("pca.png", "--plot")  # a latents PCA plot is replaced by the next one
    save("old.png", {"Software": PNG_SOFTWARE})  # written before PNGs said what they show
    assert png_kind("old.png") == UNMARKED
    with pytest.raises(ConfigError, match="before its figures said what they show, so it may be another command's"):
        check_png_out("old.png", "--plot")

    # the other way round: a PCA plot saved as an evaluation's results.png is not replaced by the results figure
    save("ev/results.png", png_metadata(LATENTS_PCA))
    with pytest.raises(ConfigError, match="results.png is a latents PCA plot .* not a results figure"):
        write_results(results, "ev")
    assert png_kind("ev/results.png") == LATENTS_PCA
    # an older, unmarked figure beside gmc-rl's own results.json and table is the results figure it replaces
    save("ev/results.png", {"Software": PNG_SOFTWARE})
    write_results(results, "ev")
    assert png_kind("ev/results.png") == RESULTS_FIGURE


# ----------------------------------------------------------------------------------------------------------------
# B4: JSON files are read only up to a cap that fits the largest legitimate file of their kind.


def test_json_files_over_their_cap_are_refused_before_they_are_read(tmp_path, monkeypatch, dataset):
    """Before, ``read_json`` read any file whole: a 4 GiB ``metadata.json`` was a raw MemoryError traceback under
    ``ulimit -v``, and an SB3 zip's ``data`` entry was unpacked whatever its size."""
    from gmc_rl import io
    from gmc_rl.results import load_results
    from gmc_rl.sb3_zip import read_sb3_data

    big = copy_of(dataset, tmp_path)
    os.truncate(big / "metadata.json", 4 * 2**30)  # sparse: nothing is written, nothing may be read
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"metadata.json is 4 GiB \(4,294,967,296 bytes\), more than the "
                                               r"256 MiB such a file can be \(MAX_JSON_BYTES"):
            load_dataset(big)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()

    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "results.json").write_bytes(b"")
    os.truncate(tmp_path / "ev" / "results.json", 3 * 2**30)
    with pytest.raises(ValueError, match=r"more than the 2 GiB such a file can be \(MAX_RESULTS_JSON_BYTES"):
        load_results(tmp_path / "ev")

    with zipfile.ZipFile(tmp_path / "model.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", json.dumps({"pad": "x" * 5000}))
    monkeypatch.setattr(io, "MAX_JSON_BYTES", 1000)  # a small cap stands for the 256 MiB one
    with pytest.raises(ValueError, match="its data entry unpacks to 5,011 bytes, more than the 1,000 allowed"):
        read_sb3_data(tmp_path / "model.zip")


# ----------------------------------------------------------------------------------------------------------------
# B5: a dataset archive is checked (members, headers, SHA-256) before anything in it is unpacked.


def _add_member(archive_path: Path, name: str, header: dict, data: bytes = b"", chunks: int = 0) -> None:
    with zipfile.ZipFile(archive_path, "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(data)
            for _ in range(chunks):
                member.write(bytes(1 << 20))


def test_dataset_archives_are_checked_before_they_are_unpacked(tmp_path, dataset):
    """Before, ``load_dataset`` unpacked every member of an archive and only then compared it with the metadata:
    an extra 64 MiB member of zeros (64 KB in the file) was unpacked, a header claiming shape (10**12,) was a raw
    'Unable to allocate 7.28 TiB' traceback."""
    bomb = copy_of(dataset, tmp_path / "bomb")
    _add_member(bomb / "train.npz", "x.npy", {"descr": "|u1", "fortran_order": False, "shape": (64 << 20,)},
                chunks=64)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"train.npz holds arrays \['x'\] that metadata.json does not list"):
            load_dataset(bomb)
        assert tracemalloc.get_traced_memory()[1] < 8 * 2**20  # nothing of the 64 MiB was unpacked
    finally:
        tracemalloc.stop()

    claim = copy_of(dataset, tmp_path / "claim")
    _add_member(claim / "val.npz", "x.npy", {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with pytest.raises(DatasetError, match=r"val.npz holds arrays \['x'\] that metadata.json does not list"):
        load_dataset(claim)
    with pytest.raises(DatasetError, match=r"array 'x' \(float64\[1000000000000\]\) needs 7.3 TiB, more than the "
                                           "memory available"):
        load_npz(claim / "val.npz")  # without metadata to compare with: the allocation is refused, not raised

    # a listed array whose header claims another size: named before a byte of it is allocated
    header = copy_of(dataset, tmp_path / "header")
    with np.load(header / "val.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    rows = len(arrays["rewards"])
    with zipfile.ZipFile(header / "val.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                if name == "rewards":
                    np.lib.format.write_array_header_1_0(
                        member, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
                else:
                    np.lib.format.write_array(member, array)
    with pytest.raises(DatasetError, match=rf"array 'rewards' is float32\[1000000000000\], metadata says "
                                           rf"float32\[{rows}\]"):
        load_dataset(header)


# ----------------------------------------------------------------------------------------------------------------
# W2: a path component over the file system's name limit is named, and nothing is created.


def test_an_over_long_path_component_is_named_and_nothing_is_left(tmp_path, monkeypatch, capsys, results):
    """Before, ``collect --out x/<300 bytes>/y`` created ``x/`` and failed with a raw ``[Errno 36] File name too
    long`` naming ``.../metadata.json`` (pipeline: ``.../gmc-rl-run.json``) as if that file were the problem."""
    from gmc_rl.io import atomic_path, ensure_writable_dir
    from gmc_rl.results import write_results

    monkeypatch.chdir(tmp_path)
    long = "a" * 300
    says = "is 300 bytes long, more than the 255 bytes a file or directory name can have"
    for out in (f"x/{long}/y", long):
        for command in (["collect", "--out", out, "--collect.steps", "10"],
                        ["pipeline", "--out", out, "--collect.steps", "10", "--jobs", "1"],
                        ["train", "--method", "state", "--out", out, "--agent.total_timesteps", "10"]):
            assert main(command) == 2, command
            err = capsys.readouterr().err
            assert says in err and "Errno" not in err and "metadata.json" not in err, err
        with pytest.raises(PermissionError, match=says):
            ensure_writable_dir(out, "dataset directory")
        with pytest.raises(PermissionError, match=says):
            with atomic_path(f"{out}/file.json"):
                pass
        with pytest.raises(ConfigError, match=says):
            write_results(results, out)
    assert _listing(tmp_path) == []


# ----------------------------------------------------------------------------------------------------------------
# W7: write_results checks its arguments before it makes anything.


def test_write_results_refuses_bad_results_and_out_dirs_before_making_anything(tmp_path, monkeypatch, results):
    """Before, a NaN value was a raw ValueError after an empty folder was made; ``{}`` a KeyError, ``[]`` an
    AttributeError, a method without results a KeyError, ``out_dir=None`` or ``5`` a TypeError."""
    from gmc_rl.results import write_results

    monkeypatch.chdir(tmp_path)
    method, condition = results["methods"][0], results["conditions"][0]
    nan = copy.deepcopy(results)
    nan["results"][method][condition]["episode_return"]["mean"] = float("nan")
    inf = copy.deepcopy(results)
    inf["settings"]["x"] = float("inf")
    ghost = copy.deepcopy(results)
    ghost["methods"].append("ghost")
    cases = [
        (nan, "out", f"key 'results.{method}.{condition}.episode_return.mean' is not a finite number"),
        (inf, "out", "key 'settings.x' is not a finite number"),
        ({}, "out", "is not a gmc-rl results document"),
        ([], "out", "is not a gmc-rl results document"),
        (ghost, "out", "lacks the required key 'results.ghost'"),
        (results, None, "out_dir must be the path of a folder .*, got NoneType None"),
        (results, 5, "out_dir must be the path of a folder .*, got int 5"),
    ]
    for given, out, says in cases:
        with pytest.raises(ConfigError, match=says):
            write_results(given, out)
        assert _listing(tmp_path) == [], (says, _listing(tmp_path))
    write_results(results, "out")
    assert _listing(tmp_path / "out") == ["results.json", "results.md", "results.png"]


def test_a_large_file_that_cannot_start_json_is_refused_from_its_first_bytes(tmp_path):
    """Before, a results.json of 1.9 GB of NUL bytes was read whole (3.9 GB of memory, 22 s) before json said it
    was not JSON; now its first bytes decide (the sparse file here takes no disk space)."""
    from gmc_rl.io import MAX_RESULTS_JSON_BYTES, read_json

    path = tmp_path / "results.json"
    with open(path, "wb") as handle:
        handle.truncate(100 * 2**20)
    with pytest.raises(ValueError, match=r"results file .* is not valid JSON \(it starts with byte b'\\x00'\)"):
        read_json(path, "results file", MAX_RESULTS_JSON_BYTES)
    path.write_text('\n  {"format": 1}')
    assert read_json(path, "results file") == {"format": 1}
