"""Cross-backend harness for the batch-engine tests.

One :class:`Harness` per backend id (``duckdb``, ``sqlite``, ``postgres``, ``delta``,
``postgres_x``): it registers a target connection named ``default``, creates and modifies source
tables, and queries the target so tests assert on what was really written. Values come back
normalised (timestamps as UTC ``datetime``, booleans as ``bool``) so one expectation fits every
backend.

Each id is a (target database, source database) pair, :attr:`Harness.target_kind` and
:attr:`Harness.source_kind`:

========== ============ ============ =======================================================
id         target_kind  source_kind  load path
========== ============ ============ =======================================================
duckdb     duckdb       duckdb       same database
sqlite     sqlite       sqlite       same database
postgres   postgres     postgres     same database
delta      delta        duckdb       cross-database (Delta has no SQL engine)
postgres_x postgres     duckdb       cross-database: PostgreSQL target, sources in a DuckDB
                                     file (prepared in-process, COPY, ADBC reads)
========== ============ ============ =======================================================

SQL backends keep the source tables in the target database (same-database loads). The
cross-database ids (:attr:`Harness.cross_database`) keep them in a DuckDB file registered as
``<name>_src``, and every pipeline a test declares must pass ``**h.pipeline_options`` (which
sets ``source_connection`` for them, nothing elsewhere). Write source tables with
:meth:`Harness.create_source` / :meth:`~Harness.insert` / :meth:`~Harness.execute` (the source
database) and target tables with :meth:`~Harness.create_target` /
:meth:`~Harness.execute_target`; :meth:`~Harness.query` and the inspection helpers read the
target database, :meth:`~Harness.source_query` the source one. Branch on ``target_kind`` for
what the target does (types, placeholders, SQL) and on ``cross_database`` for what depends on
where the source lives.

Queries on a ``delta`` harness run in an in-memory DuckDB holding every Delta table under
the root (read with ``DeltaTable(path).to_pyarrow_table()``, reloaded when its log changes).

Tests get a harness from the ``h`` fixture (``tests/integration/batch/conftest.py``), which is
parametrised over :data:`BACKENDS`; ``make_harness`` builds extra ones for cross-database tests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from ematix_engine.connections import (
    Connection,
    DeltaLocalConnection,
    DuckDBConnection,
    PostgresConnection,
    SQLiteConnection,
    register_connection,
)
from tests.fixtures.postgres import PgSchema

__all__ = [
    "BACKENDS",
    "Harness",
    "assert_scd2_invariants",
    "at",
    "history",
    "make_harness",
    "to_dt",
]

BACKENDS = ("duckdb", "sqlite", "postgres", "delta", "postgres_x")

#: Backend id → (target database, source database); see the module docstring.
_KINDS: dict[str, tuple[str, str]] = {
    "duckdb": ("duckdb", "duckdb"),
    "sqlite": ("sqlite", "sqlite"),
    "postgres": ("postgres", "postgres"),
    "delta": ("delta", "duckdb"),
    "postgres_x": ("postgres", "duckdb"),
}

#: Generic column types → DDL per SQL database (for the tables the tests create).
_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "integer": "INTEGER",
        "varchar(8)": "VARCHAR(8)",
        "bigint": "BIGINT",
        "text": "TEXT",
        "double": "DOUBLE",
        "numeric(12,2)": "DECIMAL(12,2)",
        "timestamptz": "TIMESTAMPTZ",
        "boolean": "BOOLEAN",
        "date": "DATE",
    },
    "postgres": {
        "integer": "INTEGER",
        "varchar(8)": "VARCHAR(8)",
        "bigint": "BIGINT",
        "text": "TEXT",
        "double": "DOUBLE PRECISION",
        "numeric(12,2)": "NUMERIC(12,2)",
        "timestamptz": "TIMESTAMPTZ",
        "boolean": "BOOLEAN",
        "date": "DATE",
    },
    "sqlite": {
        "integer": "INTEGER",
        "varchar(8)": "VARCHAR(8)",
        "bigint": "INTEGER",
        "text": "TEXT",
        "double": "REAL",
        "numeric(12,2)": "NUMERIC",
        "timestamptz": "TEXT",
        "boolean": "BOOLEAN",
        "date": "TEXT",
    },
}

#: Generic column types → Arrow types (for Delta tables the tests create directly).
_ARROW_TYPES: dict[str, pa.DataType] = {
    "integer": pa.int32(),
    "varchar(8)": pa.string(),
    "bigint": pa.int64(),
    "text": pa.string(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

_TS_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    """A UTC instant on 2024-01-``day`` (short event times for tests)."""
    return datetime(2024, 1, day, hour, minute, tzinfo=UTC)


def to_dt(value: Any) -> datetime | None:
    """Normalise a timestamp as any backend returns it to an aware UTC ``datetime``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        text = value.replace("T", " ")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        elif re.search(r"[+-]\d{2}$", text):
            text += ":00"
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def _marker(database: str) -> str:
    """Parameter placeholder of a SQL database's driver."""
    return "%s" if database == "postgres" else "?"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


