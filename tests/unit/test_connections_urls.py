"""connection_from_url: one row per URL form, then the errors."""

from __future__ import annotations

import pytest

from ematix_engine.connections import (
    KNOWN_SCHEMES,
    Connection,
    DeltaLocalConnection,
    DuckDBConnection,
    KafkaConnection,
    MySQLConnection,
    ObjectStoreLocalConnection,
    PostgresConnection,
    SQLiteConnection,
    connection_from_url,
)
from ematix_engine.errors import ConfigError

N = "c"

FORMS = [
    ("postgres://u:pw@h:5432/db", PostgresConnection(name=N, url="postgres://u:pw@h:5432/db")),
    ("postgresql://h/db?sslmode=require", PostgresConnection(name=N, url="postgresql://h/db?sslmode=require")),
    ("postgres://${WAREHOUSE_DSN}", PostgresConnection(name=N, url="postgres://${WAREHOUSE_DSN}")),
    ("mysql://u:pw@h:3306/shop", MySQLConnection(name=N, url="mysql://u:pw@h:3306/shop")),
    ("sqlite:///abs/app.db", SQLiteConnection(name=N, path="/abs/app.db")),
    ("sqlite://rel/app.db", SQLiteConnection(name=N, path="rel/app.db")),
    ("sqlite://app.db", SQLiteConnection(name=N, path="app.db")),
    ("sqlite://:memory:", SQLiteConnection(name=N, path=":memory:")),
    ("sqlite:////abs/app.db", SQLiteConnection(name=N, path="/abs/app.db")),
    ("sqlite:///${DATA_DIR}/app.db", SQLiteConnection(name=N, path="/${DATA_DIR}/app.db")),
    ("duckdb:///abs.duckdb", DuckDBConnection(name=N, path="/abs.duckdb")),
    ("duckdb://rel.duckdb", DuckDBConnection(name=N, path="rel.duckdb")),
    ("duckdb://:memory:", DuckDBConnection(name=N, path=":memory:")),
    ("duckdb:///my%20db.duckdb", DuckDBConnection(name=N, path="/my db.duckdb")),
    ("delta:///data/delta", DeltaLocalConnection(name=N, path="/data/delta")),
    ("delta://rel/delta", DeltaLocalConnection(name=N, path="rel/delta")),
    ("file:///dir?format=parquet", ObjectStoreLocalConnection(name=N, path="/dir", format="parquet")),
    ("file://localhost/dir?format=csv", ObjectStoreLocalConnection(name=N, path="/dir", format="csv")),
    ("file:///drop/events.csv.gz", ObjectStoreLocalConnection(name=N, path="/drop/events.csv.gz", format="csv")),
    ("kafka://h:9092", KafkaConnection(name=N, bootstrap_servers="h:9092")),
    (
        "kafka://alice:p%40ss@h1:9092,h2:9092?group_id=g&payload_format=raw_bytes&dead_letter_topic=dlq",
        KafkaConnection(
            name=N,
            bootstrap_servers="h1:9092,h2:9092",
            sasl_plain_username="alice",
            sasl_plain_password="p@ss",
            group_id="g",
            payload_format="raw_bytes",
            dead_letter_topic="dlq",
        ),
    ),
    (
        "kafka://h:9092?payload_format=avro&schema_registry=sr_prod",
        KafkaConnection(name=N, bootstrap_servers="h:9092", payload_format="avro", schema_registry="sr_prod"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("url", "expected"), FORMS, ids=[u for u, _ in FORMS])
def test_url_forms(url: str, expected: Connection) -> None:
    assert connection_from_url(N, url) == expected


@pytest.mark.parametrize(
    "conn",
    [
        SQLiteConnection(name=N, path="/abs/app.db"),
        SQLiteConnection(name=N, path="rel.db"),
        DuckDBConnection(name=N, path=":memory:"),
        DeltaLocalConnection(name=N, path="/d"),
        ObjectStoreLocalConnection(name=N, path="/d", format="orc"),
        PostgresConnection(name=N, url="postgres://u:pw@h/db"),
        KafkaConnection(
            name=N,
            bootstrap_servers="h:1",
            group_id="g",
            sasl_plain_username="u",
            sasl_plain_password="p@ss word",
            security_protocol="SASL_PLAINTEXT",
        ),
    ],
    ids=lambda c: c.kind,
)
def test_to_url_round_trips(conn: Connection) -> None:
    assert connection_from_url(N, conn.to_url()) == conn


def test_unknown_scheme_lists_known_schemes() -> None:
    with pytest.raises(ConfigError) as info:
        connection_from_url("wh", "postgress://u:topsecret@h/db")
    message = str(info.value)
    assert "'wh'" in message
    assert "did you mean postgres://" in message
    for scheme in KNOWN_SCHEMES:
        assert f"{scheme}://" in message
    assert "topsecret" not in message


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("not a url", "not a connection URL"),
        ("${WAREHOUSE_DSN}", "declare kind"),
        ("sqlite://", "has no path"),
        ("sqlite:///x.db?mode=ro", "query parameters"),
        ("file:///dir", "format"),
        ("file:///dir?format=parquet&x=1", "query parameters"),
        ("file:///dir?format=xlsx", "format"),
        ("kafka://", "bootstrap servers"),
        ("kafka://h:9092?grup_id=g", "did you mean 'group_id'"),
        ("kafka://h:9092?group_id=a&group_id=b", "repeats"),
    ],
)
def test_url_errors(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        connection_from_url("c", url)


def test_url_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        connection_from_url("c", 42)  # type: ignore[arg-type]
