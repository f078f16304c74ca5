"""SCD2 edge cases (issue 12, item 7) on every harness: NULL event times, future-dated
deletes, and SCD2 onto a table another mode filled."""

from __future__ import annotations

import itertools
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import SchemaDriftError, SourceError
from ematix_engine.types import BigInt, Double, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at, to_dt

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


def _table(h: Harness):
    @ematix.table(schema=h.schema, name="dim")
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ | None

    return Dim


def _pipeline(h: Harness, sql: str, **options):
    @ematix.pipeline(target=_table(h), name="edges", **h.pipeline_options, **options)
    def edges(conn):
        return sql

    return edges


def test_a_null_event_time_is_refused_naming_the_column(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", None)])
    load = _pipeline(h, f"SELECT id, name, ts FROM {src}", mode="scd2", event_timestamp_column="ts")
    with pytest.raises(SourceError, match="'ts'"):
        load.run()
    assert not h.exists("dim") or h.count("dim") == 0


@pytest.mark.parametrize("deletes", ["close", "new_record"])
def test_deleting_a_future_dated_version_never_inverts_an_interval(
    h: Harness, deletes: str
) -> None:
    future = at(1, day=20).replace(year=2999)
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", future)])
    load = _pipeline(
        h,
        f"SELECT id, name, ts FROM {src}",
        mode="scd2",
        event_timestamp_column="ts",
        deletes=deletes,
    )
    load.run()
    h.set_rows("src", [(1, "a", at(1))])  # key 2 is gone
    result = load.run()
    assert result.rows_deleted == 1
    for valid_from, valid_to in h.rows("dim", ["valid_from", "valid_to"]):
        if valid_to is not None:
            assert to_dt(valid_to) >= to_dt(valid_from)
    versions = h.rows("dim", ["id", "valid_from", "is_deleted"], order_by=["id", "valid_from"])
    key2 = [v for v in versions if v[0] == 2]
    starts = [to_dt(v[1]) for v in key2]
    assert min(starts) == to_dt(future)  # nothing (no tombstone) starts before the version
    if deletes == "new_record":
        assert key2[-1][2] in (True, 1)


def test_scd2_onto_a_table_an_append_load_filled_is_refused(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    _pipeline(h, f"SELECT id, name, ts FROM {src}", mode="append").run()
    scd2 = _pipeline(h, f"SELECT id, name, ts FROM {src}", mode="scd2")
    with pytest.raises(SchemaDriftError, match="history columns"):
        scd2.run()
    assert h.count("dim") == 1


def _events(h: Harness, rows, deletes: str = "close"):
    src = h.create_source("src", COLUMNS, rows)
    return src, _pipeline(
        h,
        f"SELECT id, name, ts FROM {src}",
        mode="scd2",
        event_timestamp_column="ts",
        deletes=deletes,
    )


def _live(h: Harness) -> dict[int, str]:
    rows = h.rows("dim", ["id", "name", "is_current", "is_deleted"])
    return {i: n for i, n, cur, dead in rows if cur in (True, 1) and dead in (False, 0)}


def _gap_free(h: Harness, key: int) -> None:
    versions = [
        (to_dt(f), to_dt(t))
        for i, f, t in h.rows(
            "dim", ["id", "valid_from", "valid_to"], order_by=["id", "valid_from"]
        )
        if i == key
    ]
    for (_, end), (start, _) in itertools.pairwise(versions):
        assert end == start, versions
    assert all(t is None or t >= f for f, t in versions), versions


@pytest.mark.parametrize("deletes", ["close", "new_record"])
@pytest.mark.parametrize(
    "returning",
    [(2, "b", at(3)), (2, "b", at(1))],
    ids=["same-values-later-event", "original-event-time"],
)
def test_a_deleted_key_back_in_the_snapshot_is_live_again(
    h: Harness, deletes: str, returning: tuple
) -> None:
    _, load = _events(h, [(1, "a", at(1)), (2, "b", at(1))], deletes)
    load.run()
    h.set_rows("src", [(1, "a", at(1))])
    load.run()  # key 2 deleted
    h.set_rows("src", [(1, "a", at(1)), returning])
    load.run()
    assert _live(h) == {1: "a", 2: "b"}
    _gap_free(h, 2)


def _doubles(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="measures")
    class Measures:
        id: Annotated[BigInt, pk()]
        x: Double | None
        label: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(
        target=Measures,
        mode="scd2",
        event_timestamp_column="ts",
        name="measures",
        **h.pipeline_options,
        **options,
    )
    def measures(conn):
        return sql

    return measures


def test_event_time_detects_a_change_in_the_last_digits_of_a_double(h: Harness) -> None:
    """0.3 and 0.1 + 0.2 render alike with 15 digits; compared as values they differ."""
    cols = {"id": "bigint", "x": "double", "label": "text", "ts": "timestamptz"}
    src = h.create_source("src", cols, [(1, 0.3, "a", at(1))])
    load = _doubles(h, f"SELECT id, x, label, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, 0.1 + 0.2, "a", at(2))])
    result = load.run()
    assert result.rows_inserted == 1  # a new version, not "unchanged"
    h.set_rows("src", [(1, 0.3, "a", at(2))])  # a correction of that event, back to 0.3
    assert load.run().rows_updated == 1


def test_a_wider_compare_columns_set_does_not_re_version_every_key(h: Harness) -> None:
    cols = {"id": "bigint", "x": "double", "label": "text", "ts": "timestamptz"}
    src = h.create_source("src", cols, [(1, 1.5, "a", at(1)), (2, 2.5, "b", at(1))])
    sql = f"SELECT id, x, label, ts FROM {src}"
    _doubles(h, sql, compare_columns=["x"]).run()
    h.set_rows("src", [(1, 1.5, "a", at(2)), (2, 2.5, "b", at(2))])  # same values, later
    result = _doubles(h, sql, compare_columns=["x", "label"]).run()
    assert (result.rows_inserted, result.rows_updated) == (0, 0)
    assert h.count("measures") == 2
