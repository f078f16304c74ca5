"""check_connection and `ematix connections check` against real services and files."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer
from psycopg.conninfo import conninfo_to_dict

from ematix_engine.cli import main
from ematix_engine.connections import (
    DeltaLocalConnection,
    DuckDBConnection,
    KafkaConnection,
    ObjectStoreLocalConnection,
    PostgresConnection,
    SQLiteConnection,
    check_connection,
)
from ematix_engine.errors import ConnectionFailedError
from tests.fixtures.kafka import TANSU_CONSUMER_SETTINGS
from tests.unit.test_connections_support import Sandbox, isolate_connections

SECRET = "Sup3r-S3cret-Pw"


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    yield from isolate_connections(monkeypatch, tmp_path)


def pg_url(dsn: str, **override: str) -> str:
    """The test DSN as a postgresql:// URL, with some parts replaced."""
    params = {**conninfo_to_dict(dsn), **override}
    user = quote(params.get("user", "postgres"), safe="${}")
    password = params.get("password")
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{params.get('dbname', 'postgres')}"


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_ok(pg_dsn: str) -> None:
    check_connection(
        PostgresConnection(name="pg", url=pg_dsn if "://" in pg_dsn else pg_url(pg_dsn))
    )


def test_postgres_ok_through_the_cli_with_interpolation(
    pg_dsn: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = conninfo_to_dict(pg_dsn)
    monkeypatch.setenv("PG_TEST_HOST", str(params.get("host", "127.0.0.1")))
    url = pg_url(pg_dsn, host="${PG_TEST_HOST}")
    sandbox.project_toml(f'[connections.warehouse]\nurl = "{url}"\n')
    result = CliRunner().invoke(main, ["connections", "check", "warehouse"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK warehouse (postgres)"


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({"dbname": f"db_{SECRET}"}, id="server-echoes-database-name"),
        pytest.param({"user": SECRET}, id="server-echoes-role-name"),
        pytest.param({"port": "1"}, id="nothing-listening"),
        pytest.param({"host": "no-such-host.invalid"}, id="unknown-host"),
    ],
)
def test_postgres_failures_never_leak_the_password(
    pg_dsn: str,
    override: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PG_TEST_PASSWORD", SECRET)
    url = pg_url(pg_dsn, password="${PG_TEST_PASSWORD}", **override)
    if "user" in override:  # the role name is the secret: put it behind a variable too
        url = url.replace(f"//{quote(SECRET)}:", "//${PG_TEST_PASSWORD}:")
    monkeypatch.setenv("EMATIX_DSN_WAREHOUSE", url)
    result = CliRunner().invoke(main, ["connections", "check", "warehouse"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("FAILED warehouse: connection 'warehouse' failed:")
    assert SECRET not in result.output
    assert SECRET not in caplog.text

    with pytest.raises(ConnectionFailedError) as info:
        check_connection(PostgresConnection(name="direct", url=url))
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


def test_postgres_echoed_database_name_is_scrubbed(pg_dsn: str) -> None:
    url = pg_url(pg_dsn, password=SECRET, dbname=f"db_{SECRET}")
    with pytest.raises(ConnectionFailedError) as info:
        check_connection(PostgresConnection(name="pg", url=url))
    assert 'database "db_***" does not exist' in str(info.value)


# -- embedded databases and local storage -------------------------------------------------------


def test_sqlite_file(tmp_sqlite_path: Path) -> None:
    conn = SQLiteConnection(name="lite", path=tmp_sqlite_path)
    check_connection(conn)  # a new file in an existing directory is fine ...
    assert not tmp_sqlite_path.exists()  # ... and the check creates nothing
    with sqlite3.connect(tmp_sqlite_path) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    check_connection(conn)
    tmp_sqlite_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConnectionFailedError, match="not a database"):
        check_connection(conn)


def test_duckdb_file(tmp_duckdb_path: Path) -> None:
    conn = DuckDBConnection(name="duck", path=str(tmp_duckdb_path))
    check_connection(conn)
    assert not tmp_duckdb_path.exists()
    with duckdb.connect(str(tmp_duckdb_path)) as db:
        db.execute("CREATE TABLE t AS SELECT 42 AS x")
    check_connection(conn)
    check_connection(DuckDBConnection(name="mem", path=":memory:"))


@pytest.mark.parametrize("cls", [SQLiteConnection, DuckDBConnection])
def test_missing_parent_directory_fails(cls: type, tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(ConnectionFailedError, match="does not exist"):
        check_connection(cls(name="x", path=str(path)))


def test_delta_local(tmp_delta_path: Path) -> None:
    from deltalake import write_deltalake

    conn = DeltaLocalConnection(name="lake", path=str(tmp_delta_path))
    check_connection(conn)  # will be created on first write
    write_deltalake(str(tmp_delta_path), pa.table({"x": [1, 2]}))
    check_connection(conn)
    (tmp_delta_path / "_delta_log" / "00000000000000000000.json").write_text("{broken")
    with pytest.raises(ConnectionFailedError):
        check_connection(conn)


def test_object_store_local(tmp_files_dir: Path) -> None:
    check_connection(ObjectStoreLocalConnection(name="f", path=str(tmp_files_dir), format="csv"))
    check_connection(
        ObjectStoreLocalConnection(name="f", path=str(tmp_files_dir / "new"), format="csv")
    )
    a_file = tmp_files_dir / "a.csv"
    a_file.write_text("x\n1\n")
    with pytest.raises(ConnectionFailedError, match="not a directory"):
        check_connection(ObjectStoreLocalConnection(name="f", path=str(a_file), format="csv"))


# -- Kafka ---------------------------------------------------------------------------------------


def test_kafka_ok_and_client_config_round_trips_a_message(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    conn = KafkaConnection(
        name="src",
        bootstrap_servers=kafka_bootstrap,
        group_id=f"ematix-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        extra=TANSU_CONSUMER_SETTINGS,
    )
    check_connection(conn)

    producer = Producer(conn.client_config("producer"))
    producer.produce(kafka_topic, b'{"id": 1}')
    assert producer.flush(10) == 0
    consumer = Consumer(conn.client_config("consumer"))
    try:
        consumer.subscribe([kafka_topic])
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b'{"id": 1}'
    finally:
        consumer.close()


def test_kafka_unreachable_fails_fast_without_leaking(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KAFKA_PASS", SECRET)
    monkeypatch.setenv(
        "EMATIX_DSN_BROKER",
        "kafka://alice:${KAFKA_PASS}@127.0.0.1:1?security_protocol=SASL_PLAINTEXT",
    )
    result = CliRunner().invoke(main, ["connections", "check", "broker"])
    assert result.exit_code == 1
    assert "FAILED broker:" in result.output
    assert SECRET not in result.output
    assert SECRET not in caplog.text
