"""Incremental watermarks, stored in the target database itself.

The watermark of ``(pipeline, target)`` lives in ``ematix.watermarks`` (``_ematix_watermarks``
on SQLite) and is written inside the load's own transaction, so it advances exactly when the
rows it covers commit — a failed load leaves both as they were. Values are kept as text and cast
back to the incremental column's type when used; the next load reads rows strictly greater.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ematix_engine.backends.base import SqlBackend
from ematix_engine.schema.ddl import TableColumn, ensure_table
from ematix_engine.schema.types import Text, TimestampTZ

__all__ = ["WATERMARK_SCHEMA", "read_watermark", "sentinel_for", "write_watermark"]

WATERMARK_SCHEMA = "ematix"
_TABLE = "watermarks"
_SQLITE_TABLE = "_ematix_watermarks"

_COLUMNS = (
    TableColumn("pipeline", Text, nullable=False),
    TableColumn("target", Text, nullable=False),
    TableColumn("value", Text, nullable=True),
    TableColumn("updated_at", TimestampTZ, nullable=False),
)

#: Value used before the first load: below every real value of the family.
_SENTINELS = {
    "int": "-9007199254740991",  # -(2**53 - 1): room for `$watermark - n`
    "decimal": "-99999999999999999999999999999999999999",
    "float": "-1e308",
    "text": "",
    "json": "",
    "date": "0001-01-01",
    "timestamp": "0001-01-01 00:00:00",
    "timestamptz": "0001-01-01 00:00:00+00",
    "bool": "false",
    "bytes": "",
}


def sentinel_for(hash_family: str) -> str:
    """The 'before everything' watermark for a column type family."""
    return _SENTINELS[hash_family]


def _table(backend: SqlBackend) -> str:
    if backend.SUPPORTS_SCHEMAS:
        return backend.table_sql(WATERMARK_SCHEMA, _TABLE)
    return backend.quote(_SQLITE_TABLE)


def _ensure(backend: SqlBackend) -> None:
    if backend.SUPPORTS_SCHEMAS:
        ensure_table(
            backend, WATERMARK_SCHEMA, _TABLE, _COLUMNS, primary_key=("pipeline", "target")
        )
    else:
        ensure_table(backend, "", _SQLITE_TABLE, _COLUMNS, primary_key=("pipeline", "target"))


def read_watermark(backend: SqlBackend, pipeline: str, target: str) -> str | None:
    """The stored watermark text, or None before the first incremental load."""
    _ensure(backend)
    p = backend.param_placeholder
    rows = backend.query(
        f"SELECT {backend.quote('value')} FROM {_table(backend)} "
        f"WHERE {backend.quote('pipeline')} = {p(0)} AND {backend.quote('target')} = {p(1)}",
        (pipeline, target),
    )
    return rows[0][0] if rows else None


def write_watermark(backend: SqlBackend, pipeline: str, target: str, value: str) -> None:
    """Store the watermark (call inside the load transaction)."""
    _ensure(backend)
    p = backend.param_placeholder
    q = backend.quote
    backend.execute(
        f"DELETE FROM {_table(backend)} WHERE {q('pipeline')} = {p(0)} AND {q('target')} = {p(1)}",
        (pipeline, target),
    )
    now: object = datetime.now(UTC)
    if backend.dialect == "sqlite":
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    backend.execute(
        f"INSERT INTO {_table(backend)} ({q('pipeline')}, {q('target')}, {q('value')}, "
        f"{q('updated_at')}) VALUES ({p(0)}, {p(1)}, {p(2)}, {p(3)})",
        (pipeline, target, value, now),
    )
