"""The service fixtures are real: data makes a round trip through each of them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from psycopg import sql

from tests.fixtures.postgres import PgSchema, ThrowawayPostgres, find_pg_bindir, probe_dsn


def test_postgres_round_trip(pg_schema: PgSchema, pg_conn: psycopg.Connection) -> None:
    rows = [(1, "alpha", 1.5), (2, "beta", None), (3, "gamma'; DROP TABLE x; --", -2.25)]
    pg_conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, score numeric(6,2))")
    with pg_conn.cursor() as cur:
        cur.executemany("INSERT INTO items (id, name, score) VALUES (%s, %s, %s)", rows)

    # Read back through a second, independent connection and a fully qualified name.
    with psycopg.connect(pg_schema.dsn) as other:
        table = sql.Identifier(pg_schema.name, "items")
        got = other.execute(
            sql.SQL("SELECT id, name, score::float8 FROM {} ORDER BY id").format(table)
        ).fetchall()
    assert got == rows


def test_pg_schema_search_path_dsn(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.search_path_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        (schema_of_t,) = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 't' "
            "AND table_schema = current_schema()"
        ).fetchone()
    assert schema_of_t == pg_schema.name


def test_throwaway_postgres_cluster(tmp_path: Path) -> None:
    """The last-resort path of `pg_dsn`: initdb + pg_ctl on a free port, then gone."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("no initdb/pg_ctl on this machine: the throwaway-cluster path is untested")
    cluster = ThrowawayPostgres(bindir)
    dsn = cluster.start()
    base_dir = cluster.base_dir
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int, v text)")
            conn.execute("INSERT INTO t VALUES (%s, %s)", (7, "seven"))
            assert conn.execute("SELECT id, v FROM t").fetchall() == [(7, "seven")]
    finally:
        cluster.stop()
    assert base_dir is not None and not base_dir.exists()
    assert probe_dsn(dsn, timeout_s=1) is not None


def test_kafka_round_trip(
    kafka_bootstrap: str, kafka_client_config: dict[str, Any], kafka_topic: str
) -> None:
    sent = [{"id": i, "name": f"event-{i}", "amount": i * 1.5} for i in range(500)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for record in sent:
        producer.produce(kafka_topic, key=str(record["id"]).encode(), value=json.dumps(record))
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            **kafka_client_config,
            "group.id": f"ematix-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[dict[str, Any]] = []
    try:
        consumer.subscribe([kafka_topic])
        for _ in range(60):
            if len(received) >= len(sent):
                break
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consume error: {error}")
                if error is None:
                    received.append(json.loads(message.value()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert received == sent


@pytest.mark.parametrize("kafka_topic", [3], indirect=True)
def test_kafka_topic_partitions(kafka_bootstrap: str, kafka_topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(metadata.topics[kafka_topic].partitions) == 3


def test_embedded_paths(
    tmp_duckdb_path: Path, tmp_sqlite_path: Path, tmp_delta_path: Path, tmp_files_dir: Path
) -> None:
    assert not tmp_duckdb_path.exists()
    assert not tmp_sqlite_path.exists()
    assert not tmp_delta_path.exists()
    assert tmp_files_dir.is_dir() and not any(tmp_files_dir.iterdir())
    with duckdb.connect(str(tmp_duckdb_path)) as conn:
        assert conn.execute("SELECT 42").fetchone() == (42,)
    assert tmp_duckdb_path.exists()


def test_dagster_instance_records_a_materialization(
    dagster_instance: dg.DagsterInstance, tmp_duckdb_path: Path
) -> None:
    """The temporary instance is real: a run writes DuckDB and its event log keeps the metadata.

    (The example project itself is materialized in tests/integration/dagster/.)
    """

    @dg.asset
    def greetings() -> dg.MaterializeResult:
        with duckdb.connect(str(tmp_duckdb_path)) as conn:
            conn.execute("CREATE TABLE greetings AS SELECT * FROM (VALUES (1, 'hi'), (2, 'hej')) g")
        return dg.MaterializeResult(metadata={"dagster/row_count": 2})

    result = dg.materialize([greetings], instance=dagster_instance)

    assert result.success
    event = dagster_instance.get_latest_materialization_event(greetings.key)
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["dagster/row_count"].value == 2
    with duckdb.connect(str(tmp_duckdb_path), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM greetings").fetchone() == (2,)
