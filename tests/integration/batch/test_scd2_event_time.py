"""SCD2 with event_timestamp_column: change logs, no-op events, conflicts, out-of-order stitching."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import DuplicateKeyError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, assert_scd2_invariants, at, history, to_dt

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


def declare(h: Harness, sql: str, *, table: str = "hist", **options):
    @ematix.table(schema=h.schema, name=table)
    class Hist:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ

    @ematix.pipeline(
        target=Hist,
        mode="scd2",
        event_timestamp_column="ts",
        name=f"{table}_load",
        **h.pipeline_options,
        **options,
    )
    def load(conn):
        return sql

    return load


def timeline(h: Harness, table: str = "hist") -> list[tuple]:
    return h.rows(
        table, ["id", "name", "valid_from", "valid_to", "is_current"], order_by=["id", "valid_from"]
    )


def test_change_log_becomes_versions_in_time_order(h: Harness) -> None:
    events = [(1, "c", at(3)), (1, "a", at(1)), (1, "b", at(2)), (2, "x", at(5))]
    src = h.create_source("src", COLUMNS, events)
    load = declare(h, f"SELECT id, name, ts FROM {src}")

    result = load.run()

    assert result.rows_inserted == 4
    assert timeline(h) == [
        (1, "a", at(1), at(2), False),
        (1, "b", at(2), at(3), False),
        (1, "c", at(3), None, True),
        (2, "x", at(5), None, True),
    ]
    assert_scd2_invariants(h, "hist", ["id"])
    rerun = load.run()
    assert (rerun.rows_inserted, rerun.rows_updated, rerun.rows_closed) == (0, 0, 0)
    assert rerun.rows_unchanged == 4


def test_event_equal_to_the_previous_version_adds_nothing(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "a", at(2)), (1, "b", at(3))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    assert timeline(h) == [(1, "a", at(1), at(3), False), (1, "b", at(3), None, True)]

    h.set_rows("src", [(1, "b", at(4))])  # a later event with the current values
    result = load.run()

    assert (result.rows_inserted, result.rows_closed, result.rows_unchanged) == (0, 0, 1)
    assert timeline(h) == [(1, "a", at(1), at(3), False), (1, "b", at(3), None, True)]


def test_same_key_and_event_time_with_different_values_is_an_error(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "b", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    with pytest.raises(DuplicateKeyError, match="hist_load") as caught:
        load.run()
    assert caught.value.key["id"] == 1
    assert "same event time" in str(caught.value)


def test_out_of_order_event_is_stitched_between(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "c", at(3))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "b", at(2))])

    result = load.run()

    assert (result.rows_inserted, result.rows_updated, result.rows_closed) == (1, 1, 0)
    assert timeline(h) == [
        (1, "a", at(1), at(2), False),
        (1, "b", at(2), at(3), False),
        (1, "c", at(3), None, True),
    ]
    assert_scd2_invariants(h, "hist", ["id"])


def test_event_older_than_all_history_is_prepended(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "b", at(5))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "a", at(2))])
    load.run()
    assert timeline(h) == [(1, "a", at(2), at(5), False), (1, "b", at(5), None, True)]


def test_newer_event_closes_the_current_version(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "b", at(4)), (2, "n", at(4))])

    result = load.run()

    assert (result.rows_inserted, result.rows_closed) == (2, 1)
    assert timeline(h) == [
        (1, "a", at(1), at(4), False),
        (1, "b", at(4), None, True),
        (2, "n", at(4), None, True),
    ]


def test_late_event_equal_to_the_next_version_merges_with_it(h: Harness) -> None:
    """t1=a, t3=b loaded; late t2=b: b starts at t2 (as if all events came at once)."""
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "b", at(3))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "b", at(2))])
    load.run()

    all_at_once = h.create_source(
        "src2", COLUMNS, [(1, "a", at(1)), (1, "b", at(3)), (1, "b", at(2))]
    )
    declare(h, f"SELECT id, name, ts FROM {all_at_once}", table="hist2").run()

    assert (
        timeline(h)
        == timeline(h, "hist2")
        == [
            (1, "a", at(1), at(2), False),
            (1, "b", at(2), None, True),
        ]
    )
    assert_scd2_invariants(h, "hist", ["id"])


def test_late_event_equal_to_the_previous_version_adds_nothing(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "c", at(3))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "a", at(2))])
    result = load.run()
    assert (result.rows_inserted, result.rows_updated, result.rows_closed) == (0, 0, 0)
    assert timeline(h) == [(1, "a", at(1), at(3), False), (1, "c", at(3), None, True)]


def test_event_at_an_existing_version_time_corrects_it_in_place(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "b", at(2))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "B", at(2))])
    result = load.run()
    assert (result.rows_inserted, result.rows_updated) == (0, 1)
    assert timeline(h) == [(1, "a", at(1), at(2), False), (1, "B", at(2), None, True)]
    versions = history(h, "hist", ["id"], ["name"])
    assert versions[(1,)][1]["row_hash"] != versions[(1,)][0]["row_hash"]


def test_a_late_event_of_a_deleted_key_in_the_snapshot_reopens_it_at_the_close(
    h: Harness,
) -> None:
    """The snapshot has the key again, so it is live after the load (issue 12: it stayed
    closed before); the late event is stitched in before the close, the key reopens at the
    close time (max of event time and close time), and history stays gap-free."""
    src = h.create_source("src", COLUMNS, [(1, "a", at(5)), (2, "b", at(5))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", deletes="close")
    load.run()
    h.set_rows("src", [(1, "a", at(5))])
    load.run()  # key 2 is closed
    h.set_rows("src", [(1, "a", at(5)), (2, "early", at(1))])  # a late event from before

    load.run()

    versions = history(h, "hist", ["id"], ["name"])[(2,)]
    current = [v for v in versions if v["is_current"]]
    assert [v["name"] for v in current] == ["early"]
    closed_at = max(to_dt(v["valid_to"]) for v in versions if v["valid_to"] is not None)
    assert to_dt(current[0]["valid_from"]) == closed_at
