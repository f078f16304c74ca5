"""The resolution chain, the Python registry and @ematix.connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ematix_engine.api.namespace import ematix
from ematix_engine.connections import (
    DuckDBConnection,
    KafkaConnection,
    PostgresConnection,
    SchemaRegistryConnection,
    SQLiteConnection,
    connect,
    env_var_name,
    get_connection,
    list_connections,
    locate_connection,
    register_connection,
    registered_connections,
    unregister_connection,
)
from ematix_engine.errors import ConfigError, UnknownNameError
from tests.unit.test_connections_support import Sandbox, isolate_connections


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    yield from isolate_connections(monkeypatch, tmp_path)


def toml_entry(name: str, url: str) -> str:
    return f'[connections.{name}]\nurl = "{url}"\n'


# -- precedence ---------------------------------------------------------------------------------

LEVELS = ["env_name", "env_alias_name", "project", "project_alias", "user", "user_alias", "python"]


def define(level: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Define the connection 'warehouse' at one level, pointing at sqlite://<level>.db."""
    url = f"sqlite://{level}.db"
    if level == "env_name":
        monkeypatch.setenv("EMATIX_DSN_WAREHOUSE", url)
    elif level == "env_alias_name":
        monkeypatch.setenv("EMATIX_FLOW_DSN_WAREHOUSE", url)
    elif level == "project":
        sandbox.project_toml(toml_entry("warehouse", url))
    elif level == "project_alias":
        sandbox.project_toml(toml_entry("warehouse", url), name=".ematix-flow.toml")
    elif level == "user":
        sandbox.user_toml(toml_entry("warehouse", url))
    elif level == "user_alias":
        sandbox.user_toml(toml_entry("warehouse", url), folder=".ematix-flow")
    elif level == "python":
        register_connection(SQLiteConnection(name="warehouse", path="python.db"))


