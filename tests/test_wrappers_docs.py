"""The Python examples of docs/wrappers.md run as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "wrappers.md"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_documented_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_wrappers"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{DOC.name}[python block {index}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "['sound'] [0 1] 0" in out
    assert "Box(-1.0, 1.0, (10,), float32) (10,) ['sound']" in out
    assert "['complete', 'image', 'sound']" in out
    assert "(8, 10)" in out
