"""row_hash: the reference implementation and the SQL each backend runs."""

from __future__ import annotations

import hashlib
import sqlite3
import struct

import duckdb
import pytest

from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.schema.hashing import (
    NAN_BITS,
    NULL_PART,
    ZERO_BITS,
    canonical_text_sql,
    float_canonical_text,
    parse_check,
    python_row_hash,
    row_hash_sql,
    sqlite_row_hash,
)

FAMILIES = [
    "int",
    "text",
    "json",
    "bool",
    "decimal",
    "float",
    "date",
    "timestamp",
    "timestamptz",
    "bytes",
]


def test_python_row_hash_bytes() -> None:
    """Each part is ``<UTF-8 byte length>:<text>``; NULL is ``N``; nothing between parts."""
    expected = hashlib.md5("6:héllo".encode() + b"N" + b"0:").hexdigest()
    assert python_row_hash(["héllo", None, ""]) == expected
    assert NULL_PART == b"N"
    assert python_row_hash([]) == hashlib.md5(b"").hexdigest()


def test_null_empty_and_shifted_values_differ() -> None:
    rows = [
        [None],
        [""],
        ["N"],
        [None, None],
        ["", ""],
        ["ab", "c"],
        ["a", "bc"],
        ["a\0", "b"],
        ["a", "\0b"],
        ["1:a", None],
        ["1:a1:b"],
        ["a", "b"],
        ["a", None],
        [None, "a"],
    ]
    assert len({python_row_hash(r) for r in rows}) == len(rows)


def test_float_canonical_text_is_the_bits() -> None:
    assert float_canonical_text(1.5) == "3ff8000000000000"
    assert float_canonical_text(-1.5) == "bff8000000000000"
    assert float_canonical_text(0.3) != float_canonical_text(0.1 + 0.2)
    big = 5.2990648348713776e16
    assert float_canonical_text(big) == struct.pack(">d", big).hex()
    assert float_canonical_text(big) != float_canonical_text(big + 8.0)
    assert float_canonical_text(-0.0) == float_canonical_text(0.0) == ZERO_BITS
    assert float_canonical_text(float("nan")) == NAN_BITS
    assert float_canonical_text(-float("nan")) == NAN_BITS
    assert float_canonical_text(float("inf")) == "7ff0000000000000"
    assert float_canonical_text(5e-324) == "0000000000000001"


def test_sqlite_function_matches_reference() -> None:
    assert sqlite_row_hash("a", None, 1, 0.5) == python_row_hash(
        ["a", None, "1", float_canonical_text(0.5)]
    )
    con = sqlite3.connect(":memory:")
    con.create_function("ematix_row_hash", -1, sqlite_row_hash, deterministic=True)
    sql = row_hash_sql(
        [('"t"', "text", 0), ('"b"', "bool", 0), ('"n"', "decimal", 2), ('"d"', "float", 0)],
        "sqlite",
    )
    (value,) = con.execute(
        f"SELECT {sql} FROM (SELECT 'x' AS t, 1 AS b, 10.5 AS n, 2 AS d)"
    ).fetchone()
    assert value == python_row_hash(["x", "true", "10.50", float_canonical_text(2.0)])


DOUBLES = [0.3, 0.1 + 0.2, 5.2990648348713776e16, 2.0**53 + 2, 1e22, 1e-7, 5e-324, -0.0, 0.0]
DOUBLES += [1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), -123.456]


def test_duckdb_float_text_matches_reference() -> None:
    """DuckDB renders the bits itself (no float-to-text conversion is involved)."""
    con = duckdb.connect()
    text = DuckDBBackend.canonical_text_sql("d", "float")
    for value in DOUBLES:
        (got,) = con.execute(
            f"SELECT {text} FROM (SELECT CAST(? AS DOUBLE) AS d)", [value]
        ).fetchone()
        assert got == float_canonical_text(value), value


def test_duckdb_row_hash_matches_reference_with_nul_and_nulls() -> None:
    con = duckdb.connect()
    sql = DuckDBBackend.row_hash_sql([("a", "text", 0), ("b", "text", 0)])
    for row in [("a\0", "b"), ("a", "\0b"), (None, ""), ("", None), ("héllo", None)]:
        (got,) = con.execute(
            f"SELECT {sql} FROM (SELECT CAST(? AS VARCHAR) AS a, CAST(? AS VARCHAR) AS b)", row
        ).fetchone()
        assert got == python_row_hash(list(row)), row


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "sqlite"])
@pytest.mark.parametrize("family", FAMILIES)
def test_generated_sql_parses(dialect: str, family: str) -> None:
    text = canonical_text_sql('"we""ird col"', family, dialect, scale=2)
    parse_check(f"SELECT {text}", dialect)
    parse_check(f"SELECT {row_hash_sql([(chr(34) + 'c' + chr(34), family, 2)], dialect)}", dialect)


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown hash family"):
        canonical_text_sql('"c"', "uuid", "postgres")
