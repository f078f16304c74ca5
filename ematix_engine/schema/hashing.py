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

The SQL of each dialect is data on its backend class (``HASH_TEXT``, ``HASH_PART``,
``HASH_JOIN``, ``HASH_DIGEST`` in ``ematix_engine/backends/<system>.py``); the functions here
look the class up by dialect name. Expressions are built as SQL text from quoted identifiers.
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

    The SQL is data on the backend class of ``dialect`` (``HASH_TEXT``).

    Args:
        column_sql: an already-quoted column reference in ``dialect``.
        family: the column type's hash family.
        dialect: ``postgres``, ``duckdb`` or ``sqlite``.
        scale: decimal scale for the ``decimal`` family.

    Raises:
        ValueError: ``family`` is not a hash family.
    """
    from ematix_engine.backends import backend_class_for_dialect

    return backend_class_for_dialect(dialect).canonical_text_sql(column_sql, family, scale)


def row_hash_sql(columns: Sequence[tuple[str, str, int]], dialect: str) -> str:
    """SQL text computing ``row_hash`` over ``columns`` in ``dialect``.

    Args:
        columns: ``(quoted column sql, hash family, decimal scale)`` in declared order.
        dialect: ``postgres``, ``duckdb`` or ``sqlite``.
    """
    from ematix_engine.backends import backend_class_for_dialect

    return backend_class_for_dialect(dialect).row_hash_sql(columns)


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