@dataclass
class Harness:
    """One backend: a registered target connection plus direct access to its database.

    Attributes:
        kind: backend id (one of :data:`BACKENDS`).
        connection: the typed target connection (registered under its name).
        schema: schema for declared tables and source tables (SQLite ignores it).
        dsn: PostgreSQL DSN (PostgreSQL targets only).
        path: file of the source database (duckdb, sqlite: the target's own file; delta,
            postgres_x: the DuckDB file of the source tables).
        source: the source connection when it is not the target (delta, postgres_x: a DuckDB
            file).
    """

    kind: str
    connection: Connection
    schema: str
    dsn: str | None = None
    path: str | None = None
    source: Connection | None = None
    _pg: psycopg.Connection | None = field(default=None, repr=False)
    _duck: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    # delta: the in-memory inspection session and the Delta logs it was built from
    _inspect: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _inspect_keys: dict[tuple[str, str], tuple] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ naming
    @property
    def target_kind(self) -> str:
        """Database the target tables live in: duckdb, sqlite, postgres or delta."""
        return _KINDS[self.kind][0]

    @property
    def source_kind(self) -> str:
        """SQL database the source tables live in: duckdb, sqlite or postgres."""
        return _KINDS[self.kind][1]

    @property
    def cross_database(self) -> bool:
        """Whether the source tables live outside the target (loads take the cross-db path)."""
        return self.source is not None

    @property
    def marker(self) -> str:
        """Parameter placeholder for :meth:`execute_target` and :meth:`query` (``%s`` or ``?``)."""
        return _marker(self.target_kind)

    @property
    def name(self) -> str:
        """Connection name the harness registered."""
        return self.connection.name

    @property
    def pipeline_options(self) -> dict[str, Any]:
        """Keyword arguments every ``@ematix.pipeline`` of a test passes through.

        Cross-database ids (delta, postgres_x): ``source_connection`` = the DuckDB file
        holding the source tables.
        """
        return {"source_connection": self.source.name} if self.source is not None else {}

    def quote(self, name: str) -> str:
        """Quote one identifier (double quotes, embedded quotes doubled)."""
        return '"' + name.replace('"', '""') + '"'

    def table(self, name: str) -> str:
        """Quoted, qualified name of a table in the harness schema (source or target)."""
        if self.target_kind == "sqlite":
            return self.quote(name)
        return f"{self.quote(self.schema)}.{self.quote(name)}"

    def type_sql(self, generic: str, *, target: bool = False) -> str:
        """DDL type of a generic type name in the source database (or the target's)."""
        return _TYPES[self.target_kind if target else self.source_kind].get(generic, generic)

    # ------------------------------------------------------------------ raw access
    @contextlib.contextmanager
    def _cursor(self, database: str) -> Iterator[Any]:
        """An open connection to the harness's ``database`` (its source or SQL target)."""
        if database == "postgres":
            assert self._pg is not None
            yield self._pg
        elif database == "duckdb":
            # One connection for the harness's life: DuckDB shares the open database with the
            # engine's sessions in this process, which keeps each load from re-opening the file.
            if self._duck is None:
                self._duck = duckdb.connect(self.path)
            yield self._duck
        elif database == "sqlite":
            con = sqlite3.connect(self.path, isolation_level=None)
            try:
                yield con
            finally:
                con.close()
        else:  # pragma: no cover - test bug
            raise ValueError(f"{self.kind}: no SQL connection to a {database!r} database")

    def _run(
        self, database: str, sql: str, params: Sequence[Any] | None, *, fetch: bool
    ) -> list[tuple]:
        with self._cursor(database) as con:
            if database == "sqlite":
                params = [_sqlite_value(v) for v in params or ()]
            cursor = con.execute(sql, params) if params is not None else con.execute(sql)
            return cursor.fetchall() if fetch else []

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement on the source database (autocommit).

        delta, postgres_x: the DuckDB file of the source tables; the other ids: the target
        database (use :meth:`execute_target` for statements on target tables all the same).
        """
        self._run(self.source_kind, sql, params, fetch=False)

    def execute_target(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement on the target database (autocommit; not for delta)."""
        if self.target_kind == "delta":  # pragma: no cover - test bug
            raise ValueError("a Delta target has no SQL engine: use delta_table()")
        self._run(self.target_kind, sql, params, fetch=False)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a query on the target database and return every row."""
        if self.target_kind == "delta":
            con = self._delta_session()
            cursor = con.execute(sql, params) if params is not None else con.execute(sql)
            return cursor.fetchall()
        return self._run(self.target_kind, sql, params, fetch=True)

    def source_query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run a query on the source database and return every row."""
        return self._run(self.source_kind, sql, params, fetch=True)

    # ------------------------------------------------------------------ delta
    def delta_path(self, name: str) -> str:
        """Folder of Delta table ``name`` in the harness schema (delta only)."""
        assert isinstance(self.connection, DeltaLocalConnection)
        return str(Path(self.connection.path) / self.schema / name)

    def delta_table(self, name: str) -> DeltaTable:
        """The Delta table ``name`` in the harness schema (delta only)."""
        return DeltaTable(self.delta_path(name))

    def delta_version(self, name: str) -> int | None:
        """Current version of Delta table ``name``, None when it does not exist."""
        if not (Path(self.delta_path(name)) / "_delta_log").is_dir():
            return None
        return self.delta_table(name).version()

    def _delta_tables(self) -> list[tuple[str, str]]:
        from ematix_engine.backends.delta import DeltaBackend

        assert isinstance(self.connection, DeltaLocalConnection)
        return DeltaBackend(self.connection.path).tables()

    def _delta_session(self) -> duckdb.DuckDBPyConnection:
        """In-memory DuckDB holding every Delta table under the root as ``schema.table``.

        A table is reloaded only when its Delta log changed since the last query.
        """
        assert isinstance(self.connection, DeltaLocalConnection)
        root = Path(self.connection.path)
        wanted: dict[tuple[str, str], tuple] = {
            (schema, name): tuple(sorted(os.listdir(root / schema / name / "_delta_log")))
            for schema, name in self._delta_tables()
        }
        if self._inspect is None:
            self._inspect = duckdb.connect()
        con = self._inspect
        for (schema, name), key in list(self._inspect_keys.items()):
            if wanted.get((schema, name)) != key:
                con.execute(f"DROP TABLE {self.quote(schema)}.{self.quote(name)}")
                del self._inspect_keys[(schema, name)]
        for (schema, name), key in wanted.items():
            if (schema, name) in self._inspect_keys:
                continue
            data = DeltaTable(str(root / schema / name)).to_pyarrow_table()
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")
            con.register("_harness_data", data)
            con.execute(
                f"CREATE TABLE {self.quote(schema)}.{self.quote(name)} AS "
                "SELECT * FROM _harness_data"
            )
            con.unregister("_harness_data")
            self._inspect_keys[(schema, name)] = key
        return con

    def scalar(self, sql: str) -> Any:
        """First column of the first row."""
        return self.query(sql)[0][0]

    # ------------------------------------------------------------------ source tables
    def create_source(
        self, name: str, columns: Mapping[str, str], rows: Sequence[Sequence[Any]] = ()
    ) -> str:
        """(Re)create source table ``name`` with generic ``columns`` and ``rows``.

        Returns:
            The quoted, qualified table name to use in pipeline SQL.
        """
        table = self.table(name)
        definition = ", ".join(f"{self.quote(c)} {self.type_sql(t)}" for c, t in columns.items())
        self.execute(f"DROP TABLE IF EXISTS {table}")
        self.execute(f"CREATE TABLE {table} ({definition})")
        self.insert(name, rows)
        return table

    def insert(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` into table ``name`` (values bound as parameters)."""
        if not rows:
            return
        marker = _marker(self.source_kind)
        sql = f"INSERT INTO {self.table(name)} VALUES ({', '.join(marker for _ in rows[0])})"
        with self._cursor(self.source_kind) as con:
            for row in rows:
                values = [_sqlite_value(v) for v in row] if self.source_kind == "sqlite" else row
                con.execute(sql, list(values))

    def create_target(self, name: str, columns: Mapping[str, str]) -> None:
        """Create an empty target table ``name`` with generic ``columns`` (types as DDL).

        Delta: an empty Delta table with the Arrow twin of each type (``pytest.skip`` when a
        type has none).
        """
        if self.target_kind == "delta":
            missing = [t for t in columns.values() if t not in _ARROW_TYPES]
            if missing:
                pytest.skip(f"Delta Lake has no column type for {missing[0]!r}")
            schema = pa.schema([(c, _ARROW_TYPES[t]) for c, t in columns.items()])
            write_deltalake(self.delta_path(name), schema.empty_table())
            return
        definition = ", ".join(
            f"{self.quote(c)} {self.type_sql(t, target=True).upper()}" for c, t in columns.items()
        )
        self.execute_target(f"CREATE TABLE {self.table(name)} ({definition})")

    def set_rows(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        """Replace the contents of source table ``name``."""
        self.execute(f"DELETE FROM {self.table(name)}")
        self.insert(name, rows)

    # ------------------------------------------------------------------ target inspection
    def exists(self, name: str) -> bool:
        """Whether table ``name`` exists in the harness schema."""
        return self.columns(name) is not None

    def columns(self, name: str) -> dict[str, str] | None:
        """``{column: lower-case type}`` of table ``name``, or None when it does not exist."""
        if self.target_kind == "sqlite":
            rows = self.query("SELECT name, lower(type) FROM pragma_table_info(?)", (name,))
        else:
            marker = self.marker
            rows = self.query(
                "SELECT column_name, lower(data_type) FROM information_schema.columns "
                f"WHERE table_schema = {marker} AND table_name = {marker} "
                "ORDER BY ordinal_position",
                (self.schema, name),
            )
        return dict(rows) if rows else None

    def count(self, name: str, where: str = "") -> int:
        """Rows in table ``name`` (optionally filtered)."""
        return int(self.scalar(f"SELECT COUNT(*) FROM {self.table(name)} {where}"))

    def rows(self, name: str, columns: Sequence[str], order_by: Sequence[str] = ()) -> list[tuple]:
        """Selected columns of table ``name``, normalised (timestamps, booleans)."""
        cols = ", ".join(self.quote(c) for c in columns)
        order = ", ".join(self.quote(c) for c in (order_by or columns))
        raw = self.query(f"SELECT {cols} FROM {self.table(name)} ORDER BY {order}")
        return [tuple(_norm(c, v) for c, v in zip(columns, row, strict=True)) for row in raw]

    def watermark(self, pipeline: str) -> str | None:
        """Stored watermark text of ``pipeline`` (None when there is none).

        Delta: the latest ``ematix.watermark.<pipeline>`` in the commit metadata of any table.
        """
        if self.target_kind == "delta":
            from ematix_engine.backends.delta import DeltaBackend

            assert isinstance(self.connection, DeltaLocalConnection)
            backend = DeltaBackend(self.connection.path)
            for schema, name in self._delta_tables():
                value = backend.read_watermark(pipeline, schema, name)
                if value is not None:
                    return value
            return None
        table = '"_ematix_watermarks"' if self.target_kind == "sqlite" else '"ematix"."watermarks"'
        try:
            rows = self.query(
                f"SELECT value FROM {table} WHERE pipeline = {self.marker}", (pipeline,)
            )
        except Exception:  # table not created yet
            return None
        return rows[0][0] if rows else None

    def close(self) -> None:
        """Remove this harness's watermark rows (PostgreSQL) and close its connection."""
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.execute(
                    "DELETE FROM ematix.watermarks WHERE target LIKE %s",
                    (self.schema + ".%",),
                )
            self._pg.close()
        if self._duck is not None:
            self._duck.close()
            self._duck = None
        if self._inspect is not None:
            self._inspect.close()
            self._inspect = None
            self._inspect_keys.clear()


_BOOL_COLUMNS = {"is_current", "is_deleted"}
_TS_COLUMNS = {"valid_from", "valid_to", "_loaded_at", "ts", "updated_at"}


def _norm(column: str, value: Any) -> Any:
    if column in _BOOL_COLUMNS and value is not None:
        return bool(value)
    if column in _TS_COLUMNS or isinstance(value, datetime):
        if isinstance(value, str) and not _TS_TEXT.match(value):
            return value
        return to_dt(value)
    return value


def _pg_schema(request: pytest.FixtureRequest) -> PgSchema:
    """A throwaway PostgreSQL schema of one harness, dropped (CASCADE) after the test.

    Like the ``pg_schema`` fixture, but one per harness: a test may build several PostgreSQL
    harnesses (``postgres`` and ``postgres_x``) whose tables must not meet.
    """
    dsn = request.getfixturevalue("pg_dsn")
    schema = PgSchema(dsn=dsn, name=f"ematix_test_{uuid.uuid4().hex}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema.name}")

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '15s'")  # a leaked transaction must not hang
            conn.execute(f"DROP SCHEMA IF EXISTS {schema.name} CASCADE")

    request.addfinalizer(drop)
    return schema


def make_harness(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    name: str = "default",
    register: bool = True,
) -> Harness:
    """Build (and register) a harness for ``kind``; it is closed at the end of the test.

    Args:
        kind: one of :data:`BACKENDS`. delta and postgres_x keep the source tables in a
            DuckDB file registered as ``<name>_src``; PostgreSQL targets get a schema of
            their own.
        request: the test's fixture request (PostgreSQL fixtures are pulled lazily).
        tmp_path: folder for embedded database files.
        name: connection name to register.
        register: register the connection (and the source connection) under ``name``.
    """
    if kind not in _KINDS:  # pragma: no cover - test bug
        raise ValueError(kind)
    target_kind, source_kind = _KINDS[kind]
    suffix = uuid.uuid4().hex[:8]
    schema, dsn, path, pg = "an", None, None, None
    connection: Connection
    if target_kind == "postgres":
        pg_schema = _pg_schema(request)
        schema, dsn = pg_schema.name, pg_schema.dsn
        connection = PostgresConnection(name=name, url=dsn)
        pg = psycopg.connect(dsn, autocommit=True)
    elif target_kind == "delta":
        connection = DeltaLocalConnection(name=name, path=str(tmp_path / f"{name}-{suffix}.delta"))
    elif target_kind == "duckdb":
        path = str(tmp_path / f"{name}-{suffix}.duckdb")
        connection = DuckDBConnection(name=name, path=path)
    else:
        path = str(tmp_path / f"{name}-{suffix}.sqlite")
        connection = SQLiteConnection(name=name, path=path)
    source: Connection | None = None
    if source_kind != target_kind:  # sources in a DuckDB file of their own
        path = str(tmp_path / f"{name}_src-{suffix}.duckdb")
        source = DuckDBConnection(name=f"{name}_src", path=path)
    harness = Harness(kind, connection, schema, dsn=dsn, path=path, source=source, _pg=pg)
    request.addfinalizer(harness.close)
    if source_kind == "duckdb":
        harness.execute(f"CREATE SCHEMA IF NOT EXISTS {harness.quote(schema)}")
    if register:
        register_connection(connection)
        if source is not None:
            register_connection(source)
    return harness


# ---------------------------------------------------------------------------- SCD2 helpers
def history(
    h: Harness, table: str, keys: Sequence[str], values: Sequence[str] = ()
) -> dict[tuple, list[dict[str, Any]]]:
    """Every version of every key of SCD2 ``table``, ordered by ``valid_from``."""
    columns = [*keys, "valid_from", "valid_to", "is_current", "row_hash", "is_deleted", *values]
    result: dict[tuple, list[dict[str, Any]]] = {}
    for row in h.rows(table, columns, order_by=[*keys, "valid_from"]):
        record = dict(zip(columns, row, strict=True))
        result.setdefault(tuple(row[: len(keys)]), []).append(record)
    return result


def assert_scd2_invariants(
    h: Harness, table: str, keys: Sequence[str], *, closed_keys: Sequence[tuple] = ()
) -> dict[tuple, list[dict[str, Any]]]:
    """Check SCD2 history is gap-free, non-overlapping, with one current version per live key.

    For every key, versions ordered by ``valid_from`` have ``valid_to`` equal to the next
    version's ``valid_from``; the last version has ``valid_to`` NULL and is the only current one.
    Keys in ``closed_keys`` (closed by a delete or the TTL) instead have no current version and
    a non-NULL ``valid_to`` on their last version.

    Returns:
        The history (see :func:`history`).
    """
    versions = history(h, table, keys)
    closed = set(closed_keys)
    for key, rows in versions.items():
        starts = [r["valid_from"] for r in rows]
        assert len(set(starts)) == len(starts), f"{key}: two versions share valid_from {rows}"
        for earlier, later in itertools.pairwise(rows):
            assert earlier["valid_to"] is not None, f"{key}: open version before the last {rows}"
            assert earlier["valid_to"] <= later["valid_from"], f"{key}: overlap {rows}"
            if key not in closed:
                assert earlier["valid_to"] == later["valid_from"], f"{key}: gap {rows}"
            assert not earlier["is_current"], f"{key}: non-last version is current {rows}"
        for row in rows:
            if row["valid_to"] is not None:
                assert row["valid_to"] > row["valid_from"], f"{key}: empty interval {rows}"
        current = [r for r in rows if r["is_current"]]
        if key in closed:
            assert current == [], f"{key}: closed key still has a current version {rows}"
            assert rows[-1]["valid_to"] is not None, f"{key}: closed key open {rows}"
        else:
            assert len(current) == 1, f"{key}: {len(current)} current versions {rows}"
            assert current[0] is rows[-1], f"{key}: current version is not the last {rows}"
            assert rows[-1]["valid_to"] is None, f"{key}: last version has valid_to {rows}"
    return versions
