"""A conformance suite for table stores (backends).

Every bundled backend passes these checks in the test suite; a new one (MySQL, file targets, …)
joins by passing them too::

    import pytest
    from ematix_engine.backends.conformance import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_store(check):
        check(MyConnection(name="t", ...), schema="conformance")

Each check receives a typed connection to an empty store and a schema name to write in, writes
through the write core (:func:`ematix_engine.write.apply_rows`) and reads back through the
store's own protocol methods, and raises :class:`AssertionError` naming what differed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ematix_engine.backends import open_backend
from ematix_engine.backends.store import TableStore
from ematix_engine.errors import DuplicateKeyError
from ematix_engine.schema.types import (
    BigInt,
    Boolean,
    ColumnType,
    Date,
    Double,
    Numeric,
    Text,
    TimestampTZ,
)
from ematix_engine.specs import ColumnSpec, LoadMode, TableSpec, TargetSpec

__all__ = [
    "CHECKS",
    "check_checkpoint_from_column",
    "check_dry_run_commits_nothing",
    "check_failed_write_commits_nothing",
    "check_flags_are_data",
    "check_modes",
    "check_query_rows_same_database",
    "check_schema_drift_adds_columns",
    "check_values_round_trip",
    "check_write_commits_rows_with_checkpoint",
]

#: Identifiers that must survive quoting on every backend.
KEY, VALUE = "id key", 'va"lue'


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _target(
    schema: str,
    name: str,
    mode: LoadMode = LoadMode.MERGE,
    columns: Sequence[tuple[str, type[ColumnType]]] = ((VALUE, Text),),
) -> TargetSpec:
    declared = (
        ColumnSpec(name=KEY, type=BigInt, primary_key=True),
        *(ColumnSpec(name=n, type=t, nullable=True) for n, t in columns),
    )
    table = TableSpec(schema=schema, name=name, columns=declared)
    keys = (KEY,) if mode in (LoadMode.MERGE, LoadMode.SCD2) else ()
    return TargetSpec(table=table, mode=mode, keys=keys)


def _rows(ids: Sequence[int], values: Sequence[str | None], **extra: Sequence[Any]) -> Any:
    from ematix_engine.write import ArrowRows

    return ArrowRows.of(pa.table({KEY: ids, VALUE: values, **extra}))


def _write(connection: Any, target: TargetSpec, rows: Any, **options: Any) -> Any:
    from ematix_engine.write import apply_rows

    options.setdefault("batch_id", uuid.uuid4().hex)  # every write has its own id
    return apply_rows(connection, target, rows, writer="conformance", **options)


@contextlib.contextmanager
def _store(connection: Any) -> Iterator[Any]:
    store = open_backend(connection)
    try:
        yield store
    finally:
        store.close()


def _select(connection: Any, target: TargetSpec, columns: Sequence[str]) -> list[tuple]:
    """Rows of the target (ordered), read through the store's query session."""
    with _store(connection) as store, store.query_session() as session:
        table = session.table_sql(target.table.schema, target.table.name)
        cols = ", ".join(session.quote(c) for c in columns)
        return [tuple(r) for r in session.query(f"SELECT {cols} FROM {table} ORDER BY 1, 2")]


def _checkpoint(connection: Any, target: TargetSpec) -> str | None:
    with _store(connection) as store:
        return store.read_checkpoint("conformance", target.label)


# --------------------------------------------------------------------------------- checks
def check_flags_are_data(connection: Any, schema: str) -> None:
    """The store implements the protocol and describes itself with flags, not by name."""
    with _store(connection) as store:
        _expect(isinstance(store, TableStore), f"{type(store).__name__} is not a TableStore")
        cls = type(store)
        _expect(bool(cls.name) and bool(cls.dialect), "name and dialect must be set")
        for flag in ("SUPPORTS_SCHEMAS", "PREPARES_IN_PROCESS", "RUNS_SQL"):
            _expect(isinstance(getattr(cls, flag), bool), f"{flag} must be a bool")
        if cls.PREPARES_IN_PROCESS:
            from ematix_engine.backends.base import SqlBackend

            _expect(
                cls.copy_arrow is not SqlBackend.copy_arrow,
                "PREPARES_IN_PROCESS needs copy_arrow (prepared rows arrive as Arrow)",
            )


