"""Run the Python examples of docs/batch.md top to bottom in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "batch.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_batch_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "docs_batch"}
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 6
    for index, code in enumerate(blocks):
        try:
            exec(
                compile(code, f"docs/batch.md[block {index}]", "exec", dont_inherit=True), namespace
            )
        except Exception as error:  # pragma: no cover - the message says which block failed
            raise AssertionError(f"docs/batch.md block {index} failed: {error!r}") from error
