"""Identifiers with quotes, semicolons, spaces and unicode load and inject nothing."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, assert_scd2_invariants, at

TABLE = 'tbl "x";--ü'
KEY = "key; --"
WEIRD = 'we"ird; DROP TABLE x'
UNICODE = "Ünïcödé ✓ col"


def declare(h: Harness, mode: str, sql: str, **options):
    annotations = {KEY: Annotated[BigInt, pk()], WEIRD: Text | None, UNICODE: Text | None}
    klass = type("Weird", (), {"__annotations__": annotations, "__module__": __name__})
    table = ematix.table(schema=h.schema, name=TABLE)(klass)

    @ematix.pipeline(target=table, mode=mode, name=f"weird_{mode}", **h.pipeline_options, **options)
    def load(conn):
        return sql

    return load


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("append", {}),
        ("merge", {"deletes": "close"}),
        ("scd2", {"deletes": "new_record"}),
        ("replace", {}),
    ],
    ids=["append", "merge", "scd2", "replace"],
)
def test_weird_identifiers_round_trip(h: Harness, mode: str, options: dict) -> None:
    h.create_source("x", {"canary": "bigint"}, [(42,)])
    columns = {KEY: "bigint", WEIRD: "text", UNICODE: "text"}
    src = h.create_source(
        TABLE + " src", columns, [(1, "a'); DROP TABLE x; --", "ü"), (2, "b", None)]
    )
    cols = ", ".join(h.quote(c) for c in columns)
    load = declare(h, mode, f"SELECT {cols} FROM {src}", **options)

    load.run()
    h.set_rows(TABLE + " src", [(1, "changed \"'; --", "ü"), (3, "c", "✓")])
    result = load.run()

    assert h.source_query(f"SELECT canary FROM {h.table('x')}") == [(42,)]
    assert h.exists(TABLE)
    live = {
        "append": "",
        "merge": "",
        "scd2": "WHERE is_current AND NOT is_deleted",
        "replace": "",
    }[mode]
    rows = h.query(
        f"SELECT {cols} FROM {h.table(TABLE)} {live} ORDER BY {h.quote(KEY)}, {h.quote(WEIRD)}"
    )
    expected = {
        "append": [
            (1, "a'); DROP TABLE x; --", "ü"),
            (1, "changed \"'; --", "ü"),
            (2, "b", None),
            (3, "c", "✓"),
        ],
        "merge": [(1, "changed \"'; --", "ü"), (3, "c", "✓")],
        "scd2": [(1, "changed \"'; --", "ü"), (3, "c", "✓")],
        "replace": [(1, "changed \"'; --", "ü"), (3, "c", "✓")],
    }[mode]
    assert rows == expected
    assert result.targets[0].row_count == h.count(TABLE)
    assert not h.exists(TABLE + "__ematix_new")


PERCENT = "50% off; %s"


def test_weird_incremental_column(h: Harness) -> None:
    annotations = {PERCENT: Annotated[BigInt, pk()], WEIRD: Text | None}
    klass = type("Pct", (), {"__annotations__": annotations, "__module__": __name__})
    table = ematix.table(schema=h.schema, name=TABLE)(klass)
    src = h.create_source("pct src", {PERCENT: "bigint", WEIRD: "text"}, [(1, "a"), (2, "b")])

    @ematix.pipeline(
        target=table,
        mode="append",
        incremental_column=PERCENT,
        name="pct",
        **h.pipeline_options,
    )
    def load(conn):
        return f"SELECT * FROM {src} WHERE {h.quote(PERCENT)} > $watermark"

    assert load.run().rows_inserted == 2
    h.insert("pct src", [(3, "c")])
    assert load.run().rows_inserted == 1
    assert h.rows(TABLE, [PERCENT]) == [(1,), (2,), (3,)]


@pytest.mark.parametrize(
    ("key", "options"),
    [
        ("kind", {"deletes": "close"}),  # the snapshot change table's helper column, unprefixed
        ("is_new", {"event_timestamp_column": "ts"}),  # event-time timeline helpers
        ("dropped", {"event_timestamp_column": "ts"}),
    ],
)
def test_keys_named_like_plan_helper_columns(h: Harness, key: str, options: dict) -> None:
    """The plans' helper columns carry an ``_ematix_`` prefix, so no key name collides."""
    columns = {key: "bigint", "v": "text", "ts": "timestamptz"}
    src = h.create_source("helpers", columns, [(1, "a", at(2))])
    annotations = {key: Annotated[BigInt, pk()], "v": Text | None, "ts": TimestampTZ}
    klass = type("Helpers", (), {"__annotations__": annotations, "__module__": __name__})
    table = ematix.table(schema=h.schema, name="helpers_dim")(klass)

    @ematix.pipeline(target=table, mode="scd2", name="helpers", **h.pipeline_options, **options)
    def load(conn):
        return f"SELECT * FROM {src}"

    assert load.run().rows_inserted == 1
    event_time = "event_timestamp_column" in options
    late = [(1, "late", at(1))] if event_time else []  # event time: a late event is history
    h.set_rows("helpers", [(1, "b", at(3)), *late, (2, "c", at(3))])
    second = load.run()
    versions = assert_scd2_invariants(h, "helpers_dim", [key])
    assert len(versions[(2,)]) == 1
    assert len(versions[(1,)]) == (3 if event_time else 2), second