def check_write_commits_rows_with_checkpoint(connection: Any, schema: str) -> None:
    """A write creates the table, commits its rows and its checkpoint together."""
    from ematix_engine.write import Checkpoint

    target = _target(schema, "committed")
    checkpoint = Checkpoint(name="conformance", scope=target.label, value="p0:42")
    result = _write(connection, target, _rows([1, 2], ["a", None]), checkpoint=checkpoint)
    _expect(result.counts.inserted == 2, f"inserted {result.counts.inserted}, expected 2")
    _expect(result.row_count == 2, f"row_count {result.row_count}, expected 2")
    _expect(result.checkpoint == "p0:42", f"checkpoint {result.checkpoint!r}")
    rows = _select(connection, target, [KEY, VALUE])
    _expect(rows == [(1, "a"), (2, None)], f"rows {rows}")
    stored = _checkpoint(connection, target)
    _expect(stored == "p0:42", f"stored checkpoint {stored!r}, expected 'p0:42'")


def check_failed_write_commits_nothing(connection: Any, schema: str) -> None:
    """A write that fails leaves the rows and the checkpoint as they were."""
    from ematix_engine.write import Checkpoint

    target = _target(schema, "atomic")
    first = Checkpoint(name="conformance", scope=target.label, value="1")
    _write(connection, target, _rows([1], ["a"]), checkpoint=first)
    second = Checkpoint(name="conformance", scope=target.label, value="2")
    try:  # two different rows for one key: refused before anything is written
        _write(connection, target, _rows([1, 1, 2], ["x", "y", "z"]), checkpoint=second)
    except DuplicateKeyError:
        pass
    else:
        raise AssertionError("a batch with conflicting duplicate keys was accepted")
    rows = _select(connection, target, [KEY, VALUE])
    _expect(rows == [(1, "a")], f"rows after a failed write: {rows}")
    stored = _checkpoint(connection, target)
    _expect(stored == "1", f"checkpoint after a failed write: {stored!r}")


def check_dry_run_commits_nothing(connection: Any, schema: str) -> None:
    """A dry run reports counts and leaves no table, rows or checkpoint behind."""
    from ematix_engine.write import Checkpoint

    target = _target(schema, "dry")
    checkpoint = Checkpoint(name="conformance", scope=target.label, value="9")
    result = _write(connection, target, _rows([1], ["a"]), checkpoint=checkpoint, dry_run=True)
    _expect(result.counts.inserted == 1, f"dry run inserted {result.counts.inserted}")
    with _store(connection) as store, store.query_session() as session:
        schema_arg = schema if session.SUPPORTS_SCHEMAS else None
        exists = session.table_columns(schema_arg, "dry") is not None
    _expect(not exists, "a dry run left the table behind")
    _expect(_checkpoint(connection, target) is None, "a dry run stored its checkpoint")


def check_modes(connection: Any, schema: str) -> None:
    """Append adds, merge upserts, SCD2 versions, replace replaces: counted by query."""
    append = _target(schema, "appended", LoadMode.APPEND)
    _write(connection, append, _rows([1], ["a"]))
    _write(connection, append, _rows([1], ["a"]))
    _expect(len(_select(connection, append, [KEY, VALUE])) == 2, "append did not add twice")

    merge = _target(schema, "merged", LoadMode.MERGE)
    _write(connection, merge, _rows([1, 2], ["a", "b"]))
    result = _write(connection, merge, _rows([2, 3], ["B", "c"]))
    rows = _select(connection, merge, [KEY, VALUE])
    _expect(rows == [(1, "a"), (2, "B"), (3, "c")], f"merge left {rows}")
    _expect((result.counts.inserted, result.counts.updated) == (1, 1), f"{result.counts}")

    scd2 = _target(schema, "versioned", LoadMode.SCD2)
    _write(connection, scd2, _rows([1, 2], ["a", "b"]))
    result = _write(connection, scd2, _rows([1, 2], ["a", "B"]))
    rows = _select(connection, scd2, [KEY, VALUE])
    _expect(rows == [(1, "a"), (2, "B"), (2, "b")], f"scd2 left {rows}")
    _expect(result.counts.closed == 1, f"scd2 closed {result.counts.closed}, expected 1")

    replace = _target(schema, "replaced", LoadMode.REPLACE)
    _write(connection, replace, _rows([1, 2], ["a", "b"]))
    _write(connection, replace, _rows([3], ["c"]))
    rows = _select(connection, replace, [KEY, VALUE])
    _expect(rows == [(3, "c")], f"replace left {rows}")


