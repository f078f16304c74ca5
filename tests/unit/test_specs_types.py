"""Column types (String[n], Numeric[p, s]) and class-name → table-name conversion."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from ematix_engine.api.table import to_snake_case
from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.backends.postgres import PostgresBackend
from ematix_engine.backends.sqlite import SQLiteBackend
from ematix_engine.errors import ConfigError
from ematix_engine.schema.types import column_type_from_arrow
from ematix_engine.types import BigInt, Numeric, String, Text


def test_string_n() -> None:
    s256 = String[256]
    assert s256 is String[256]  # cached: the same class every time
    assert issubclass(s256, String) and s256.params == (256,)
    assert s256.type_name() == "String[256]"
    assert s256.arrow_type() == pa.string()
    assert s256.sql_type().sql("postgres") == "VARCHAR(256)"
    assert s256.hash_family == "text"


def test_numeric_p_s() -> None:
    money = Numeric[12, 2]
    assert money is Numeric[12, 2] and money is not Numeric[12, 3]
    assert money.params == (12, 2) and money.type_name() == "Numeric[12, 2]"
    assert money.arrow_type() == pa.decimal128(12, 2)
    assert money.sql_type().sql("postgres") == "DECIMAL(12, 2)"
    assert money.hash_family == "decimal"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: String[0], "String[0]: length must be a positive integer"),
        (lambda: String[1, 2], "String[1, 2]: takes one parameter"),
        (lambda: Numeric[39, 2], "Numeric[39, 2]: precision must be between 1 and 38"),
        (lambda: Numeric[5, 6], "Numeric[5, 6]: scale must be between 0 and the precision"),
        (lambda: Numeric[12], "Numeric[12]: takes two parameters"),
        (lambda: Numeric["12", 2], "Numeric['12', 2]: precision and scale must be integers"),
    ],
)
def test_bad_type_parameters_fail_on_use(make, message: str) -> None:
    bad = make()  # reported late, where the table and column are known (see schema.types)
    assert bad.problem is not None and message.split(": ", 1)[1] in bad.problem
    with pytest.raises(ConfigError, match=re.escape(message)):
        bad.sql_type()
    with pytest.raises(ConfigError, match=re.escape(message)):
        bad.arrow_type()


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (
            PostgresBackend,
            {
                "BigInt": "BIGINT",
                "Text": "TEXT",
                "String": "VARCHAR(256)",
                "Numeric": "DECIMAL(12, 2)",
            },
        ),
        (
            DuckDBBackend,
            {
                "BigInt": "BIGINT",
                "Text": "TEXT",
                "String": "TEXT(256)",
                "Numeric": "DECIMAL(12, 2)",
            },
        ),
        (
            SQLiteBackend,
            {"BigInt": "INTEGER", "Text": "TEXT", "String": "TEXT", "Numeric": "NUMERIC"},
        ),
    ],
    ids=["postgres", "duckdb", "sqlite"],
)
def test_ddl_types_per_backend(backend, expected: dict[str, str]) -> None:
    session = backend.__new__(backend)  # column_type_sql needs no open connection
    types = {"BigInt": BigInt, "Text": Text, "String": String[256], "Numeric": Numeric[12, 2]}
    assert {k: session.column_type_sql(t) for k, t in types.items()} == expected


def test_column_type_from_arrow() -> None:
    assert column_type_from_arrow(pa.int64()) is BigInt
    assert column_type_from_arrow(pa.decimal128(10, 3)) is Numeric[10, 3]
    assert column_type_from_arrow(pa.large_string()) is Text
    with pytest.raises(TypeError):
        column_type_from_arrow(pa.month_day_nano_interval())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Customer", "customer"),
        ("CustomerDim", "customer_dim"),
        ("HTTPLog", "http_log"),
        ("PageViews2024", "page_views2024"),
        ("already_snake", "already_snake"),
        ("ABC", "abc"),
        ("getHTTPResponseCode", "get_http_response_code"),
    ],
)
def test_to_snake_case(name: str, expected: str) -> None:
    assert to_snake_case(name) == expected
