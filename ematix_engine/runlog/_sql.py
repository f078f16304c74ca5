"""Constant SQL text shared by the SQL run-log backends.

The tables are fixed, so their statements are fixed too: the text below is built once at import
time from constant column names (double-quoted), and every value travels as a bind parameter.
Only the Postgres backend has a variable identifier (its schema), which it composes with
:mod:`psycopg.sql`. ``placeholder`` is ``?`` for SQLite/DuckDB and ``%s`` for psycopg.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ematix_engine.runlog.base import ROW_COUNT_FIELDS, RunRecord, RunStatus

__all__ = [
    "COLUMNS",
    "SELECT_COLUMNS",
    "lease_sql",
    "record_row",
    "select_sql",
    "upsert_sql",
]

COLUMNS: tuple[str, ...] = (
    "run_id",
    "pipeline",
    "status",
    "attempt",
    *ROW_COUNT_FIELDS,
    "watermark",
    "error",
    "reason",
    "metrics",
    "started_at",
    "finished_at",
)
"""Stored columns of a run record, in bind order (``seq`` is assigned by the store)."""

SELECT_COLUMNS: tuple[str, ...] = (*COLUMNS, "seq")
"""Columns read back: the record columns, then ``seq``."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upsert_sql(table: str, placeholder: str) -> str:
    """Return ``INSERT … ON CONFLICT ("run_id") DO UPDATE`` text for ``table`` (pre-quoted)."""
    columns = ", ".join(_q(c) for c in COLUMNS)
    values = ", ".join(placeholder for _ in COLUMNS)
    updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in COLUMNS if c != "run_id")
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({values}) "
        f'ON CONFLICT ("run_id") DO UPDATE SET {updates}'
    )


def select_sql(
    table: str,
    placeholder: str,
    *,
    pipeline: bool,
    statuses: Sequence[RunStatus] | None,
    before: bool,
) -> str:
    """Return the page query: newest first, with the filters switched on as placeholders.

    Bind, in order: ``pipeline`` (if set), each status (if set), then for ``before`` the
    cursor's ``started_at`` twice and its ``seq``, and finally the limit.
    """
    p = placeholder
    where: list[str] = []
    if pipeline:
        where.append(f'"pipeline" = {p}')
    if statuses:
        where.append('"status" IN (' + ", ".join(p for _ in statuses) + ")")
    if before:
        where.append(f'("started_at" < {p} OR ("started_at" = {p} AND "seq" < {p}))')
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    columns = ", ".join(_q(c) for c in SELECT_COLUMNS)
    return f'SELECT {columns} FROM {table}{clause} ORDER BY "started_at" DESC, "seq" DESC LIMIT {p}'


def record_row(
    record: RunRecord,
    *,
    metrics: Callable[[dict], Any],
    timestamp: Callable[[Any], Any] = lambda value: value,
) -> list[Any]:
    """The values of ``upsert_sql``'s placeholders for ``record``, in column order.

    Args:
        record: The run record.
        metrics: How the backend stores the metrics dict (JSON text, ``Jsonb``, …).
        timestamp: How the backend stores an aware datetime (default: as is).
    """
    return [
        record.run_id,
        record.pipeline,
        record.status.value,
        record.attempt,
        *(getattr(record, name) for name in ROW_COUNT_FIELDS),
        record.watermark,
        record.error,
        record.reason,
        metrics(record.metrics),
        timestamp(record.started_at),
        timestamp(record.finished_at) if record.finished_at is not None else None,
    ]


def lease_sql(leases_table: str) -> tuple[str, str, str]:
    """Lease statements with ``?`` parameters: claim by update, claim by insert, release.

    The update takes a lease the caller already holds or that has expired; the insert takes a
    lease nobody holds. Run both in one write transaction (SQLite, DuckDB).
    """
    claim_update = (
        f'UPDATE {leases_table} SET "owner" = ?, "expires_at" = ? '
        'WHERE "pipeline" = ? AND ("owner" = ? OR "expires_at" <= ?)'
    )
    claim_insert = (
        f'INSERT OR IGNORE INTO {leases_table} ("pipeline", "owner", "expires_at") VALUES (?, ?, ?)'
    )
    release = f'DELETE FROM {leases_table} WHERE "pipeline" = ? AND "owner" = ?'
    return claim_update, claim_insert, release
