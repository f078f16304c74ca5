"""Checkpoints of SQL backends, stored in the target database itself.

A checkpoint is a named text value committed in the same transaction as the rows it covers: a
batch pipeline's watermark today, a stream's source offsets later. Checkpoint ``(name, scope)``
— e.g. ``(pipeline, schema.table)`` — lives in ``ematix.watermarks`` (``_ematix_watermarks``
on SQLite, which has no schemas; the table keeps its first name so existing targets keep their
watermarks). A failed write leaves rows and checkpoint as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ematix_engine.schema.ddl import TableColumn, ensure_table
from ematix_engine.schema.types import Text, TimestampTZ

if TYPE_CHECKING:
    from ematix_engine.backends.base import SqlBackend

__all__ = ["CHECKPOINT_SCHEMA", "ensure_checkpoint_table", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_SCHEMA = "ematix"
_TABLE = "watermarks"
_SQLITE_TABLE = "_ematix_watermarks"

_COLUMNS = (
    TableColumn("pipeline", Text, nullable=False),
    TableColumn("target", Text, nullable=False),
    TableColumn("value", Text, nullable=True),
    TableColumn("updated_at", TimestampTZ, nullable=False),
)


def _table(backend: SqlBackend) -> str:
    if backend.SUPPORTS_SCHEMAS:
        return backend.table_sql(CHECKPOINT_SCHEMA, _TABLE)
    return backend.quote(_SQLITE_TABLE)


def ensure_checkpoint_table(backend: SqlBackend) -> None:
    """Create the checkpoint table if it is missing (before a write's transaction)."""
    _ensure(backend)


def _ensure(backend: SqlBackend) -> None:
    if backend.SUPPORTS_SCHEMAS:
        ensure_table(
            backend, CHECKPOINT_SCHEMA, _TABLE, _COLUMNS, primary_key=("pipeline", "target")
        )
    else:
        ensure_table(backend, "", _SQLITE_TABLE, _COLUMNS, primary_key=("pipeline", "target"))


def read_checkpoint(backend: SqlBackend, pipeline: str, target: str) -> str | None:
    """The stored checkpoint text, or None before the first write that commits one."""
    _ensure(backend)
    p = backend.param_placeholder
    rows = backend.query(
        f"SELECT {backend.quote('value')} FROM {_table(backend)} "
        f"WHERE {backend.quote('pipeline')} = {p(0)} AND {backend.quote('target')} = {p(1)}",
        (pipeline, target),
    )
    return rows[0][0] if rows else None


def write_checkpoint(backend: SqlBackend, pipeline: str, target: str, value: str) -> None:
    """Store a checkpoint (call inside the write's transaction)."""
    _ensure(backend)
    p = backend.param_placeholder
    q = backend.quote
    backend.execute(
        f"DELETE FROM {_table(backend)} WHERE {q('pipeline')} = {p(0)} AND {q('target')} = {p(1)}",
        (pipeline, target),
    )
    now = backend.timestamp_param(datetime.now(UTC))
    backend.execute(
        f"INSERT INTO {_table(backend)} ({q('pipeline')}, {q('target')}, {q('value')}, "
        f"{q('updated_at')}) VALUES ({p(0)}, {p(1)}, {p(2)}, {p(3)})",
        (pipeline, target, value, now),
    )
