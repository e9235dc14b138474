"""The installed import names (everything under gmc_rl), the import layers, and ``python -m gmc_rl``.

See docs/architecture.md: the folders envs/, agents/ and experiments/ install as gmc_rl.envs, gmc_rl.agents and
gmc_rl.experiments, so gmc-rl adds no top-level name but ``gmc_rl`` that could collide with another distribution
(PyPI has packages named ``envs`` and ``agents``) or with a user's own folder.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"gmc_rl.envs": "envs", "gmc_rl.agents": "agents", "gmc_rl.experiments": "experiments"}
"""Installed package name -> folder of the checkout (the ``package-dir`` of pyproject.toml)."""
OLD_TOP_LEVEL = ("envs", "agents", "experiments")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed (tomllib: Python 3.11+)."""
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def run_python(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh interpreter, single-threaded torch, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def installed_name(folder: Path) -> str:
    """The import name a package folder of the checkout installs as, per the package-dir mapping."""
    relative = folder.relative_to(ROOT)
    for name, mapped in MAPPED.items():
        if relative.parts[0] == mapped:
            return ".".join([name, *relative.parts[1:]])
    return ".".join(relative.parts)


def test_package_list_and_mapping_cover_every_package_folder(pyproject):
    setuptools = pyproject["tool"]["setuptools"]
    assert setuptools["package-dir"] == MAPPED
    folders = [path.parent for top in ("gmc_rl", *MAPPED.values()) for path in (ROOT / top).rglob("__init__.py")]
    assert sorted(setuptools["packages"]) == sorted(installed_name(folder) for folder in folders)
    assert all(name == "gmc_rl" or name.startswith("gmc_rl.") for name in setuptools["packages"])
    assert setuptools["package-data"]["gmc_rl.experiments"] == ["*.yaml"]


def test_mapped_packages_import_from_their_folders():
    for name, folder in MAPPED.items():
        assert Path(importlib.import_module(name).__file__).resolve() == ROOT / folder / "__init__.py"
    from gmc_rl.config import default_config_path

    assert default_config_path().resolve() == ROOT / "experiments" / "quick.yaml"


def test_no_module_imports_the_old_top_level_names():
    """Only ``gmc_rl...`` names: a top-level ``envs``/``agents``/``experiments`` is someone else's package."""
    offenders = []
    for top in ("gmc_rl", *MAPPED.values(), "tests", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names
                              if name.split(".")[0] in OLD_TOP_LEVEL]
    assert not offenders


def _layer_modules(pyproject: dict[str, Any]) -> list[set[str]]:
    """The modules of each layer of the import-linter layers contract, top layer first."""
    contract = next(c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    return [{name.strip() for name in layer.replace("|", ":").split(":")} for layer in contract["layers"]]


def test_layers_contract_names_every_module_once(pyproject):
    """A new module of gmc_rl must be placed in a layer, or lint-imports would not check it."""
    layers = _layer_modules(pyproject)
    listed = [name for layer in layers for name in layer]
    assert len(listed) == len(set(listed))
    modules = {f"gmc_rl.{path.stem}" for path in (ROOT / "gmc_rl").glob("*.py") if path.stem != "__init__"}
    modules |= {f"gmc_rl.{path.parent.name}" for path in (ROOT / "gmc_rl").glob("*/__init__.py")}
    assert set(listed) == modules | set(MAPPED)
    assert [layer for layer in layers if layer & set(MAPPED)] == [{"gmc_rl.experiments"}, {"gmc_rl.agents"},
                                                                    {"gmc_rl.envs"}]
    assert layers[-1] == {"gmc_rl.envs"}
    assert {"gmc_rl.pipeline", "gmc_rl.stages", "gmc_rl.cli", "gmc_rl.commands"} <= layers[1]
    forbidden = next(c for c in pyproject["tool"]["importlinter"]["contracts"] if c["type"] == "forbidden")
    assert set(forbidden["source_modules"]) == layers[3] | {"gmc_rl.agents"}
    assert forbidden["forbidden_modules"] == ["gmc_rl.envs"]


def test_python_dash_m_gmc_rl_runs_the_cli(tmp_path):
    version = run_python(["-m", "gmc_rl", "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "gmc-rl 0.1.0"
    listing = run_python(["-m", "gmc_rl", "envs"], cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert [line.split(":")[0] for line in listing.stdout.splitlines()] == [
        "gmc_rl/AcrobotSensors-v0", "gmc_rl/CartPoleSensors-v0", "gmc_rl/PendulumSound-v0"]
    usage = run_python(["-m", "gmc_rl"], cwd=tmp_path)
    assert usage.returncode == 2 and "usage: gmc-rl" in usage.stdout
    error = run_python(["-m", "gmc_rl", "collect", "--config", str(tmp_path / "missing.yaml")], cwd=tmp_path)
    assert error.returncode == 2 and "gmc-rl collect: error:" in error.stderr


@pytest.mark.parametrize("shadowing", ["folders", "modules"])
def test_users_own_envs_and_agents_do_not_shadow_gmc_rl(tmp_path, shadowing):
    """A user's ``envs/``, ``agents/`` and ``experiments/`` (or ``envs.py``, ...) in the working directory."""
    for name in OLD_TOP_LEVEL:
        if shadowing == "folders":
            (tmp_path / name).mkdir()
            (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
        else:
            (tmp_path / f"{name}.py").write_text("raise ImportError('the user module was imported')\n")
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('gmc_rl:gmc_rl/PendulumSound-v0')\n"
        "from gmc_rl.agents import load_agent\n"
        "from gmc_rl.config import default_config_path, load_config\n"
        "print(env.spec.id, load_config(default_config_path()).env_id, callable(load_agent))\n"
    )
    result = run_python(["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gmc_rl/PendulumSound-v0", "gmc_rl/PendulumSound-v0", "True"]
    listing = run_python(["-m", "gmc_rl", "envs"], cwd=tmp_path)
    assert listing.returncode == 0 and "gmc_rl/PendulumSound-v0" in listing.stdout, listing.stderr
