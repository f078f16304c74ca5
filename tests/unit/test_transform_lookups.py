"""Lookups: loaded through the engine's backends from real DuckDB and SQLite files, refreshed
on a background thread with an atomic swap; a failed reload keeps the previous table."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from ematix_engine.connections import DuckDBConnection, SQLiteConnection
from ematix_engine.errors import ConfigError
from ematix_engine.transform import Lookup, LookupLoadError, TransformStage

JOIN = """
    SELECT s.user_id, s.amount, u.country
    FROM source s
    LEFT JOIN users u ON s.user_id = u.id
    WHERE s.amount > 0
    ORDER BY s.user_id
"""
BATCH = pa.table({"user_id": [1, 2, 3, 9], "amount": [1.0, 2.0, -1.0, 4.0]})
EXPECTED = {"user_id": [1, 2, 9], "amount": [1.0, 2.0, 4.0], "country": ["se", "de", None]}


def make_sqlite(path: Path, version: int = 0, extra_column: bool = False) -> None:
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE IF EXISTS users")
        columns = "id INTEGER PRIMARY KEY, country TEXT, version INTEGER"
        con.execute(f"CREATE TABLE users ({columns}{', tier TEXT' if extra_column else ''})")
        rows = [(1, "se", version), (2, "de", version), (3, "fr", version)]
        con.executemany("INSERT INTO users (id, country, version) VALUES (?, ?, ?)", rows)
    con.close()


def test_a_duckdb_lookup_from_a_file(tmp_duckdb_path: Path) -> None:
    with duckdb.connect(str(tmp_duckdb_path)) as con:
        con.execute("CREATE SCHEMA ref")
        con.execute(
            "CREATE TABLE ref.users AS SELECT * FROM (VALUES (1, 'se'), (2, 'de'), (3, 'fr')) t(id, country)"
        )
    lake = DuckDBConnection(name="lake", path=tmp_duckdb_path)
    for lookup in (
        Lookup(connection=lake, table="users", schema="ref"),
        Lookup(connection=lake, query="SELECT id, country FROM ref.users WHERE id < 3"),
    ):
        with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
            assert stage.run(BATCH).to_pydict() == EXPECTED


def test_a_sqlite_lookup_from_a_file(tmp_sqlite_path: Path) -> None:
    make_sqlite(tmp_sqlite_path)
    lookup = Lookup(connection=SQLiteConnection(name="ref", path=tmp_sqlite_path), table="users")
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        assert stage.run(BATCH).to_pydict() == EXPECTED
        assert stage.lookup_tables["users"].table.num_rows == 3


def test_an_empty_lookup_still_joins(tmp_sqlite_path: Path) -> None:
    make_sqlite(tmp_sqlite_path)
    conn = SQLiteConnection(name="ref", path=tmp_sqlite_path)
    lookup = Lookup(connection=conn, query="SELECT id, country FROM users WHERE id < 0")
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        assert stage.run(BATCH).column("country").to_pylist() == [None, None, None]


def test_refresh_swaps_atomically_while_batches_run(tmp_sqlite_path: Path) -> None:
    make_sqlite(tmp_sqlite_path, version=0)
    conn = SQLiteConnection(name="ref", path=tmp_sqlite_path)
    lookup = Lookup(connection=conn, table="users", refresh_interval_ms=5)
    sql = "SELECT s.user_id, u.version FROM source s JOIN users u ON s.user_id = u.id"
    seen: set[int] = set()
    stop = threading.Event()

    def writer() -> None:  # rewrites the whole table in one transaction, version by version
        version = 0
        while not stop.is_set():
            version += 1
            with sqlite3.connect(tmp_sqlite_path, timeout=30) as con:
                con.execute("UPDATE users SET version = ?", (version,))
            con.close()
            time.sleep(0.002)

    thread = threading.Thread(target=writer, daemon=True)
    with TransformStage(sql, lookups={"users": lookup}, pipeline="events") as stage:
        thread.start()
        deadline = time.monotonic() + 60
        try:
            while len(seen) < 4 and time.monotonic() < deadline:
                out = stage.run(BATCH)
                versions = set(out.column("version").to_pylist())
                assert out.num_rows == 3 and len(versions) == 1, versions  # never a mixed table
                seen |= versions
        finally:
            stop.set()
            thread.join()
        table = stage.lookup_tables["users"]
        assert len(seen) >= 4, f"only saw versions {seen} after {table.refreshes} refreshes"
        assert table.refreshes >= 3
    assert not any(t.name.startswith("ematix-lookup-events") for t in threading.enumerate())


def test_a_failed_refresh_keeps_the_old_table_and_warns(tmp_sqlite_path: Path, caplog) -> None:
    make_sqlite(tmp_sqlite_path)
    lookup = Lookup(connection=SQLiteConnection(name="ref", path=tmp_sqlite_path), table="users")
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        with sqlite3.connect(tmp_sqlite_path) as con:
            con.execute("DROP TABLE users")
        con.close()
        with caplog.at_level(logging.WARNING, logger="ematix.transform.lookups"):
            assert stage.lookup_tables["users"].refresh() is False
        assert "'events'" in caplog.text and "lookup 'users'" in caplog.text
        assert "keeping the previous table (3 rows)" in caplog.text
        assert stage.run(BATCH).to_pydict() == EXPECTED
        assert stage.lookup_tables["users"].failed_refreshes == 1


def test_a_lookup_that_changes_shape_replans(tmp_sqlite_path: Path) -> None:
    make_sqlite(tmp_sqlite_path)
    lookup = Lookup(connection=SQLiteConnection(name="ref", path=tmp_sqlite_path), table="users")
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        stage.run(BATCH)
        make_sqlite(tmp_sqlite_path, extra_column=True)
        assert stage.lookup_tables["users"].refresh() is True
        assert stage.run(BATCH).to_pydict() == EXPECTED
        assert stage.plans_compiled == 2


def test_a_lookup_that_cannot_load_fails_at_start_naming_it(tmp_sqlite_path: Path) -> None:
    make_sqlite(tmp_sqlite_path)
    lookup = Lookup(connection=SQLiteConnection(name="ref", path=tmp_sqlite_path), table="nope")
    with pytest.raises(LookupLoadError, match="'events': lookup 'people' could not be loaded"):
        TransformStage(JOIN, lookups={"people": lookup}, pipeline="events")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of query= or table="),
        ({"query": "SELECT 1", "table": "t"}, "exactly one of query= or table="),
        ({"query": "SELECT 1", "schema": "s"}, "schema= goes with table="),
        ({"table": "t", "refresh_interval_ms": 0}, "must be positive"),
        ({"table": "t", "refresh_interval_ms": 1.5}, "must be an int"),
    ],
)
def test_lookup_declarations_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Lookup(connection="ref", **kwargs)


def test_a_delta_lookup(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    from ematix_engine.connections import DeltaLocalConnection

    root = tmp_path / "lake"
    users = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "country": ["se", "de", "fr"]})
    write_deltalake(str(root / "ref" / "users"), users)
    lookup = Lookup(
        connection=DeltaLocalConnection(name="lake", path=root), table="users", schema="ref"
    )
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        assert stage.run(BATCH).to_pydict() == EXPECTED
