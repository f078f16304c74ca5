"""Which existing column types are too narrow for a declared type (schema drift)."""

from __future__ import annotations

import pytest

from ematix_engine.schema.ddl import _compatible
from ematix_engine.types import BigInt, Integer, SmallInt, String, Text


@pytest.mark.parametrize(
    ("existing", "declared", "dialect", "holds"),
    [
        ("integer", BigInt, "postgres", False),
        ("bigint", BigInt, "postgres", True),
        ("smallint", Integer, "postgres", False),
        ("integer", SmallInt, "postgres", True),
        ("numeric(20,0)", BigInt, "postgres", True),
        ("UINTEGER", BigInt, "duckdb", False),  # no negatives
        ("UBIGINT", BigInt, "duckdb", False),
        ("HUGEINT", BigInt, "duckdb", True),
        ("INTEGER", BigInt, "sqlite", True),  # SQLite integers are 64-bit
        ("character varying(8)", String[16], "postgres", False),
        ("character(8)", String[16], "postgres", False),
        ("character varying(32)", String[16], "postgres", True),
        ("text", String[16], "postgres", True),
        ("character varying(8)", Text, "postgres", True),  # Text over VARCHAR is left alone
        ("VARCHAR(8)", String[16], "sqlite", True),  # SQLite ignores the length
    ],
)
def test_narrower_columns(existing: str, declared: type, dialect: str, holds: bool) -> None:
    assert _compatible(existing, declared, dialect) is holds
