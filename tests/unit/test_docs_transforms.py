"""Run the Python examples of docs/transforms.md top to bottom in an empty folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.docs_examples import run_page


def test_transforms_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    run_page("transforms.md", min_blocks=7)
