"""row_hash: the reference implementation and the SQL each backend runs."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from ematix_engine.schema.hashing import (
    NULL_MARKER,
    SEPARATOR,
    canonical_text_sql,
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
    expected = hashlib.sha256("héllo".encode() + b"\x00" + b"\xff" + b"\x00" + b"").hexdigest()
    assert python_row_hash(["héllo", None, ""]) == expected
    assert SEPARATOR == b"\x00" and NULL_MARKER == b"\xff"
    assert python_row_hash([]) == hashlib.sha256(b"").hexdigest()


def test_null_empty_and_shifted_values_differ() -> None:
    hashes = {
        python_row_hash([None]),
        python_row_hash([""]),
        python_row_hash([None, None]),
        python_row_hash(["", ""]),
        python_row_hash(["ab", "c"]),
        python_row_hash(["a", "bc"]),
    }
    assert len(hashes) == 6


def test_sqlite_function_matches_reference() -> None:
    assert sqlite_row_hash("a", None, 1) == python_row_hash(["a", None, "1"])
    con = sqlite3.connect(":memory:")
    con.create_function("ematix_row_hash", -1, sqlite_row_hash, deterministic=True)
    sql = row_hash_sql([('"t"', "text", 0), ('"b"', "bool", 0), ('"n"', "decimal", 2)], "sqlite")
    (value,) = con.execute(f"SELECT {sql} FROM (SELECT 'x' AS t, 1 AS b, 10.5 AS n)").fetchone()
    assert value == python_row_hash(["x", "true", "10.50"])


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "sqlite"])
@pytest.mark.parametrize("family", FAMILIES)
def test_generated_sql_parses(dialect: str, family: str) -> None:
    text = canonical_text_sql('"we""ird col"', family, dialect, scale=2)
    parse_check(f"SELECT {text}", dialect)
    parse_check(f"SELECT {row_hash_sql([(chr(34) + 'c' + chr(34), family, 2)], dialect)}", dialect)


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown hash family"):
        canonical_text_sql('"c"', "uuid", "postgres")
