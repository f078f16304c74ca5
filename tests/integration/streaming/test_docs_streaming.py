"""Run the examples of docs/streaming.md top to bottom (Kafka ones against the test broker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.docs_examples import DOCS, run_page

TOML = re.compile(r"^```toml\n# (\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_streaming_page_examples_run(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "streaming.md").read_text()
    for name, body in TOML.findall(text):
        (tmp_path / name).write_text(body)
    run_page("streaming.md", min_blocks=8)
