"""Appends of Arrow batches that already have the target's types go straight in.

Into PostgreSQL (``COPY``) and DuckDB (``INSERT`` over the batches):
:mod:`ematix_engine.write.direct` skips the preparation (staging, casts, checks) only when it
cannot change or refuse a value. These tests check that such a write stores exactly what the prepared
path stores (data, ``_loaded_at``, ``_batch_id``, checkpoint), that it is really taken (a first
load too, which creates the table the prepared path would create), and that every batch it must
not take (a ``String[n]`` bound, a normalizer, other types) still goes through the prepared path
with its checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from ematix_engine.backends import open_backend
from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.connections import DuckDBConnection, PostgresConnection
from ematix_engine.errors import BadValueError
from ematix_engine.schema.normalize import lower
from ematix_engine.specs import ColumnSpec, LoadMode, TableSpec, TargetSpec
from ematix_engine.types import BigInt, Double, String, Text, TimestampTZ
from ematix_engine.write import ArrowRows, Checkpoint, apply_rows
from ematix_engine.write.direct import direct_append
from tests.fixtures.postgres import PgSchema


def _target(schema: str, *columns: ColumnSpec) -> TargetSpec:
    declared = columns or (
        ColumnSpec(name="id", type=BigInt),
        ColumnSpec(name="name", type=Text, nullable=True),
        ColumnSpec(name="amount", type=Double, nullable=True),
        ColumnSpec(name="at", type=TimestampTZ, nullable=True),
    )
    return TargetSpec(table=TableSpec(schema=schema, name="events", columns=declared))


def _batch(ids: range, **extra: pa.Array) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "name": pa.array([f"n{i}" for i in ids]),
            "amount": pa.array([i * 0.1 for i in ids], pa.float64()),
            "at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            **extra,
        }
    )


@pytest.fixture(params=["postgres", "duckdb"])
def pg(
    request: pytest.FixtureRequest, pg_schema: PgSchema, tmp_path: Path
) -> PostgresConnection | DuckDBConnection:
    """The target database (named ``pg`` for history: DuckDB appends directly too)."""
    if request.param == "duckdb":
        return DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    return PostgresConnection(name="wh", url=pg_schema.dsn)


@pytest.fixture
def preparations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the prepared writes: each stages its batch once (a spy; nothing is replaced).

    PostgreSQL's prepared path stages into an in-process DuckDB session, DuckDB's into a
    temporary table of the target; both through ``DuckDBBackend.stage_arrow``.
    """
    staged: list[int] = []
    real = DuckDBBackend.stage_arrow

    def counted(self: DuckDBBackend, *args, **kwargs) -> int:
        staged.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DuckDBBackend, "stage_arrow", counted)
    return staged


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[PgSchema]:
    """A PostgreSQL test schema, or for DuckDB a schema name in its file."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("pg") == "duckdb":
        yield PgSchema(dsn="", name=f"direct_{uuid.uuid4().hex[:8]}")
        return
    dsn = request.getfixturevalue("pg_dsn")
    schema = PgSchema(dsn=dsn, name=f"ematix_test_{uuid.uuid4().hex}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema.name}"')
    try:
        yield schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema.name}" CASCADE')


def _write(pg: PostgresConnection, target: TargetSpec, table: pa.Table, **options):
    return apply_rows(
        pg,
        target,
        ArrowRows.of(table),
        writer="direct_test",
        batch_id=options.pop("batch_id", uuid.uuid4().hex),
        **options,
    )


def _rows(pg: PostgresConnection, schema: PgSchema, columns: str) -> list[tuple]:
    store = open_backend(pg)
    try:
        with store.query_session() as sql:
            table = sql.table_sql(schema.name, "events")
            return [tuple(r) for r in sql.query(f"SELECT {columns} FROM {table} ORDER BY 1")]
    finally:
        store.close()


def test_matching_batches_go_straight_in_with_the_same_values(
    pg: PostgresConnection, pg_schema: PgSchema, preparations: list[int]
) -> None:
    target = _target(pg_schema.name)
    _write(pg, target, _batch(range(0, 3)), batch_id="first")  # creates the table
    before = datetime.now(UTC)
    checkpoint = Checkpoint(name="direct_test", scope="s.events", value='{"p": 5}')
    result = _write(pg, target, _batch(range(3, 6)), batch_id="second", checkpoint=checkpoint)

    assert not preparations, "a write took the prepared path"
    assert result.counts.inserted == 3 and result.checkpoint == '{"p": 5}'
    rows = _rows(pg, pg_schema, 'id, name, amount, "at", "_batch_id", "_loaded_at"')
    assert [r[:3] for r in rows] == [(i, f"n{i}", i * 0.1) for i in range(6)]
    assert {r[3] for r in rows} == {datetime(2026, 1, 1, tzinfo=UTC)}
    assert [r[4] for r in rows] == ["first"] * 3 + ["second"] * 3
    loaded = {r[5] for r in rows[3:]}
    assert len(loaded) == 1 and before <= loaded.pop() <= datetime.now(UTC)
    store = open_backend(pg)
    try:
        assert store.read_checkpoint("direct_test", "s.events") == '{"p": 5}'
    finally:
        store.close()


def test_new_fields_renamed_and_missing_columns(
    pg: PostgresConnection, pg_schema: PgSchema, preparations: list[int]
) -> None:
    """A new field becomes a column, a name matched case-insensitively, a missing one NULL."""
    target = _target(pg_schema.name)
    _write(pg, target, _batch(range(0, 2)))
    later = pa.table(
        {
            "ID": pa.array([7], pa.int64()),
            "extra": pa.array(["x"]),
            "name": pa.array(["seven"]).dictionary_encode(),
        }
    )
    assert direct_append("direct_test", target, later.schema) is not None
    _write(pg, target, later)

    assert not preparations
    assert _rows(pg, pg_schema, 'id, name, amount, "extra"')[-1] == (7, "seven", None, "x")


def test_a_bounded_string_is_still_checked(
    pg: PostgresConnection, pg_schema: PgSchema, preparations: list[int]
) -> None:
    target = _target(
        pg_schema.name, ColumnSpec(name="id", type=BigInt), ColumnSpec(name="code", type=String[4])
    )
    _write(pg, target, pa.table({"id": pa.array([1], pa.int64()), "code": ["ok"]}))
    too_long = pa.table({"id": pa.array([2, 3], pa.int64()), "code": ["fine", "too long"]})
    assert direct_append("direct_test", target, too_long.schema) is None

    with pytest.raises(BadValueError) as caught:
        _write(pg, target, too_long)
    assert caught.value.column == "code" and "String[4]" in str(caught.value)
    assert _rows(pg, pg_schema, "id, code") == [(1, "ok")]


def test_normalizers_and_other_types_take_the_prepared_path(
    pg: PostgresConnection, pg_schema: PgSchema, preparations: list[int]
) -> None:
    target = _target(
        pg_schema.name,
        ColumnSpec(name="id", type=BigInt),
        ColumnSpec(name="name", type=Text, normalizers=(lower(),)),
    )
    _write(pg, target, pa.table({"id": pa.array([1], pa.int64()), "name": ["ABC"]}))
    _write(pg, target, pa.table({"id": pa.array([2], pa.int32()), "name": ["DeF"]}))

    assert len(preparations) == 2
    assert _rows(pg, pg_schema, "id, name") == [(1, "abc"), (2, "def")]
    typed = pa.schema([pa.field("id", pa.int32()), pa.field("name", pa.string())])
    assert direct_append("direct_test", _target(pg_schema.name), typed) is None


def test_only_appends_go_direct(pg_schema: PgSchema) -> None:
    schema = _batch(range(1)).schema
    for mode in (LoadMode.MERGE, LoadMode.SCD2, LoadMode.REPLACE):
        declared = _target(pg_schema.name).table
        spec = TargetSpec(table=declared, mode=mode, keys=("id",))
        assert direct_append("direct_test", spec, schema) is None


def _table_definition(pg: PostgresConnection | DuckDBConnection, schema: str) -> list[tuple]:
    """Each column's name, type and nullability, in order; PostgreSQL: and whether its value
    lives in the catalog (a column added after the rows with the batch's value)."""
    store = open_backend(pg)
    try:
        with store.query_session() as sql:
            if isinstance(pg, DuckDBConnection):
                return [
                    tuple(r)
                    for r in sql.query(
                        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                        f"WHERE table_schema = '{schema}' AND table_name = 'events' "
                        "ORDER BY ordinal_position"
                    )
                ]
            return [
                tuple(r)
                for r in sql.query(
                    "SELECT attname, format_type(atttypid, atttypmod), attnotnull, atthasmissing "
                    f"FROM pg_attribute WHERE attrelid = '\"{schema}\".events'::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
                )
            ]
    finally:
        store.close()


def test_a_first_load_creates_the_table_the_prepared_path_would(
    pg: PostgresConnection | DuckDBConnection,
    pg_schema: PgSchema,
    preparations: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same columns, types, NOT NULLs and (PostgreSQL) constants kept in the catalog."""
    target = _target(pg_schema.name)
    _write(pg, target, _batch(range(0, 3)), batch_id="first")
    assert not preparations
    direct = _table_definition(pg, pg_schema.name)
    rows = _rows(pg, pg_schema, 'id, "_batch_id", "_loaded_at"')

    store = open_backend(pg)
    try:
        with store.transaction():
            store.execute(f"DROP TABLE {store.table_sql(pg_schema.name, 'events')}")
    finally:
        store.close()
    monkeypatch.setattr("ematix_engine.write.apply.direct_append", lambda *_: None)
    _write(pg, target, _batch(range(0, 3)), batch_id="first")
    assert len(preparations) == 1
    assert _table_definition(pg, pg_schema.name) == direct
    assert [r[:2] for r in _rows(pg, pg_schema, 'id, "_batch_id"')] == [r[:2] for r in rows]
    assert len({r[2] for r in rows}) == 1


def test_a_batch_with_a_null_in_a_not_null_column_is_refused_by_the_prepared_path(
    pg: PostgresConnection | DuckDBConnection, pg_schema: PgSchema, preparations: list[int]
) -> None:
    declared = _target(
        pg_schema.name, ColumnSpec(name="id", type=BigInt), ColumnSpec(name="name", type=Text)
    )
    target = TargetSpec(table=declared.table, keys=("id",))  # an append naming its key
    good = pa.table({"id": pa.array([1], pa.int64()), "name": ["a"]})
    bad = pa.table({"id": pa.array([2, 3], pa.int64()), "name": ["b", None]})
    _write(pg, target, good)
    assert not preparations
    with pytest.raises(BadValueError) as refused:
        _write(pg, target, bad)
    assert len(preparations) == 1, "the batch with a NULL was not handed to the prepared path"
    assert (refused.value.column, refused.value.key) == ("name", {"id": "3"})
    assert "declare the column nullable (T | None)" in str(refused.value)
    assert _rows(pg, pg_schema, "id, name") == [(1, "a")]
    _write(pg, target, pa.table({"id": pa.array([4], pa.int64()), "name": ["d"]}))
    assert len(preparations) == 1  # batches without NULLs go straight in again


def test_a_null_key_of_an_append_is_refused_naming_the_column(
    pg: PostgresConnection | DuckDBConnection, pg_schema: PgSchema
) -> None:
    """Append matches on nothing, so nothing refused a NULL key before the database did."""
    declared = _target(
        pg_schema.name, ColumnSpec(name="id", type=BigInt), ColumnSpec(name="name", type=Text)
    )
    target = TargetSpec(table=declared.table, keys=("id",))
    with pytest.raises(BadValueError) as refused:
        _write(pg, target, pa.table({"id": pa.array([1, None], pa.int64()), "name": ["a", "b"]}))
    assert (refused.value.column, refused.value.key) == ("id", {"id": None})
