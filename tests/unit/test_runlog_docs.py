"""Every ```python block of docs/operations.md runs, in a fresh namespace and a temp cwd."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_operations_example_runs(index, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[index], f"{DOC.name}[python block {index + 1}]", "exec")
    with caplog.at_level(logging.WARNING):
        exec(code, {"__name__": f"docs_example_{index}"})
