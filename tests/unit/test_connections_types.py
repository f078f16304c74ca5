"""Typed connections: construction, validation, ${VAR} resolution, driver settings."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from ematix_engine.connections import (
    KINDS,
    Connection,
    DeltaLocalConnection,
    DeltaS3Connection,
    DuckDBConnection,
    KafkaConnection,
    MySQLConnection,
    ObjectStoreLocalConnection,
    ObjectStoreS3Connection,
    PostgresConnection,
    SchemaRegistryConnection,
    SQLiteConnection,
    format_from_path,
    interpolate,
)
from ematix_engine.errors import ConfigError

EXAMPLES: dict[str, Connection] = {
    "postgres": PostgresConnection(name="wh", url="postgres://app:pw@db:5432/main"),
    "mysql": MySQLConnection(name="shop", url="mysql://app:pw@db:3306/shop"),
    "sqlite": SQLiteConnection(name="local", path="local.db"),
    "duckdb": DuckDBConnection(name="lake", path=":memory:"),
    "kafka": KafkaConnection(name="src", bootstrap_servers="localhost:9092", group_id="g"),
    "schema_registry": SchemaRegistryConnection(name="sr", url="http://localhost:8081"),
    "delta_local": DeltaLocalConnection(name="dl", path="/data/delta"),
    "delta_s3": DeltaS3Connection(name="ds3", bucket="archive", prefix="events"),
    "object_store_local": ObjectStoreLocalConnection(name="ol", path="/data", format="csv"),
    "object_store_s3": ObjectStoreS3Connection(name="os3", bucket="raw-data", format="parquet"),
}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_kind_is_a_frozen_slotted_keyword_only_record(kind: str) -> None:
    conn = EXAMPLES[kind]
    assert conn.kind == kind
    assert KINDS[kind] is type(conn)
    params = dataclasses.fields(conn)
    assert all(f.kw_only for f in params)
    assert not hasattr(conn, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        conn.name = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(conn)) == conn
    hash(conn)


def test_kinds_table_is_complete() -> None:
    assert set(KINDS) == set(EXAMPLES)


def test_kind_is_a_class_variable_not_a_field() -> None:
    assert "kind" not in {f.name for f in dataclasses.fields(PostgresConnection)}
    with pytest.raises(TypeError):
        PostgresConnection(name="x", url="postgres://h/db", kind="mysql")  # type: ignore[call-arg]


def test_dataclasses_replace_revalidates() -> None:
    conn = EXAMPLES["kafka"]
    with pytest.raises(ConfigError, match="payload_format"):
        dataclasses.replace(conn, payload_format="xml")


INVALID = [
    pytest.param(PostgresConnection, {"url": ""}, "url", id="postgres-empty-url"),
    pytest.param(PostgresConnection, {"url": "mysql://h/db"}, "url", id="postgres-wrong-scheme"),
    pytest.param(PostgresConnection, {"url": "host=db dbname=x"}, "url", id="postgres-not-url"),
    pytest.param(PostgresConnection, {"url": 5}, "url", id="postgres-url-not-str"),
    pytest.param(MySQLConnection, {"url": "postgres://h/db"}, "url", id="mysql-wrong-scheme"),
    pytest.param(SQLiteConnection, {"path": ""}, "path", id="sqlite-empty"),
    pytest.param(DuckDBConnection, {"path": "a\x00b"}, "path", id="duckdb-nul"),
    pytest.param(KafkaConnection, {"bootstrap_servers": ""}, "bootstrap_servers", id="k-empty"),
    pytest.param(
        KafkaConnection, {"bootstrap_servers": "h:notaport"}, "bootstrap_servers", id="k-port"
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "kafka://h:9092"},
        "bootstrap_servers",
        id="k-scheme",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "payload_format": "xml"},
        "payload_format",
        id="k-format",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "payload_format": "avro"},
        "schema_registry",
        id="k-avro-needs-sr",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "security_protocol": "TLS"},
        "security_protocol",
        id="k-protocol",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "sasl_plain_username": "alice"},
        "sasl_plain_password",
        id="k-user-without-password",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "security_protocol": "SASL_SSL"},
        "sasl_plain_username",
        id="k-sasl-without-credentials",
    ),
    pytest.param(
        KafkaConnection,
        {
            "bootstrap_servers": "h:9092",
            "security_protocol": "PLAINTEXT",
            "sasl_plain_username": "a",
            "sasl_plain_password": "b",
        },
        "security_protocol",
        id="k-credentials-on-plaintext",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "dead_letter_topic": "bad topic"},
        "dead_letter_topic",
        id="k-dlq-name",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "extra": {"sasl.password": "x"}},
        "extra",
        id="k-extra-owned-setting",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "extra": {"client.id": ["a"]}},
        "extra",
        id="k-extra-value-type",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "config": {"bootstrap.servers": "x:1"}},
        "config",
        id="k-config-owned-setting",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "config": {"a.b": 1}, "extra": {"a.b": 2}},
        "config",
        id="k-config-and-extra-both",
    ),
    pytest.param(
        KafkaConnection,
        {"bootstrap_servers": "h:9092", "schema_registry": 42},
        "schema_registry",
        id="k-sr-type",
    ),
    pytest.param(SchemaRegistryConnection, {"url": "localhost:8081"}, "url", id="sr-not-url"),
    pytest.param(
        SchemaRegistryConnection,
        {"url": "http://sr", "basic_auth_password": "pw"},
        "basic_auth_user",
        id="sr-password-without-user",
    ),
    pytest.param(DeltaLocalConnection, {"path": " "}, "path", id="delta-blank"),
    pytest.param(DeltaS3Connection, {"bucket": "s3://b"}, "bucket", id="delta-s3-scheme"),
    pytest.param(DeltaS3Connection, {"bucket": "Bad_Bucket"}, "bucket", id="delta-s3-bucket"),
    pytest.param(
        DeltaS3Connection,
        {"bucket": "bucket", "access_key_id": "AKIA"},
        "secret_access_key",
        id="delta-s3-key-pair",
    ),
    pytest.param(
        ObjectStoreS3Connection,
        {"bucket": "bucket", "format": "parquet", "endpoint": "minio:9000"},
        "endpoint",
        id="os3-endpoint",
    ),
    pytest.param(
        ObjectStoreLocalConnection, {"path": "/d", "format": "xlsx"}, "format", id="ol-format"
    ),
    pytest.param(ObjectStoreS3Connection, {"bucket": "bucket", "format": ""}, "format", id="os3"),
]


@pytest.mark.parametrize(("cls", "fields", "field"), INVALID)
def test_invalid_values_raise_config_error_naming_connection_and_field(
    cls: type[Connection], fields: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        cls(name="my_conn", **fields)
    message = str(info.value)
    assert "'my_conn'" in message
    assert f"'{field}'" in message


def test_invalid_name() -> None:
    with pytest.raises(ConfigError, match="not a valid connection name"):
        SQLiteConnection(name="has space", path="x.db")


def test_choice_errors_suggest_the_closest_value() -> None:
    with pytest.raises(ConfigError, match="did you mean 'protobuf'"):
        KafkaConnection(name="k", bootstrap_servers="h:1", payload_format="protobuff")
    with pytest.raises(ConfigError, match="did you mean 'parquet'"):
        ObjectStoreLocalConnection(name="o", path="/d", format="parket")


def test_kafka_normalises_case_and_accepts_sr_by_name_or_instance() -> None:
    sr = SchemaRegistryConnection(name="sr", url="https://sr")
    by_obj = KafkaConnection(
        name="k",
        bootstrap_servers="a:9092,b:9093",
        security_protocol="sasl_ssl",
        sasl_mechanism="scram-sha-512",
        sasl_plain_username="u",
        sasl_plain_password="p",
        payload_format="avro",
        schema_registry=sr,
    )
    assert by_obj.security_protocol == "SASL_SSL"
    assert by_obj.sasl_mechanism == "SCRAM-SHA-512"
    assert by_obj.schema_registry_connection() is sr
    by_name = KafkaConnection(
        name="k", bootstrap_servers="a:9092", payload_format="protobuf", schema_registry="sr"
    )
    assert by_name.schema_registry == "sr"


def test_path_like_paths_are_stored_as_strings(tmp_path: Path) -> None:
    conn = DuckDBConnection(name="d", path=tmp_path / "x.duckdb")
    assert conn.path == str(tmp_path / "x.duckdb")
    assert isinstance(conn.path, str)


# -- ${VAR} -------------------------------------------------------------------------------------


def test_unresolved_variables_do_not_fail_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_URL", raising=False)
    conns = [
        PostgresConnection(name="wh", url="${NOPE_URL}"),
        PostgresConnection(name="wh2", url="postgres://${NOPE_URL}"),
        KafkaConnection(
            name="k",
            bootstrap_servers="${NOPE_URL}",
            payload_format="${NOPE_URL}",
            security_protocol="${NOPE_URL}",
            dead_letter_topic="${NOPE_URL}",
        ),
        ObjectStoreLocalConnection(name="o", path="${NOPE_URL}", format="${NOPE_URL}"),
        DeltaS3Connection(name="d", bucket="${NOPE_URL}", endpoint="${NOPE_URL}"),
    ]
    for conn in conns:
        with pytest.raises(ConfigError) as info:
            conn.resolved()
        message = str(info.value)
        assert "NOPE_URL" in message
        assert repr(conn.name) in message


def test_resolved_interpolates_every_string_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("KAFKA_USER", "alice")
    monkeypatch.setenv("KAFKA_PASS", "s3cret")
    monkeypatch.setenv("SR_URL", "http://sr:8081")
    monkeypatch.setenv("CLIENT", "etl")
    raw = KafkaConnection(
        name="kafka_prod",
        bootstrap_servers="${KAFKA_BOOTSTRAP}",
        group_id="grp-${KAFKA_USER}",
        sasl_plain_username="${KAFKA_USER}",
        sasl_plain_password="${KAFKA_PASS}",
        payload_format="avro",
        schema_registry=SchemaRegistryConnection(name="sr", url="${SR_URL}"),
        extra={"client.id": "${CLIENT}", "linger.ms": 5},
    )
    conn = raw.resolved()
    assert conn.bootstrap_servers == "broker:9092"
    assert conn.group_id == "grp-alice"
    assert conn.sasl_plain_password == "s3cret"
    assert isinstance(conn.schema_registry, SchemaRegistryConnection)
    assert conn.schema_registry.url == "http://sr:8081"
    assert conn.extra == {"client.id": "etl", "linger.ms": 5}
    assert raw.bootstrap_servers == "${KAFKA_BOOTSTRAP}"  # the declaration is untouched


def test_resolution_happens_at_use_time(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = PostgresConnection(name="wh", url="postgres://${PG_HOST}/db")
    monkeypatch.setenv("PG_HOST", "first")
    assert conn.resolved().url == "postgres://first/db"
    monkeypatch.setenv("PG_HOST", "second")
    assert conn.conninfo() == "postgres://second/db"


def test_resolved_values_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMT", "xml")
    conn = KafkaConnection(name="k", bootstrap_servers="h:1", payload_format="${FMT}")
    with pytest.raises(ConfigError, match="payload_format"):
        conn.resolved()
    monkeypatch.setenv("WAREHOUSE_DSN", "mysql://h/db")
    with pytest.raises(ConfigError, match="scheme 'mysql'"):
        PostgresConnection(name="wh", url="${WAREHOUSE_DSN}").resolved()


def test_resolved_values_are_not_interpolated_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASS", "pa${ss}word")  # a secret that happens to hold "${"
    conn = KafkaConnection(
        name="k",
        bootstrap_servers="h:1",
        sasl_plain_username="u",
        sasl_plain_password="${KAFKA_PASS}",
    )
    resolved = conn.resolved()
    assert resolved.resolved() is resolved
    assert resolved.client_config("producer")["sasl.password"] == "pa${ss}word"
    assert resolved == KafkaConnection(
        name="k",
        bootstrap_servers="h:1",
        sasl_plain_username="u",
        sasl_plain_password="pa${ss}word",
    )
    assert "_resolved" not in repr(resolved)


def test_escaped_references_stay_literal() -> None:
    conn = PostgresConnection(name="wh", url="postgres://h/db?application_name=$${literal}")
    assert conn.resolved().url == "postgres://h/db?application_name=${literal}"
    assert conn.resolved().conninfo() == "postgres://h/db?application_name=${literal}"


def test_resolved_without_references_returns_self() -> None:
    conn = EXAMPLES["postgres"]
    assert conn.resolved() is conn


def test_interpolate_escape_and_errors() -> None:
    env = {"A": "1"}
    assert interpolate("x${A}y$${A}", connection="c", field="f", environ=env) == "x1y${A}"
    assert interpolate("$A and $", connection="c", field="f", environ=env) == "$A and $"
    with pytest.raises(ConfigError) as info:
        interpolate("${MISSING_VAR}", connection="wh", field="url", environ=env)
    assert "MISSING_VAR" in str(info.value)
    assert "'wh'" in str(info.value)
    assert "'url'" in str(info.value)


# -- driver settings ----------------------------------------------------------------------------


def test_kafka_client_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PASS", "s3cret")
    conn = KafkaConnection(
        name="k",
        bootstrap_servers="h:9092",
        group_id="g",
        sasl_plain_username="alice",
        sasl_plain_password="${KAFKA_PASS}",
        auto_offset_reset="earliest",
        extra={"client.id": "etl"},
        config={"fetch.min.bytes": 65536, "ssl.ca.location": "/etc/ca.pem"},
    )
    assert conn.client_config() == {
        "bootstrap.servers": "h:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": "s3cret",
        "group.id": "g",
        "auto.offset.reset": "earliest",
        "client.id": "etl",
        "fetch.min.bytes": 65536,
        "ssl.ca.location": "/etc/ca.pem",
    }
    producer = conn.client_config("producer")
    assert "group.id" not in producer
    assert "auto.offset.reset" not in producer


def test_kafka_consumer_needs_group_id() -> None:
    conn = KafkaConnection(name="k", bootstrap_servers="h:9092")
    assert conn.client_config("producer") == {"bootstrap.servers": "h:9092"}
    with pytest.raises(ConfigError, match="group_id"):
        conn.client_config("consumer")


def test_schema_registry_client_config() -> None:
    sr = SchemaRegistryConnection(
        name="sr", url="https://sr", basic_auth_user="svc", basic_auth_password="pw"
    )
    assert sr.client_config() == {"url": "https://sr", "basic.auth.user.info": "svc:pw"}


def test_s3_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET", "shh")
    conn = DeltaS3Connection(
        name="archive",
        bucket="ematix-archive",
        prefix="/events/",
        region="us-east-1",
        endpoint="http://minio:9000",
        access_key_id="AKIA1",
        secret_access_key="${S3_SECRET}",
    )
    assert conn.prefix == "events"
    assert conn.table_uri() == "s3://ematix-archive/events"
    assert conn.table_uri("orders") == "s3://ematix-archive/events/orders"
    assert conn.storage_options() == {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "AKIA1",
        "AWS_SECRET_ACCESS_KEY": "shh",
    }
    assert conn.pyarrow_options() == {
        "region": "us-east-1",
        "endpoint_override": "minio:9000",
        "scheme": "http",
        "access_key": "AKIA1",
        "secret_key": "shh",
    }


def test_mysql_connect_kwargs() -> None:
    conn = MySQLConnection(name="m", url="mysql://app:p%40ss@db:3307/shop")
    assert conn.connect_kwargs() == {
        "host": "db",
        "port": 3307,
        "user": "app",
        "password": "p@ss",
        "database": "shop",
    }


# -- format_from_path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("s3://bucket/year=2026/events.csv.gz", "csv"),
        ("logs.ndjson", "json_lines"),
        ("data.parquet", "parquet"),
        ("unknown.xml", None),
        ("part-0.pq", "parquet"),
        ("table.tsv", "csv"),
        ("events.json", "json_lines"),
        ("events.jsonl", "json_lines"),
        ("events.jsonl.zst", "json_lines"),
        ("x.orc", "orc"),
        ("x.orc.snappy", "orc"),
        ("x.parquet.lz4", "parquet"),
        ("x.csv.bz2", "csv"),
        ("DATA.PARQUET", "parquet"),
        ("data.parquet?download=true", None),
        ("archive.gz", None),
        ("s3://bucket/dir/", None),
        ("", None),
        (Path("/tmp/a.csv"), "csv"),
    ],
)
def test_format_from_path(path: str | Path, expected: str | None) -> None:
    assert format_from_path(path) == expected


def test_public_surface_imports_and_is_documented() -> None:
    import ematix_engine.connections as package

    assert list(package.__all__) == sorted(package.__all__, key=lambda n: (not n.isupper(), n))
    for name in package.__all__:
        obj = getattr(package, name)
        if callable(obj):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
