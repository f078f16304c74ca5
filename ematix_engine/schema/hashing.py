"""``row_hash``: one SHA-256 per row, byte-identical on every backend.

The hash input is the compare columns in declared order, each rendered as *canonical text*,
joined by a NUL byte (which no text value can contain). NULL renders as the single byte 0xFF,
which never occurs in UTF-8, so NULL and every string differ. The digest is lowercase hex.

Canonical text per hash family (``ColumnType.hash_family``):

=============  ======================================================================
int            decimal digits (``-12``)
text / json    the text itself (JSON as the backend stores it)
bool           ``true`` / ``false``
decimal        plain decimal with the column's scale (``10.50``)
float          C ``%.15g`` (``1.1``, ``1e+20``), ``Infinity``/``-Infinity``/``NaN``
date           ``YYYY-MM-DD``
timestamp      ``YYYY-MM-DD HH:MM:SS.ffffff``
timestamptz    the same, in UTC
bytes          lowercase hex
=============  ======================================================================

PostgreSQL renders doubles with ``%.15g`` only under ``extra_float_digits = 0``; the PostgreSQL
backend sets it for the load transaction. SQLite has no SHA-256, so the SQLite backend registers
a deterministic, variadic ``ematix_row_hash`` function over the canonical texts (the one per-row Python call in the engine; SQLite
evaluates everything row by row anyway).

The expressions are built as SQL text in each dialect from quoted identifiers and parsed back
with sqlglot, so they compose with the rest of a plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlglot
from sqlglot import exp

__all__ = [
    "NULL_MARKER",
    "SEPARATOR",
    "canonical_text_sql",
    "python_row_hash",
    "row_hash_sql",
    "sqlite_row_hash",
]

SEPARATOR = b"\x00"
NULL_MARKER = b"\xff"


def canonical_text_sql(column_sql: str, family: str, dialect: str, scale: int = 0) -> str:
    """SQL text rendering ``column_sql`` as canonical text (NULL stays NULL).

    Args:
        column_sql: an already-quoted column reference in ``dialect``.
        family: the column type's hash family.
        dialect: ``postgres``, ``duckdb`` or ``sqlite``.
        scale: decimal scale for the ``decimal`` family.
    """
    c = column_sql
    if family in ("text", "json"):
        return f"CAST({c} AS TEXT)"
    if family == "int":
        return f"CAST({c} AS TEXT)"
    if family == "bool":
        return f"CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN 'true' ELSE 'false' END"
    if family == "decimal":
        if dialect == "sqlite":  # printf and hex turn NULL into '' on SQLite
            return f"CASE WHEN {c} IS NULL THEN NULL ELSE printf('%.{scale}f', {c}) END"
        return f"CAST({c} AS TEXT)"
    if family == "float":
        # PostgreSQL and DuckDB order NaN as one value equal to itself, so ``c <> c`` cannot
        # find it there; SQLite stores NaN as NULL.
        is_nan = {"postgres": f"{c} = 'NaN'::float8", "duckdb": f"isnan({c})"}.get(
            dialect, f"{c} <> {c}"
        )
        special = f"CASE WHEN {c} IS NULL THEN NULL WHEN {is_nan} THEN 'NaN' "
        if dialect == "postgres":
            return f"{special}WHEN {c} = 'Infinity'::float8 THEN 'Infinity' WHEN {c} = '-Infinity'::float8 THEN '-Infinity' ELSE CAST({c} AS TEXT) END"
        if dialect == "duckdb":
            return f"{special}WHEN isinf({c}) AND {c} > 0 THEN 'Infinity' WHEN isinf({c}) THEN '-Infinity' ELSE printf('%.15g', {c}) END"
        return f"{special}WHEN {c} > 1.7976931348623157e308 THEN 'Infinity' WHEN {c} < -1.7976931348623157e308 THEN '-Infinity' ELSE printf('%.15g', {c}) END"
    if family == "date":
        if dialect == "postgres":
            return f"to_char({c}, 'YYYY-MM-DD')"
        if dialect == "duckdb":
            return f"strftime(CAST({c} AS DATE), '%Y-%m-%d')"
        return f"CAST({c} AS TEXT)"
    if family in ("timestamp", "timestamptz"):
        if dialect == "postgres":
            value = f"({c} AT TIME ZONE 'UTC')" if family == "timestamptz" else c
            return f"to_char({value}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if dialect == "duckdb":
            value = f"timezone('UTC', {c})" if family == "timestamptz" else c
            return f"strftime({value}, '%Y-%m-%d %H:%M:%S.%f')"
        return f"CAST({c} AS TEXT)"  # the SQLite backend stores canonical text
    if family == "bytes":
        if dialect == "postgres":
            return f"encode({c}, 'hex')"
        return f"CASE WHEN {c} IS NULL THEN NULL ELSE lower(hex({c})) END"
    raise ValueError(f"unknown hash family {family!r}")


def row_hash_sql(columns: Sequence[tuple[str, str, int]], dialect: str) -> str:
    """SQL text computing ``row_hash`` over ``columns`` in ``dialect``.

    Args:
        columns: ``(quoted column sql, hash family, decimal scale)`` in declared order.
        dialect: ``postgres``, ``duckdb`` or ``sqlite``.
    """
    if not columns:
        columns = []
    parts: list[str] = []
    for column_sql, family, scale in columns:
        text = canonical_text_sql(column_sql, family, dialect, scale)
        if dialect == "postgres":
            parts.append(f"COALESCE(convert_to({text}, 'UTF8'), '\\xff'::bytea)")
        elif dialect == "duckdb":
            parts.append(f"COALESCE(encode({text}), '\\xFF'::BLOB)")
        else:
            parts.append(text)
    if dialect == "postgres":
        sep = "'\\x00'::bytea"
        joined = f" || {sep} || ".join(parts) if parts else "''::bytea"
        return f"encode(sha256({joined}), 'hex')"
    if dialect == "duckdb":
        sep = "'\\x00'::BLOB"
        joined = f" || {sep} || ".join(parts) if parts else "''::BLOB"
        return f"sha256({joined})"
    return f"ematix_row_hash({', '.join(parts)})"


def python_row_hash(values: Sequence[str | None]) -> str:
    """Reference implementation over canonical texts (tests compare backends against it)."""
    digest = hashlib.sha256()
    for index, value in enumerate(values):
        if index:
            digest.update(SEPARATOR)
        digest.update(NULL_MARKER if value is None else value.encode("utf-8"))
    return digest.hexdigest()


def sqlite_row_hash(*values: object) -> str:
    """The variadic ``ematix_row_hash`` function the SQLite backend registers."""
    return python_row_hash([None if v is None else str(v) for v in values])


def parse_check(sql: str, dialect: str) -> exp.Expression:
    """Parse generated SQL with sqlglot (used by tests to prove the text is well-formed)."""
    return sqlglot.parse_one(sql, read=dialect)
