"""DuckDB sources are opened read-only (issue 12, item 5).

DuckDB lets one process write a file or any number read it. A source (and ``validate``) must
not take the write lock: another process reading the file must not make the load fail, and a
process writing it must produce a clear error naming the connection.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import duckdb
import pytest

from ematix_engine import ematix, pk, register_connection
from ematix_engine.batch.validate import validate_pipeline
from ematix_engine.connections import DuckDBConnection
from ematix_engine.errors import ConnectionFailedError
from ematix_engine.types import BigInt, Text

HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read")
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def held(path: Path, how: str) -> Iterator[None]:
    """Another process holds ``path`` open (``read`` or ``write``) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "holding"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)


@pytest.fixture
def pipeline(tmp_path: Path):
    source = tmp_path / "source.duckdb"
    with duckdb.connect(str(source)) as con:
        con.execute("CREATE TABLE events AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(id, name)")
    register_connection(DuckDBConnection(name="events_db", path=str(source)))
    register_connection(DuckDBConnection(name="default", path=str(tmp_path / "wh.duckdb")))

    @ematix.table(schema="an")
    class Events:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Events, mode="merge", source_connection="events_db")
    def events(conn):
        return "SELECT id, name FROM events"

    return source, events


def test_a_source_another_process_reads_still_loads(pipeline) -> None:
    source, events = pipeline
    with held(source, "read"):
        assert validate_pipeline(events)
        assert events.run().rows_inserted == 2


def test_a_source_another_process_writes_is_a_clear_error(pipeline) -> None:
    source, events = pipeline
    with held(source, "write"), pytest.raises(ConnectionFailedError) as caught:
        events.run()
    message = str(caught.value)
    assert "events_db" in message and "open for writing in another process" in message
    assert "pipeline 'events'" in message


def test_a_source_this_process_writes_is_shared(pipeline) -> None:
    source, events = pipeline
    with duckdb.connect(str(source)) as writer:
        writer.execute("INSERT INTO events VALUES (3, 'c')")
        assert events.run().rows_inserted == 3
