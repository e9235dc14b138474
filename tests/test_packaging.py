"""What a package people install carries: the license, type information, and one version in every place."""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gmc_rl

ROOT = Path(__file__).resolve().parents[1]


def pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match is not None
    return match.group(1)


def test_one_version_in_pyproject_the_package_and_the_changelog():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (\d+\.\d+\.\d+)\b", changelog, re.M)
    assert headings, "CHANGELOG.md has no version heading"
    assert pyproject_version() == gmc_rl.__version__ == headings[0]
    assert "`v<version>`" in changelog  # the tag scheme is stated


def test_license_is_the_mit_license_pyproject_names():
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 gmc-rl developers" in text


def test_the_wheel_carries_py_typed_and_the_license(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("results", "__pycache__", "*.pyc", "runs")
    for name in ("gmc_rl", "envs", "agents", "experiments"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                             "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("gmc_rl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read(f"gmc_rl-{pyproject_version()}.dist-info/METADATA"))
    assert "gmc_rl/py.typed" in names
    assert any(re.fullmatch(r"gmc_rl-[^/]+\.dist-info/(licenses/)?LICENSE", name) for name in names), names
    assert metadata["License"] == "MIT" or metadata["License-Expression"] == "MIT"
