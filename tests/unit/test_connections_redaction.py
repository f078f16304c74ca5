"""Secrets never appear in repr, str, logs, error messages or listings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ematix_engine.connections import (
    Connection,
    DeltaS3Connection,
    KafkaConnection,
    MySQLConnection,
    ObjectStoreS3Connection,
    PostgresConnection,
    SchemaRegistryConnection,
    check_connection,
    get_connection,
    list_connections,
    redact,
    redact_url,
)
from ematix_engine.errors import ConfigError, ConnectionFailedError
from tests.unit.test_connections_support import Sandbox, isolate_connections

SECRET = "Hunter2-Pw"


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    yield from isolate_connections(monkeypatch, tmp_path)


def secretive() -> list[Connection]:
    return [
        PostgresConnection(name="pg", url=f"postgres://app:{SECRET}@db:5432/main"),
        PostgresConnection(name="pg_q", url=f"postgresql://app@db/main?password={SECRET}"),
        MySQLConnection(name="my", url=f"mysql://app:{SECRET}@db/shop"),
        KafkaConnection(
            name="k",
            bootstrap_servers="h:9092",
            sasl_plain_username="alice",
            sasl_plain_password=SECRET,
            extra={"ssl.key.password": SECRET, "client.id": "etl"},
            config={"sasl.oauthbearer.client.secret": SECRET, "ssl.key.pem": SECRET},
            payload_format="avro",
            schema_registry=SchemaRegistryConnection(
                name="sr", url="https://sr", basic_auth_user="u", basic_auth_password=SECRET
            ),
        ),
        SchemaRegistryConnection(name="sr_url", url=f"https://svc:{SECRET}@sr:8081"),
        DeltaS3Connection(
            name="d", bucket="bucket", access_key_id=SECRET, secret_access_key=SECRET
        ),
        ObjectStoreS3Connection(
            name="o",
            bucket="bucket",
            format="csv",
            endpoint=f"https://u:{SECRET}@minio:9000",
            access_key_id="AKIA",
            secret_access_key=SECRET,
        ),
    ]


@pytest.mark.parametrize("conn", secretive(), ids=lambda c: c.name)
def test_repr_str_format_and_display_hide_secrets(conn: Connection) -> None:
    shown = [repr(conn), str(conn), f"{conn}", f"{conn!r}", conn.display_url()]
    shown.append(repr(conn.redacted_fields()))
    for text in shown:
        assert SECRET not in text
    assert "***" in repr(conn)


def test_values_from_interpolation_are_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASS", SECRET)
    monkeypatch.setenv("WAREHOUSE_DSN", f"app:{SECRET}@db/main")
    kafka = KafkaConnection(
        name="k",
        bootstrap_servers="h:1",
        sasl_plain_username="a",
        sasl_plain_password="${KAFKA_PASS}",
    )
    warehouse = PostgresConnection(name="wh", url="postgres://${WAREHOUSE_DSN}")
    for conn in (kafka, warehouse):
        resolved = conn.resolved()
        for text in (repr(resolved), str(resolved), resolved.display_url()):
            assert SECRET not in text
        assert SECRET in conn.secret_values()
        # a driver message echoing the interpolated value is scrubbed via the *declared* conn
        assert SECRET not in redact(f"auth failed for {SECRET!r}", conn)


def test_repr_hides_interpolated_secrets_echoed_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PASS", SECRET)
    conn = PostgresConnection(name="pg", url=f"postgres://app:${{PG_PASS}}@db/{SECRET}_db")
    assert SECRET not in repr(conn)
    assert SECRET not in conn.display_url()


def test_redact_helper() -> None:
    pg = PostgresConnection(name="pg", url=f"postgres://app:{SECRET}@db/main")
    assert redact(f'database "{SECRET}" does not exist', pg) == 'database "***" does not exist'
    encoded = "Hunter2%2DPw"  # the password percent-encoded, as it appears in some DSNs
    pg_encoded = PostgresConnection(name="pg2", url=f"postgres://app:{encoded}@db/main")
    assert SECRET not in redact(f"bad password {SECRET}", pg_encoded)
    # without a connection only the structure helps
    assert redact(f"dsn postgres://app:{SECRET}@db/main failed") == (
        "dsn postgres://app:***@db/main failed"
    )
    assert redact(f"host=db user=app password={SECRET} dbname=x") == (
        "host=db user=app password=*** dbname=x"
    )
    assert redact(f"sasl.password: '{SECRET}'") == "sasl.password: ***"
    assert redact("password authentication failed for user app") == (
        "password authentication failed for user app"
    )
    assert redact("nothing secret here", [pg, pg_encoded]) == "nothing secret here"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
        ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgres://h/db?password=pw&sslmode=require", "postgres://h/db?password=***&sslmode=require"),
        ("postgres://h/db?sslpassword=pw", "postgres://h/db?sslpassword=***"),
        ("postgres://u:${PG_PASS}@h/db", "postgres://u:***@h/db"),
        ("postgres://${WAREHOUSE_DSN}", "postgres://${WAREHOUSE_DSN}"),
        ("kafka://alice:pw@h:9092?group_id=g", "kafka://alice:***@h:9092?group_id=g"),
        ("https://:token@sr", "https://:***@sr"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)  # fmt: skip
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_validation_errors_do_not_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        PostgresConnection(name="pg", url=f"mysql://app:{SECRET}@db/main")
    assert SECRET not in str(info.value)
    monkeypatch.setenv("PROTO", SECRET)
    kafka = KafkaConnection(
        name="k",
        bootstrap_servers="h:1",
        sasl_plain_username="a",
        sasl_plain_password=SECRET,
        security_protocol="${PROTO}",
    )
    with pytest.raises(ConfigError) as info:
        kafka.resolved()
    assert "security_protocol" in str(info.value)


def test_missing_variable_error_names_variable_not_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PG_USER", "app")
    conn = PostgresConnection(name="wh", url="postgres://${PG_USER}:${PG_PASS}@db/main")
    with pytest.raises(ConfigError) as info:
        conn.resolved()
    assert "PG_PASS" in str(info.value)
    assert "'wh'" in str(info.value)


def test_failed_checks_and_their_logs_hide_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ematix")
    conns: list[Connection] = [
        ObjectStoreS3Connection(
            name="s3",
            bucket="bucket",
            format="csv",
            endpoint="http://127.0.0.1:1",
            access_key_id="AKIA",
            secret_access_key=SECRET,
        ),
        MySQLConnection(name="my", url=f"mysql://app:{SECRET}@127.0.0.1:1/{SECRET}"),
        PostgresConnection(name="pg", url=f"postgresql://app:{SECRET}@127.0.0.1:1/{SECRET}"),
    ]
    for conn in conns:
        with pytest.raises(ConnectionFailedError) as info:
            check_connection(conn)
        assert SECRET not in str(info.value)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__
    assert SECRET not in caplog.text
    assert "checking connection" in caplog.text


def test_registry_logs_and_listing_hide_secrets(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="ematix")
    monkeypatch.setenv("EMATIX_DSN_WH", f"postgres://app:{SECRET}@db/main")
    monkeypatch.setenv("EMATIX_DSN_BAD", f"postgress://app:{SECRET}@db/main")
    get_connection("wh")
    entries = list_connections()
    assert SECRET not in caplog.text
    for entry in entries:
        assert SECRET not in repr(entry)
        assert SECRET not in (entry.error or "")
