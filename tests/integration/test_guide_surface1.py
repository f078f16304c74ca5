"""The reference guide's "Surface 1" examples, as written (ematix_flow → ematix_engine), on PostgreSQL.

Schema names `raw` and `analytics` become unique per test so runs never collide, and are dropped
at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import psycopg
import pytest

from ematix_engine import ematix, pk
from ematix_engine.connections import PostgresConnection, SQLiteConnection, register_connection
from ematix_engine.normalize import lower, parse_timestamp, trim
from ematix_engine.runlog import open_run_log
from ematix_engine.types import BigInt, String, Text, TimestampTZ


@pytest.fixture
def schemas(pg_dsn: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    raw, analytics = f"raw_{suffix}", f"analytics_{suffix}"
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{raw}"')
        con.execute(
            f'CREATE TABLE "{raw}".events (event_id BIGINT, name TEXT, received_at TIMESTAMPTZ)'
        )
        con.execute(
            f"INSERT INTO \"{raw}\".events VALUES (1, 'signup', '2024-01-01 10:00+00'), "
            f"(2, NULL, '2024-01-01 11:00+00')"
        )
        con.execute(
            f'CREATE TABLE "{raw}".customers (customer_id BIGINT, email TEXT, name TEXT, '
            f"updated_at TEXT)"
        )
        con.execute(
            f'INSERT INTO "{raw}".customers VALUES '
            f"(1, '  Ada@Example.COM ', 'Ada', '2024-01-01T00:00:00+00:00')"
        )
    register_connection(PostgresConnection(name="default", url=pg_dsn))
    register_connection(PostgresConnection(name="warehouse", url=pg_dsn))
    yield raw, analytics
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{raw}" CASCADE')
        con.execute(f'DROP SCHEMA IF EXISTS "{analytics}" CASCADE')
        if _has_watermarks(con):
            con.execute("DELETE FROM ematix.watermarks WHERE target LIKE %s", (f"{analytics}.%",))


def _has_watermarks(con: psycopg.Connection) -> bool:
    return con.execute("SELECT to_regclass('ematix.watermarks') IS NOT NULL").fetchone()[0]


def test_five_line_append_pipeline_and_dag(schemas: tuple[str, str], pg_dsn: str, tmp_path) -> None:
    raw, analytics = schemas

    @ematix.table(schema=analytics)
    class Events:
        event_id: Annotated[BigInt, pk()]
        name: Text | None
        received_at: TimestampTZ

    @ematix.pipeline(
        target=Events,
        schedule="*/5 * * * *",
        mode="append",
        retry={"max_attempts": 5, "backoff_seconds": 30, "backoff_factor": 2.0},
    )
    def ingest_events(conn):
        return f'SELECT event_id, name, received_at FROM "{raw}".events'

    @ematix.table(schema=analytics)
    class DailyRollups:
        d: Annotated[TimestampTZ, pk()]
        n: BigInt

    @ematix.pipeline(
        target=DailyRollups,
        schedule="0 2 * * *",
        mode="merge",
        depends_on=["ingest_events"],
    )
    def daily_rollups(conn):
        return (
            "SELECT date_trunc('day', received_at) AS d, COUNT(*) AS n "
            f'FROM "{analytics}".events GROUP BY 1'
        )

    from ematix_engine import run_due

    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    firings = run_due(
        [daily_rollups, ingest_events], run_log=log, force=["ingest_events", "daily_rollups"]
    )
    assert [(f.pipeline, f.status.value) for f in firings] == [
        ("ingest_events", "success"),
        ("daily_rollups", "success"),
    ]
    with psycopg.connect(pg_dsn) as con:
        assert con.execute(f'SELECT n FROM "{analytics}".daily_rollups').fetchall() == [(2,)]


def test_scd2_with_event_time_normalizers_and_ttl(schemas: tuple[str, str], pg_dsn: str) -> None:
    raw, analytics = schemas

    @ematix.table(schema=analytics)
    class CustomerDim:
        customer_id: Annotated[BigInt, pk()]
        email: Annotated[String[256] | None, lower(), trim()]
        name: Text | None
        updated_at: Annotated[TimestampTZ, parse_timestamp()]

    @ematix.pipeline(
        target=CustomerDim,
        schedule="0 * * * *",
        mode="scd2",
        compare_columns=["email", "name"],
        event_timestamp_column="updated_at",
        ttl_seconds=86_400 * 30,
    )
    def sync_customers(conn):
        return f'SELECT customer_id, email, name, updated_at FROM "{raw}".customers'

    assert sync_customers.run().rows_inserted == 1
    with psycopg.connect(pg_dsn) as con:
        row = con.execute(
            f'SELECT email, valid_from, valid_to, is_current, length(row_hash) FROM "{analytics}".customer_dim'
        ).fetchone()
    assert row[0] == "ada@example.com"
    assert row[1] == datetime(2024, 1, 1, tzinfo=UTC)
    assert row[2:] == (None, True, 32)  # row_hash: MD5 as 32 hex characters
    # The 30-day TTL: the version is from 2024 and the next batch lacks the key → closed.
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f'DELETE FROM "{raw}".customers')
    result = sync_customers.run()
    assert result.rows_closed == 1


def test_cross_database_load(schemas: tuple[str, str], pg_dsn: str, tmp_path) -> None:
    import sqlite3

    _, analytics = schemas
    source = tmp_path / "raw.db"
    with sqlite3.connect(source) as db:
        db.execute(
            "CREATE TABLE customers (customer_id INTEGER, email TEXT, name TEXT, updated_at TEXT)"
        )
        db.execute("INSERT INTO customers VALUES (7, 'x@y.z', 'Xavier', '2024-05-01 00:00:00')")
    register_connection(SQLiteConnection(name="raw_db", path=str(source)))

    @ematix.table(schema=analytics)
    class CustomerDim:
        customer_id: Annotated[BigInt, pk()]
        email: String[256] | None
        name: Text | None
        updated_at: TimestampTZ

    @ematix.pipeline(
        target=CustomerDim,
        schedule="0 * * * *",
        mode="merge",
        source_connection="raw_db",
        target_connection="warehouse",
    )
    def sync_customers(conn):
        # `conn` is the SOURCE connection (raw_db).
        assert conn.name == "raw_db"
        return "SELECT customer_id, email, name, updated_at FROM customers"

    assert sync_customers.run().rows_inserted == 1
    assert sync_customers.run().rows_unchanged == 1


def test_multi_target_fan_out_with_watermark(
    schemas: tuple[str, str], pg_dsn: str, tmp_path
) -> None:
    raw, analytics = schemas
    register_connection(PostgresConnection(name="raw_db", url=pg_dsn))

    @ematix.table(schema=analytics)
    class WarehouseEvents:
        event_id: BigInt
        name: Text | None
        received_at: TimestampTZ

    @ematix.connection
    class archive:
        kind = "delta_local"
        path = str(tmp_path / "lake")

    @ematix.table(schema="events", connection="archive")
    class DeltaArchive:
        event_id: BigInt
        name: Text | None
        received_at: TimestampTZ

    @ematix.pipeline(
        targets=[
            ematix.target(WarehouseEvents, mode="append"),
            ematix.target(DeltaArchive, mode="append"),
        ],
        schedule="*/5 * * * *",
        source_connection="raw_db",
    )
    def fan_out(conn):
        return f'SELECT * FROM "{raw}".events WHERE received_at > $watermark'

    first = fan_out.run()
    assert [t.rows_inserted for t in first.targets] == [2, 2]
    assert first.watermark.startswith("2024-01-01 11:00:00")
    assert [t.rows_inserted for t in fan_out.run().targets] == [0, 0]
    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute(f"INSERT INTO \"{raw}\".events VALUES (3, 'late', '2024-01-02 00:00+00')")
    assert [t.rows_inserted for t in fan_out.run().targets] == [1, 1]
