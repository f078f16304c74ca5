"""Run the examples of docs/connections.md, top to bottom, in one namespace.

TOML blocks whose first line is a comment naming a file (`# ./.ematix.toml`,
`# ~/.ematix/connections.toml`) are written to that file (in the sandbox cwd / HOME) when the
block is reached; Python blocks are executed. The page promises the variables set below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_connections_support import Sandbox, isolate_connections

DOC = Path(__file__).resolve().parents[2] / "docs" / "connections.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_COMMENT = re.compile(r"^#\s*(\./|~/)(\S+)")

DOC_ENV = {
    "WAREHOUSE_DSN": "postgres:pw@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP": "localhost:9092",
    "KAFKA_USER": "alice",
    "KAFKA_PASS": "kafka-secret",
    "SR_URL": "http://localhost:8081",
}


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    for key, value in DOC_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NOT_SET_YET", raising=False)
    yield from isolate_connections(monkeypatch, tmp_path)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def test_the_page_documents_the_promised_variables() -> None:
    text = DOC.read_text()
    for key, value in DOC_ENV.items():
        assert f"{key}={value}" in text


def test_examples_run(sandbox: Sandbox) -> None:
    namespace: dict[str, object] = {"__name__": "docs_connections"}
    ran = 0
    for language, code in blocks():
        if language == "toml":
            target = FILE_COMMENT.match(code)
            if target is not None:
                root = sandbox.cwd if target.group(1) == "./" else sandbox.home
                path = root / target.group(2)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(code)
        elif language == "python":
            namespace.pop("message", None)  # blocks read `message` set by their own except
            exec(compile(code, f"{DOC.name}:python-block-{ran}", "exec"), namespace)
            ran += 1
    assert ran >= 10


def test_every_connection_type_is_documented() -> None:
    from ematix_engine.connections import KINDS

    text = DOC.read_text()
    for kind, cls in KINDS.items():
        assert f"`{kind}`" in text
        assert f"`{cls.__name__}`" in text
