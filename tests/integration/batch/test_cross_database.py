"""Cross-database loads: Arrow streamed from one backend, staged (PostgreSQL: COPY) in another."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.types import (
    BigInt,
    Boolean,
    Bytes,
    Date,
    Double,
    Json,
    Numeric,
    Text,
    TimestampTZ,
)
from tests.integration.batch.harness import (
    Harness,
    assert_scd2_invariants,
    at,
    make_harness,
    to_dt,
)
from tests.integration.batch.test_row_hash import COLUMNS as HASH_COLUMNS
from tests.integration.batch.test_row_hash import ROWS as HASH_ROWS
from tests.integration.batch.test_row_hash import canonical

PAIRS = [
    ("sqlite", "postgres"),
    ("duckdb", "postgres"),
    ("postgres", "duckdb"),
    ("duckdb", "sqlite"),
]
PAIR_IDS = [f"{s}-to-{t}" for s, t in PAIRS]
COLUMNS = {"id": "bigint", "name": "text", "amount": "numeric(12,2)", "ts": "timestamptz"}


@pytest.fixture(params=PAIRS, ids=PAIR_IDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Harness, Harness]:
    """(source, target): the source registered as ``src``, the target as ``default``."""
    source_kind, target_kind = request.param
    source = make_harness(source_kind, request, tmp_path, name="src")
    target = make_harness(target_kind, request, tmp_path, name="default")
    return source, target


def declare(target: Harness, sql: str, mode: str, **options):
    @ematix.table(schema=target.schema, name="cust")
    class Cust:
        id: Annotated[BigInt, pk()]
        name: Text | None
        amount: Numeric[12, 2] | None
        ts: TimestampTZ | None

    @ematix.pipeline(target=Cust, mode=mode, source_connection="src", name=f"x_{mode}", **options)
    def load(conn):
        return sql

    return load


def test_cross_database_merge(pair: tuple[Harness, Harness]) -> None:
    source, target = pair
    rows = [
        (1, "a", Decimal("1.50"), at(1)),
        (2, "", Decimal("2.00"), at(2)),
        (3, None, None, None),
    ]
    src = source.create_source("c", COLUMNS, rows)
    load = declare(target, f"SELECT id, name, amount, ts FROM {src}", "merge", deletes="close")
    first = load.run()
    assert first.rows_inserted == 3 and first.targets[0].backend == target.target_kind
    assert target.rows("cust", ["id", "name", "amount", "ts"]) == rows

    source.set_rows(
        "c",
        [(1, "a", Decimal("1.50"), at(1)), (2, "B", Decimal("2.00"), at(2)), (4, "d", None, at(4))],
    )
    second = load.run()

    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (1, 1, 1)
    assert second.rows_deleted == 1
    assert target.rows("cust", ["id", "name"]) == [(1, "a"), (2, "B"), (4, "d")]


def test_cross_database_scd2(pair: tuple[Harness, Harness]) -> None:
    source, target = pair
    src = source.create_source(
        "c", COLUMNS, [(1, "a", Decimal("1.00"), at(1)), (2, "b", None, at(1))]
    )
    load = declare(target, f"SELECT id, name, amount, ts FROM {src}", "scd2", deletes="new_record")
    load.run()
    again = load.run()
    assert (again.rows_inserted, again.rows_closed, again.rows_unchanged) == (0, 0, 2)

    source.set_rows("c", [(1, "a2", Decimal("1.00"), at(2))])
    changed = load.run()

    assert (changed.rows_inserted, changed.rows_closed, changed.rows_deleted) == (2, 2, 1)
    versions = assert_scd2_invariants(target, "cust", ["id"])
    assert [v["is_deleted"] for v in versions[(2,)]] == [False, True]
    assert len(versions[(1,)]) == 2


def test_cross_database_event_time_scd2(pair: tuple[Harness, Harness]) -> None:
    source, target = pair
    src = source.create_source("c", COLUMNS, [(1, "a", None, at(1)), (1, "c", None, at(3))])
    load = declare(
        target, f"SELECT id, name, amount, ts FROM {src}", "scd2", event_timestamp_column="ts"
    )
    load.run()
    source.set_rows("c", [(1, "b", None, at(2))])
    load.run()
    versions = assert_scd2_invariants(target, "cust", ["id"])
    assert [(v["valid_from"], v["valid_to"]) for v in versions[(1,)]] == [
        (at(1), at(2)),
        (at(2), at(3)),
        (at(3), None),
    ]


@pytest.mark.parametrize("column", ["id", "ts"])
def test_cross_database_watermark(pair: tuple[Harness, Harness], column: str) -> None:
    source, target = pair
    src = source.create_source("c", COLUMNS, [(1, "a", None, at(1)), (2, "b", None, at(2))])
    load = declare(
        target, f"SELECT id, name, amount, ts FROM {src}", "append", incremental_column=column
    )
    assert load.run().rows_inserted == 2
    source.insert("c", [(2, "dup", None, at(2)), (3, "c", None, at(3))])

    second = load.run()

    assert second.rows_inserted == 1
    assert target.rows("cust", ["id", "name"]) == [(1, "a"), (2, "b"), (3, "c")]
    stored = target.watermark("x_append")
    assert (to_dt(stored) == at(3)) if column == "ts" else stored == "3"


def test_cross_database_explicit_watermark_placeholder(pair: tuple[Harness, Harness]) -> None:
    source, target = pair
    src = source.create_source("c", COLUMNS, [(1, "a", None, at(1)), (5, "e", None, at(5))])
    sql = f"SELECT id, name, amount, ts FROM {src} WHERE id > $watermark AND NOT id <= $watermark"
    load = declare(target, sql, "append", incremental_column="id")
    assert load.run().rows_inserted == 2
    source.insert("c", [(4, "late", None, at(4)), (6, "f", None, at(6))])
    assert load.run().rows_inserted == 1
    assert target.rows("cust", ["id"]) == [(1,), (5,), (6,)]


def test_cross_database_small_batches_with_null_first_rows(pair: tuple[Harness, Harness]) -> None:
    """Columns that are NULL in the first Arrow batch still load later batches' values."""
    source, target = pair
    rows = [(1, None, None, None), (2, None, None, None), (3, "c", Decimal("3.25"), at(3))]
    src = source.create_source("c", COLUMNS, rows)
    load = declare(target, f"SELECT id, name, amount, ts FROM {src} ORDER BY id", "merge")
    load.run(batch_size=2)
    assert target.rows("cust", ["id", "name", "amount", "ts"]) == rows


