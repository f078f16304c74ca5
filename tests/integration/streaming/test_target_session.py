"""Streaming targets keep one session between writes where that is safe.

PostgreSQL: one session for the whole stream, replaced when it breaks. DuckDB: one session while
batches keep coming, closed when the stream idles (or after a while) so other processes can
open the file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest

from ematix_engine import MemorySource
from ematix_engine.connections import DuckDBConnection, PostgresConnection
from ematix_engine.streaming import Target
from ematix_engine.streaming import targets as targets_module
from ematix_engine.streaming.api import streaming_spec
from ematix_engine.streaming.runner import StreamRunner
from ematix_engine.streaming.targets import open_target
from tests.fixtures.postgres import PgSchema


def _rows(start: int, stop: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, stop), pa.int64())})


def test_one_session_between_writes_and_a_new_one_after_it_breaks(pg_schema: PgSchema) -> None:
    connection = PostgresConnection(name="wh", url=pg_schema.dsn)
    target = open_target(Target(connection=connection, table=(pg_schema.name, "t")), "sessions")
    try:
        target.warm()
        session = target._store
        assert session is not None
        target.write(_rows(0, 3), batch_id="b1", positions=None)
        target.write(_rows(3, 5), batch_id="b2", positions=None)
        assert target._store is session, "each write opened its own session"

        # The server ends the session between two batches (a restart, an idle timeout).
        with psycopg.connect(pg_schema.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (session.con.info.backend_pid,))
        target.write(_rows(5, 8), batch_id="b3", positions=None)

        assert target._store is not session
        with psycopg.connect(pg_schema.dsn) as check:
            ids = check.execute(f'SELECT id FROM "{pg_schema.name}".t ORDER BY id').fetchall()
        assert [i for (i,) in ids] == list(range(8))
    finally:
        target.close()
    assert target._store is None


def _readable_elsewhere(path: Path) -> int | None:
    """Rows of ``events`` as another process sees them, or None while the file is locked."""
    code = (
        "import sys, duckdb\n"
        "try:\n"
        "    con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "except duckdb.IOException:\n"
        "    print('locked'); sys.exit(0)\n"
        "print(con.execute('SELECT count(*) FROM main.events').fetchone()[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    out = done.stdout.strip()
    return None if out == "locked" else int(out)


def test_a_duckdb_file_is_kept_between_writes_and_let_go_when_the_stream_is_idle(
    tmp_path: Path, pipeline_name: str
) -> None:
    """Busy: one DuckDB session for every batch. Idle: the file is closed, others can read it."""
    path = tmp_path / "wh.duckdb"
    source = MemorySource("events", [{"id": i} for i in range(30)], batch_size=10)
    spec = streaming_spec(
        name=pipeline_name,
        source=source,
        target=DuckDBConnection(name="wh", path=str(path)),
        target_table=("main", "events"),
        batch_size=10,
        idle_pause_ms=50,
    )
    sessions: list[int] = []
    runner = StreamRunner(spec)

    def progress(_: object) -> None:  # on the pipeline's thread, after each commit
        target = runner._parts.targets[0]
        sessions.append(id(target._store) if target._store is not None else 0)

    runner.on_progress = progress
    thread = threading.Thread(target=runner.run)  # runs until stopped, idle in between
    thread.start()
    try:
        deadline = time.monotonic() + 60
        seen = None
        while seen != 30 and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = _readable_elsewhere(path) if len(sessions) == 3 else None
        assert seen == 30, "another process could not read the file while the stream idled"
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    # batches 2 and 3 went through the session batch 1 opened (a write may finish before
    # its commit is counted, so only "one session for all" is checked)
    assert len(set(sessions) - {0}) <= 1


def test_a_busy_stream_lets_go_of_a_duckdb_file_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    target = open_target(Target(connection=connection, table=("main", "t")), "held")
    try:
        target.write(_rows(0, 3), batch_id="b1", positions=None)
        assert target._store is not None, "the session was not kept"
        target.release()  # what the runner does when a poll finds nothing
        assert target._store is None
        monkeypatch.setattr(targets_module, "_HOLD_FILE_AT_MOST_S", 0.0)
        target.write(_rows(3, 5), batch_id="b2", positions=None)
        assert target._store is None, "held past the limit"
    finally:
        target.close()
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM main.t").fetchone()[0] == 5


def test_a_postgres_session_is_not_let_go_when_idle(pg_schema: PgSchema) -> None:
    connection = PostgresConnection(name="wh", url=pg_schema.dsn)
    target = open_target(Target(connection=connection, table=(pg_schema.name, "t")), "kept")
    try:
        target.write(_rows(0, 3), batch_id="b1", positions=None)
        session = target._store
        target.release()
        assert target._store is session
    finally:
        target.close()


def test_a_batch_load_of_the_file_gets_its_turn_while_a_stream_keeps_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy stream lets the file go after a while and waits before taking it back."""
    path = tmp_path / "wh.duckdb"
    connection = DuckDBConnection(name="wh", path=str(path))
    target = open_target(Target(connection=connection, table=("main", "t")), "busy")
    monkeypatch.setattr(targets_module, "_HOLD_FILE_AT_MOST_S", 0.3)  # let go now and then
    target.write(_rows(0, 1), batch_id="b0", positions=None)
    stop = threading.Event()
    written = [1]

    def keep_writing() -> None:
        while not stop.is_set():
            target.write(_rows(written[0], written[0] + 1), batch_id="b", positions=None)
            written[0] += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from ematix_engine.backends.duckdb import _connect_for_writing\n"
                "con = _connect_for_writing(sys.argv[1], {})\n"
                "con.execute('CREATE TABLE other AS SELECT 1 AS x')\n"
                "con.close()\n",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "EMATIX_LOCK_TIMEOUT_S": "60"},
        )
    finally:
        stop.set()
        writer.join(timeout=60)
        target.close()
    assert other.returncode == 0, other.stderr
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM main.t").fetchone()[0] == written[0]
        assert con.execute("SELECT x FROM other").fetchone()[0] == 1