@pytest.mark.parametrize("winner", LEVELS)
def test_each_level_beats_every_lower_one(
    winner: str, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for level in LEVELS[LEVELS.index(winner) :]:
        define(level, sandbox, monkeypatch)
    conn = get_connection("warehouse")
    assert conn == SQLiteConnection(name="warehouse", path=f"{winner}.db")


def test_sources_are_reported(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    define("python", sandbox, monkeypatch)
    assert locate_connection("warehouse").source == "python"
    define("user", sandbox, monkeypatch)
    assert locate_connection("warehouse").source == str(
        sandbox.home / ".ematix" / "connections.toml"
    )
    define("project", sandbox, monkeypatch)
    assert locate_connection("warehouse").source == str(sandbox.cwd / ".ematix.toml")
    define("env_name", sandbox, monkeypatch)
    assert locate_connection("warehouse").source == "env EMATIX_DSN_WAREHOUSE"


def test_ematix_dsn_only_serves_the_default_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMATIX_DSN", "duckdb://default.duckdb")
    assert get_connection("default") == DuckDBConnection(name="default", path="default.duckdb")
    with pytest.raises(UnknownNameError):
        get_connection("warehouse")
    monkeypatch.setenv("EMATIX_FLOW_DSN", "duckdb://alias.duckdb")
    assert get_connection("default").path == "default.duckdb"  # type: ignore[attr-defined]
    monkeypatch.delenv("EMATIX_DSN")
    assert get_connection("default").path == "alias.duckdb"  # type: ignore[attr-defined]
    monkeypatch.setenv("EMATIX_DSN_DEFAULT", "duckdb://named.duckdb")
    assert get_connection("default").path == "named.duckdb"  # type: ignore[attr-defined]


def test_env_var_name_sanitises(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_var_name("kafka-prod.eu") == "EMATIX_DSN_KAFKA_PROD_EU"
    monkeypatch.setenv("EMATIX_DSN_KAFKA_PROD", "kafka://h:9092?group_id=g")
    assert get_connection("kafka-prod") == KafkaConnection(
        name="kafka-prod", bootstrap_servers="h:9092", group_id="g"
    )


def test_names_in_both_project_files_merge_with_ematix_winning(sandbox: Sandbox) -> None:
    sandbox.project_toml(toml_entry("a", "sqlite://ematix-a.db"))
    sandbox.project_toml(
        toml_entry("a", "sqlite://flow-a.db") + toml_entry("b", "sqlite://flow-b.db"),
        name=".ematix-flow.toml",
    )
    assert get_connection("a").path == "ematix-a.db"  # type: ignore[attr-defined]
    assert get_connection("b").path == "flow-b.db"  # type: ignore[attr-defined]


# -- TOML shapes --------------------------------------------------------------------------------


def test_toml_kind_and_fields(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.project_toml(
        """
[connections.warehouse]
url = "postgres://${WAREHOUSE_DSN}"

[connections.kafka]
kind = "kafka"
bootstrap_servers = "localhost:9092"
group_id = "ematix"
payload_format = "avro"
schema_registry = "sr_prod"

[connections.kafka.extra]
"client.id" = "etl"
"linger.ms" = 5

[connections.sr_prod]
kind = "schema_registry"
url = "${SR_URL}"

[connections.lake]
kind = "object_store_local"
url = "file:///data/lake"
format = "csv"

[connections.legacy]
dsn = "postgres://old-host/db"
"""
    )
    assert get_connection("warehouse") == PostgresConnection(
        name="warehouse", url="postgres://${WAREHOUSE_DSN}"
    )
    kafka = get_connection("kafka")
    assert isinstance(kafka, KafkaConnection)
    assert kafka.extra == {"client.id": "etl", "linger.ms": 5}
    monkeypatch.setenv("SR_URL", "http://sr:8081")
    sr = kafka.schema_registry_connection()
    assert sr == SchemaRegistryConnection(name="sr_prod", url="${SR_URL}")
    assert sr.resolved().url == "http://sr:8081"
    lake = get_connection("lake")
    assert (lake.kind, lake.path, lake.format) == ("object_store_local", "/data/lake", "csv")  # type: ignore[attr-defined]
    assert get_connection("legacy").to_url() == "postgres://old-host/db"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[connections.x]\nkind = "postgress"\nurl = "postgres://h/db"\n', "did you mean 'postgres'"),
        ('[connections.x]\nkind = "kafka"\nbootstrap_server = "h:1"\n', "did you mean 'bootstrap_servers'"),
        ('[connections.x]\nkind = "kafka"\n', "needs 'bootstrap_servers'"),
        ('[connections.x]\ngroup_id = "g"\n', "kind"),
        ('[connections.x]\nkind = "sqlite"\nurl = "duckdb://a.duckdb"\n', "describes a 'duckdb'"),
        ('[connections.x]\nurl = "a"\ndsn = "b"\n', "either 'url' or 'dsn'"),
    ],
)  # fmt: skip
def test_bad_toml_entries_name_the_file_and_entry(
    sandbox: Sandbox, body: str, fragment: str
) -> None:
    path = sandbox.project_toml(body)
    with pytest.raises(ConfigError) as info:
        get_connection("x")
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_broken_toml_file(sandbox: Sandbox) -> None:
    path = sandbox.project_toml("[connections.x\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        get_connection("x")
    assert str(path) in str(info.value)
    sandbox.project_toml("connections = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        get_connection("x")


def test_a_broken_entry_does_not_break_other_names(sandbox: Sandbox) -> None:
    sandbox.project_toml(
        '[connections.bad]\nkind = "nope"\n[connections.good]\nurl = "sqlite://g.db"\n'
    )
    assert get_connection("good").path == "g.db"  # type: ignore[attr-defined]
    entries = {e.name: e for e in list_connections()}
    assert entries["good"].connection is not None
    assert entries["bad"].connection is None
    assert entries["bad"].kind == "?"
    assert "unknown connection kind 'nope'" in (entries["bad"].error or "")


def test_env_value_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMATIX_DSN_WH", "postgress://u:topsecret@h/db")
    with pytest.raises(ConfigError) as info:
        get_connection("wh")
    assert "EMATIX_DSN_WH" in str(info.value)
    assert "topsecret" not in str(info.value)


# -- unknown names, list, connect ---------------------------------------------------------------


def test_unknown_name_suggests_the_closest(sandbox: Sandbox) -> None:
    sandbox.project_toml(toml_entry("warehouse", "sqlite://w.db"))
    with pytest.raises(UnknownNameError) as info:
        get_connection("warehose")
    message = str(info.value)
    assert "did you mean 'warehouse'" in message
    assert "EMATIX_DSN_WAREHOSE" in message
    assert ".ematix.toml" in message
    assert info.value.name == "warehose"


def test_list_connections_reports_winners_and_sources(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.project_toml(toml_entry("warehouse", "postgres://app:topsecret@db/main"))
    sandbox.user_toml(toml_entry("scratch", "duckdb://:memory:"))
    register_connection(SQLiteConnection(name="warehouse", path="shadowed.db"))
    register_connection(SQLiteConnection(name="local", path="local.db"), source="python:mod")
    monkeypatch.setenv("EMATIX_DSN_KAFKA_PROD", "kafka://h:9092")
    monkeypatch.setenv("EMATIX_DSN", "sqlite://default.db")
    entries = list_connections()
    summary = [(e.name, e.kind, e.source) for e in entries]
    assert summary == [
        ("default", "sqlite", "env EMATIX_DSN"),
        ("kafka_prod", "kafka", "env EMATIX_DSN_KAFKA_PROD"),
        ("local", "sqlite", "python:mod"),
        ("scratch", "duckdb", str(sandbox.home / ".ematix" / "connections.toml")),
        ("warehouse", "postgres", str(sandbox.cwd / ".ematix.toml")),
    ]


def test_list_maps_env_variables_back_to_known_names(monkeypatch: pytest.MonkeyPatch) -> None:
    register_connection(SQLiteConnection(name="kafka-prod", path="x.db"))
    monkeypatch.setenv("EMATIX_DSN_KAFKA_PROD", "kafka://h:9092")
    entries = list_connections()
    assert [(e.name, e.kind) for e in entries] == [("kafka-prod", "kafka")]


def test_connect_falls_back_to_the_inline_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert connect("scratch", url="duckdb://:memory:") == DuckDBConnection(
        name="scratch", path=":memory:"
    )
    monkeypatch.setenv("EMATIX_DSN_SCRATCH", "sqlite://override.db")
    assert connect("scratch", url="duckdb://:memory:") == SQLiteConnection(
        name="scratch", path="override.db"
    )
    monkeypatch.setenv("EMATIX_DSN", "sqlite://d.db")
    assert connect() == SQLiteConnection(name="default", path="d.db")
    with pytest.raises(UnknownNameError):
        connect("nowhere")


# -- the Python registry ------------------------------------------------------------------------


def test_register_replace_and_unregister() -> None:
    first = SQLiteConnection(name="local", path="a.db")
    second = SQLiteConnection(name="local", path="b.db")
    assert register_connection(first) is first
    register_connection(first, replace=False)  # the same definition again is fine
    with pytest.raises(ConfigError, match="already registered"):
        register_connection(second, replace=False)
    register_connection(second)
    assert registered_connections() == {"local": second}
    unregister_connection("local")
    assert registered_connections() == {}
    with pytest.raises(ConfigError, match="typed connection"):
        register_connection("sqlite://x.db")  # type: ignore[arg-type]


def test_registered_objects_follow_overrides_unregistered_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = register_connection(SQLiteConnection(name="wh", path="code.db"))
    loose = SQLiteConnection(name="loose", path="loose.db")
    assert get_connection(registered) is registered
    monkeypatch.setenv("EMATIX_DSN_WH", "duckdb://ops.duckdb")
    monkeypatch.setenv("EMATIX_DSN_LOOSE", "duckdb://ops.duckdb")
    assert get_connection(registered) == DuckDBConnection(name="wh", path="ops.duckdb")
    assert get_connection(loose) is loose


# -- @ematix.connection -------------------------------------------------------------------------


def test_decorator_builds_registers_and_returns_the_instance() -> None:
    @ematix.connection
    class warehouse:
        kind = "postgres"
        url = "${WAREHOUSE_DSN}"

    @ematix.connection
    class sr_prod:
        kind = "schema_registry"
        url = "${SR_URL}"

    @ematix.connection
    class kafka_avro:
        kind = "kafka"
        bootstrap_servers = "${KAFKA_BOOTSTRAP}"
        group_id = "ematix"
        payload_format = "avro"
        schema_registry = "sr_prod"

    @ematix.connection
    class local:
        kind = "sqlite"
        url = "sqlite://local.db"

    assert warehouse == PostgresConnection(name="warehouse", url="${WAREHOUSE_DSN}")
    assert isinstance(kafka_avro, KafkaConnection)
    assert kafka_avro.schema_registry_connection() == sr_prod
    assert local == SQLiteConnection(name="local", path="local.db")
    assert get_connection("warehouse") is warehouse
    assert locate_connection("kafka_avro").source == f"python:{__name__}"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"kind": "postgress", "url": "postgres://h/db"}, "did you mean 'postgres'"),
        ({"url": "postgres://h/db"}, 'set kind = "…"'),
        ({"kind": "postgres", "url": "postgres://h/db", "password": "x"}, "unknown field 'password'"),
        ({"kind": "kafka", "bootstrap_servers": "h:1", "grup_id": "g"}, "did you mean 'group_id'"),
        ({"kind": "kafka"}, "needs 'bootstrap_servers'"),
        ({"kind": "kafka", "bootstrap_servers": "h:1", "payload_format": "xml"}, "payload_format"),
        ({"kind": 3}, "unknown connection kind 3"),
    ],
)  # fmt: skip
def test_decorator_errors_name_the_class(body: dict, fragment: str) -> None:
    cls = type("my_conn", (), body)
    with pytest.raises(ConfigError) as info:
        ematix.connection(cls)
    assert fragment in str(info.value)
    assert "my_conn" in str(info.value)
    assert "my_conn" not in registered_connections()


def test_decorator_rejects_methods_and_non_classes() -> None:
    class with_method:
        kind = "sqlite"
        path = "x.db"

        def helper(self) -> None: ...

    with pytest.raises(ConfigError, match="'helper' is a method"):
        ematix.connection(with_method)
    with pytest.raises(ConfigError, match="decorates a class"):
        ematix.connection(lambda: None)  # type: ignore[arg-type]