def check_schema_drift_adds_columns(connection: Any, schema: str) -> None:
    """A new source column becomes a new nullable column; older rows hold NULL in it."""
    target = _target(schema, "drifting")
    _write(connection, target, _rows([1], ["a"]))
    _write(connection, target, _rows([2], ["b"], extra=["new"]))
    rows = _select(connection, target, [KEY, "extra"])
    _expect(rows == [(1, None), (2, "new")], f"after drift: {rows}")


def check_values_round_trip(connection: Any, schema: str) -> None:
    """Declared types keep their values exactly through a write and an Arrow read."""
    from ematix_engine.write import ArrowRows

    columns = (
        ("n", BigInt),
        ("x", Double),
        ("b", Boolean),
        ("d", Date),
        ("ts", TimestampTZ),
        ("amount", Numeric[12, 2]),
    )
    target = _target(schema, "typed", LoadMode.APPEND, columns)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    data = pa.table(
        {
            KEY: [1],
            "n": [-(2**62)],
            "x": [0.1],
            "b": [True],
            "d": [dt.date(2026, 1, 2)],
            "ts": pa.array([when], pa.timestamp("us", tz="UTC")),
            "amount": pa.array([Decimal("12.34")], pa.decimal128(12, 2)),
        }
    )
    _write(connection, target, ArrowRows.of(data))
    with _store(connection) as store:
        table_sql = store.table_sql(target.table.schema, target.table.name)
        names = ", ".join(store.quote(c) for c, _ in columns)
        back = store.read_arrow(f"SELECT {names} FROM {table_sql}").read_all().to_pylist()[0]
    _expect(back["n"] == -(2**62), f"BigInt came back as {back['n']!r}")
    _expect(back["x"] == 0.1, f"Double came back as {back['x']!r}")
    _expect(back["b"] in (True, 1), f"Boolean came back as {back['b']!r}")
    _expect(str(back["d"]).startswith("2026-01-02"), f"Date came back as {back['d']!r}")
    ts = back["ts"]
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    _expect(ts == when, f"TimestampTZ came back as {back['ts']!r}")
    _expect(Decimal(str(back["amount"])) == Decimal("12.34"), f"Numeric: {back['amount']!r}")


def check_checkpoint_from_column(connection: Any, schema: str) -> None:
    """A column checkpoint commits the column's maximum, and keeps it when no rows come."""
    from ematix_engine.write import Checkpoint

    target = _target(schema, "watermarked", LoadMode.APPEND, ((VALUE, Text), ("seq", BigInt)))
    checkpoint = Checkpoint(
        name="conformance", scope=target.label, column="seq", value_type=BigInt, initial="0"
    )
    _write(connection, target, _rows([1, 2], ["a", "b"], seq=[5, 7]), checkpoint=checkpoint)
    _expect(_checkpoint(connection, target) == "7", "the column's maximum was not committed")
    empty = _rows([], [], seq=pa.array([], pa.int64()))
    result = _write(connection, target, empty, checkpoint=checkpoint)
    _expect(result.checkpoint == "7", f"an empty write moved the checkpoint: {result.checkpoint}")


def check_query_rows_same_database(connection: Any, schema: str) -> None:
    """Rows given as a query on the store itself take the same-database path."""
    from ematix_engine.write import QueryRows, WritePath

    source = _target(schema, "source_rows", LoadMode.APPEND)
    _write(connection, source, _rows([1, 2], ["a", "b"]))
    target = _target(schema, "copied")

    def select(session: Any, checkpoint_sql: str) -> str:
        table = session.table_sql(schema, "source_rows")
        return f"SELECT {session.quote(KEY)}, {session.quote(VALUE)} FROM {table}"

    result = _write(connection, target, QueryRows(select, connection))
    _expect(result.plan.path is WritePath.SAME_DATABASE, f"path {result.plan.path}")
    rows = _select(connection, target, [KEY, VALUE])
    _expect(rows == [(1, "a"), (2, "b")], f"rows {rows}")


CHECKS: tuple[Callable[[Any, str], None], ...] = (
    check_flags_are_data,
    check_write_commits_rows_with_checkpoint,
    check_failed_write_commits_nothing,
    check_dry_run_commits_nothing,
    check_modes,
    check_schema_drift_adds_columns,
    check_values_round_trip,
    check_checkpoint_from_column,
    check_query_rows_same_database,
)
