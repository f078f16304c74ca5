"""row_hash is byte-identical on every backend (Delta too) and matches python_row_hash."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.schema.hashing import python_row_hash
from ematix_engine.types import BigInt, Boolean, Date, Double, Numeric, Text, TimestampTZ
from tests.integration.batch.harness import BACKENDS, Harness, make_harness

COLUMNS = {
    "id": "bigint",
    "t": "text",
    "d": "double",
    "n": "numeric(12,2)",
    "ts": "timestamptz",
    "b": "boolean",
    "dt": "date",
    "i": "bigint",
}
TS1 = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
TS2 = datetime(1999, 12, 31, 0, 0, 0, tzinfo=UTC)
ROWS = [
    (1, "héllo ✓ 日本", 1.1, Decimal("10.50"), TS1, True, date(2024, 2, 29), -5),
    (2, "", 1e20, Decimal("-3.00"), TS2, False, date(1999, 12, 31), 0),
    (3, None, -0.5, None, None, None, None, None),
    (
        4,
        "tab\tnl\nquote\"'",
        100.0,
        Decimal("1234567890.01"),
        TS1,
        True,
        date(1, 1, 1),
        9223372036854775807,
    ),
    (5, "0.1+0.2", 0.1 + 0.2, Decimal("0.01"), TS2, False, date(2000, 1, 1), -9223372036854775807),
]


def canonical(value: object) -> str | None:
    """Canonical text per ematix_engine.schema.hashing's table."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "%.15g" % value  # noqa: UP031 - the documented C format
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return (
            value.strftime("%Y-%m-%d") if value.year >= 1000 else f"{value.year:04d}-{value:%m-%d}"
        )
    return str(value)


def load_hashes(h: Harness, rows) -> dict[int, str]:
    src = h.create_source("hsrc", COLUMNS, rows)

    @ematix.table(schema=h.schema, name="hashed")
    class Hashed:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        n: Numeric[12, 2] | None
        ts: TimestampTZ | None
        b: Boolean | None
        dt: Date | None
        i: BigInt | None

    @ematix.pipeline(
        target=Hashed,
        mode="scd2",
        target_connection=h.name,
        name=f"hash_{h.kind}",
        **h.pipeline_options,
    )
    def load(conn):
        return f"SELECT * FROM {src}"

    load.run()
    return dict(h.query(f"SELECT id, row_hash FROM {h.table('hashed')} ORDER BY id"))


def test_row_hash_is_identical_everywhere(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    harnesses = [make_harness(kind, request, tmp_path, name=kind) for kind in BACKENDS]
    hashes = {h.kind: load_hashes(h, ROWS) for h in harnesses}
    expected = {row[0]: python_row_hash([canonical(v) for v in row[1:]]) for row in ROWS}

    for kind in BACKENDS:
        mismatched = {k: v for k, v in hashes[kind].items() if v != expected[k]}
        assert not mismatched, f"{kind}: rows {sorted(mismatched)} hash differently"


def test_special_floats_hash_as_documented(h: Harness) -> None:
    """NaN and the infinities hash as ``NaN``/``Infinity``/``-Infinity`` (SQLite keeps NaN as NULL)."""
    nan_text = None if h.target_kind == "sqlite" else "NaN"
    rows = [(1, float("nan")), (2, float("inf")), (3, float("-inf"))]
    src = h.create_source("fsrc", {"id": "bigint", "d": "double"}, rows)

    @ematix.table(schema=h.schema, name="floats")
    class Floats:
        id: Annotated[BigInt, pk()]
        d: Double | None

    @ematix.pipeline(target=Floats, mode="scd2", name="special_floats", **h.pipeline_options)
    def load(conn):
        return f"SELECT id, d FROM {src}"

    load.run()
    hashes = dict(h.query(f"SELECT id, row_hash FROM {h.table('floats')} ORDER BY id"))
    assert hashes == {
        1: python_row_hash([nan_text]),
        2: python_row_hash(["Infinity"]),
        3: python_row_hash(["-Infinity"]),
    }
    assert load.run().rows_unchanged == 3  # and a re-run sees nothing new


def test_null_and_empty_string_hash_differently() -> None:
    assert python_row_hash([None]) != python_row_hash([""])
    assert python_row_hash(["a", None]) != python_row_hash(["a", ""])
    assert python_row_hash(["ab", "c"]) != python_row_hash(["a", "bc"])


def test_sqlite_non_canonical_timestamp_text_hashes_like_postgres(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    sqlite = make_harness("sqlite", request, tmp_path, name="sqlite")
    row = (1, "x", 1.0, Decimal("1.00"), TS2, True, date(2000, 1, 1), 1)
    expected = python_row_hash([canonical(v) for v in row[1:]])
    sqlite.create_source("hsrc", COLUMNS, [])
    sqlite.execute(
        f"INSERT INTO {sqlite.table('hsrc')} VALUES (1, 'x', 1.0, 1.00, "
        "'1999-12-31T00:00:00Z', 1, '2000-01-01', 1)"
    )

    @ematix.table(schema="an", name="hashed")
    class Hashed:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        n: Numeric[12, 2] | None
        ts: TimestampTZ | None
        b: Boolean | None
        dt: Date | None
        i: BigInt | None

    @ematix.pipeline(target=Hashed, mode="scd2", target_connection="sqlite")
    def load(conn):
        return f"SELECT * FROM {sqlite.table('hsrc')}"

    load.run()
    assert sqlite.scalar('SELECT row_hash FROM "hashed"') == expected
