r"""``row_hash``: one MD5 per row, byte-identical on every backend.

The hash input is the compare columns in declared order, each one *part*, concatenated with
nothing between them. A part is the column's *canonical text* (UTF-8) prefixed by its length
in bytes and a colon (``5:hello``); NULL is the single byte ``N``. A part starts with a digit
or with ``N``, and its length says where it ends, so the input decodes in exactly one way:
``('a\0', 'b')`` and ``('a', '\0b')`` differ, NULL differs from every value (the empty string
is ``0:``), and no text can imitate a column boundary. The digest is MD5's 128 bits as 32
lowercase hex characters, as dbt's ``dbt_scd_id``: the hash names a version, it is never what
decides a change, and it is not a security boundary, so a 128-bit digest is enough; it is
cheaper to compute and, what counts more, to store (DuckDB compresses each distinct string it
writes) than SHA-256's 64 characters.

Canonical text per hash family (``ColumnType.hash_family``):

=============  ======================================================================
int            decimal digits (``-12``)
text / json    the text itself (JSON as the backend stores it)
bool           ``true`` / ``false``
decimal        plain decimal with the column's scale (``10.50``)
float          the IEEE-754 binary64 bits, big-endian, as 16 lowercase hex digits
               (``1.5`` → ``3ff8000000000000``); ``-0.0`` as ``0.0``, every NaN as
               ``7ff8000000000000``
date           ``YYYY-MM-DD``
timestamp      ``YYYY-MM-DD HH:MM:SS.ffffff``
timestamptz    the same, in UTC
bytes          lowercase hex
=============  ======================================================================

Doubles hash by their bits, so two distinct doubles never share a text (``0.3`` and
``0.1 + 0.2`` differ in the last bit) and no backend's float-to-text rendering is involved
(PostgreSQL's is not always the shortest round-trip form). The two exceptions follow the
databases' own equality, under which change detection compares values: ``-0.0 = 0.0`` and
every NaN equals every NaN. SQLite stores NaN as NULL, so there a NaN hashes as NULL.

Format history: the digest was SHA-256 (64 hex characters, in a ``VARCHAR(64)`` column) over
the same parts until 2026-12; before that, parts were joined by a NUL byte, NULL was the byte
``0xFF`` and doubles rendered as ``%.15g``. Tables written then keep their old hashes (and
their wider column); that is harmless, because SCD2 detects changes by comparing the compare
columns' values, never by the stored hash, and a version's hash is rewritten only when its
values are.

SQLite has no MD5, so the SQLite backend registers a deterministic, variadic
``ematix_row_hash`` function over the canonical texts (doubles are passed as ``REAL`` and
encoded there); it is the one per-row Python call in the engine, and SQLite evaluates
everything row by row anyway.

The SQL of each dialect is data on its backend class (``HASH_TEXT``, ``HASH_PART``,
``HASH_JOIN``, ``HASH_DIGEST`` in ``ematix_engine/backends/<system>.py``); the functions here
look the class up by dialect name. Expressions are built as SQL text from quoted identifiers.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence

import sqlglot
from sqlglot import exp

__all__ = [
    "NAN_BITS",
    "NULL_PART",
    "ZERO_BITS",
    "canonical_text_sql",
    "float_canonical_text",
    "python_row_hash",
    "row_hash_sql",
    "sqlite_row_hash",
]

#: The part a NULL hashes as (a value's part always starts with a digit).
NULL_PART = b"N"
#: Canonical text of every NaN (the quiet NaN's bits).
NAN_BITS = "7ff8000000000000"
#: Canonical text of ``0.0`` and ``-0.0``.
ZERO_BITS = "0000000000000000"


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


def float_canonical_text(value: float) -> str:
    """Canonical text of a double: its IEEE-754 bits as 16 hex digits (``-0.0`` as ``0.0``)."""
    if math.isnan(value):
        return NAN_BITS
    if value == 0.0:
        return ZERO_BITS
    return struct.pack(">d", value).hex()


def python_row_hash(values: Sequence[str | None]) -> str:
    """Reference implementation over canonical texts (tests compare backends against it)."""
    digest = hashlib.md5(usedforsecurity=False)
    for value in values:
        if value is None:
            digest.update(NULL_PART)
        else:
            data = value.encode("utf-8")
            digest.update(b"%d:" % len(data))
            digest.update(data)
    return digest.hexdigest()


def sqlite_row_hash(*values: object) -> str:
    """The variadic ``ematix_row_hash`` function the SQLite backend registers.

    Doubles arrive as ``REAL`` (Python ``float``) and are encoded here; every other family
    arrives as its canonical text (integers as text already, see the backend's ``HASH_TEXT``).
    """
    return python_row_hash(
        [
            None if v is None else float_canonical_text(v) if isinstance(v, float) else str(v)
            for v in values
        ]
    )


def parse_check(sql: str, dialect: str) -> exp.Expression:
    """Parse generated SQL with sqlglot (used by tests to prove the text is well-formed)."""
    return sqlglot.parse_one(sql, read=dialect)