def test_cross_database_row_hash_matches(pair: tuple[Harness, Harness]) -> None:
    from ematix_engine.schema.hashing import python_row_hash

    source, target = pair
    src = source.create_source("hsrc", HASH_COLUMNS, HASH_ROWS)

    @ematix.table(schema=target.schema, name="hashed")
    class Hashed:
        id: Annotated[BigInt, pk()]
        t: Text | None
        d: Double | None
        n: Numeric[12, 2] | None
        ts: TimestampTZ | None
        b: Boolean | None
        dt: Date | None
        i: BigInt | None

    @ematix.pipeline(target=Hashed, mode="scd2", source_connection="src", name="x_hash")
    def load(conn):
        return f"SELECT * FROM {src}"

    load.run()
    hashes = dict(target.query(f"SELECT id, row_hash FROM {target.table('hashed')}"))
    expected = {row[0]: python_row_hash([canonical(v) for v in row[1:]]) for row in HASH_ROWS}
    assert hashes == expected
    values = target.rows("hashed", ["id", "t", "d", "i"])
    assert values == [(r[0], r[1], r[2], r[7]) for r in HASH_ROWS]


def test_postgres_source_types_without_arrow_twin(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """numeric without typmod, uuid, jsonb, interval-free extras from PostgreSQL into DuckDB."""
    source = make_harness("postgres", request, tmp_path, name="src")
    target = make_harness("duckdb", request, tmp_path, name="default")
    source.execute(
        f"CREATE TABLE {source.table('odd')} AS SELECT 1::bigint AS id, "
        "'123456789012345678901234.5'::numeric AS big, "
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '{\"k\": [1, 2]}'::jsonb AS j"
    )

    @ematix.table(schema=target.schema, name="odd")
    class Odd:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=Odd, mode="merge", source_connection="src", name="x_odd")
    def load(conn):
        return f"SELECT * FROM {source.table('odd')}"

    load.run()
    (row,) = target.query(
        f"SELECT id, CAST(big AS TEXT), CAST(u AS TEXT), CAST(j AS TEXT) FROM {target.table('odd')}"
    )
    assert row[0] == 1
    assert row[1].startswith("123456789012345678901234.5")
    assert row[2] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert row[3].replace(" ", "") == '{"k":[1,2]}'


@pytest.mark.parametrize("mode", ["merge", "scd2"])
def test_postgres_reload_compares_json_as_jsonb(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A JSON compare column keeps PostgreSQL's jsonb equality (no in-process comparison)."""
    source = make_harness("duckdb", request, tmp_path, name="src")
    target = make_harness("postgres", request, tmp_path, name="default")
    src = source.create_source("j", {"id": "bigint", "doc": "text"}, [(1, '{"b": 1, "a": [2]}')])

    @ematix.table(schema=target.schema, name="docs")
    class Docs:
        id: Annotated[BigInt, pk()]
        doc: Json | None

    @ematix.pipeline(target=Docs, mode=mode, source_connection="src", name=f"json_{mode}")
    def load(conn):
        return f"SELECT id, doc FROM {src}"

    assert load.run().rows_inserted == 1
    source.set_rows("j", [(1, '{"a":[2],"b":1}')])  # same document, other key order and spacing

    again = load.run()

    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 1)
    assert target.count("docs") == 1


def test_postgres_bytes_round_trip_and_compare(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Bytes reach PostgreSQL as bytea hex text (vectorised) and compare exactly on reload."""
    source = make_harness("duckdb", request, tmp_path, name="src")
    target = make_harness("postgres", request, tmp_path, name="default")
    src = source.table("blobs")
    source.execute(f"CREATE TABLE {src} (id BIGINT, payload BLOB)")
    rows = [(1, b"\x00\xff\\x"), (2, b""), (3, None), (4, "日本".encode())]
    source.execute(f"INSERT INTO {src} VALUES (?, ?), (?, ?), (?, ?), (?, ?)", sum(rows, ()))

    @ematix.table(schema=target.schema, name="blobs")
    class Blobs:
        id: Annotated[BigInt, pk()]
        payload: Bytes | None

    @ematix.pipeline(target=Blobs, mode="merge", source_connection="src", name="blobs")
    def load(conn):
        return f"SELECT id, payload FROM {src}"

    assert load.run().rows_inserted == 4
    stored = target.query(f"SELECT id, payload FROM {target.table('blobs')} ORDER BY id")
    assert [(i, None if p is None else bytes(p)) for i, p in stored] == rows
    assert load.run().rows_unchanged == 4

    source.execute(f"UPDATE {src} SET payload = ? WHERE id = 2", [b"\x01"])
    changed = load.run()
    assert (changed.rows_updated, changed.rows_unchanged) == (1, 3)
