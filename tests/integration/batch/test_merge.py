"""merge: exact counts, no rewrite of unchanged rows, deletes, duplicate keys, newest event wins."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import DuplicateKeyError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


def declare(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="cust")
    class Cust:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(target=Cust, mode="merge", name="merge_cust", **h.pipeline_options, **options)
    def merge_cust(conn):
        return sql

    return merge_cust


def test_merge_counts_and_unchanged_rows_are_not_rewritten(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(1)), (3, None, at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    first = load.run()
    assert (first.rows_inserted, first.rows_updated, first.rows_unchanged) == (3, 0, 0)

    # 1 unchanged, 2 updated (value), 3 updated (NULL -> value), 4 new
    h.set_rows("src", [(1, "a", at(1)), (2, "B", at(2)), (3, "c", at(1)), (4, "d", at(2))])
    second = load.run()

    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (1, 2, 1)
    assert (second.rows_closed, second.rows_deleted) == (0, 0)
    assert h.rows("cust", ["id", "name", "ts", "_batch_id"]) == [
        (1, "a", at(1), first.run_id),
        (2, "B", at(2), second.run_id),
        (3, "c", at(1), second.run_id),
        (4, "d", at(2), second.run_id),
    ]
    loaded = dict(h.rows("cust", ["id", "_loaded_at"]))
    assert loaded[1] < loaded[2]

    third = load.run()  # same source again: nothing changes
    assert (third.rows_inserted, third.rows_updated, third.rows_unchanged) == (0, 0, 4)
    assert h.count("cust", f"WHERE _batch_id = '{third.run_id}'") == 0


def test_merge_value_to_null_is_an_update(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, None, at(1))])
    result = load.run()
    assert (result.rows_updated, result.rows_unchanged) == (1, 0)
    assert h.rows("cust", ["id", "name"]) == [(1, None)]


def test_merge_deletes_close_removes_absent_keys(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(1)), (3, "c", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", deletes="close")
    load.run()
    h.set_rows("src", [(2, "b", at(1))])

    result = load.run()

    assert (result.rows_deleted, result.rows_unchanged, result.rows_inserted) == (2, 1, 0)
    assert h.rows("cust", ["id", "name"]) == [(2, "b")]
    assert result.targets[0].row_count == 1


def test_merge_duplicate_keys_raise_duplicate_key_error(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "x", at(1)), (2, "y", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")

    with pytest.raises(DuplicateKeyError) as caught:
        load.run()

    assert caught.value.pipeline == "merge_cust"
    assert caught.value.key == {"id": 2}
    assert "merge_cust" in str(caught.value) and "id=2" in str(caught.value)
    assert not h.exists("cust") or h.count("cust") == 0


def test_merge_duplicate_keys_on_existing_target_never_hit_a_constraint(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    load.run()
    h.set_rows("src", [(1, "b", at(1)), (1, "c", at(1)), (9, "n", at(1)), (9, "m", at(1))])
    with pytest.raises(DuplicateKeyError, match="merge_cust"):
        load.run()
    assert h.rows("cust", ["id", "name"]) == [(1, "a")]


def test_merge_exact_duplicate_rows_are_collapsed(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "a", at(1)), (2, "b", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    result = load.run()
    assert result.rows_inserted == 2
    assert h.rows("cust", ["id", "name"]) == [(1, "a"), (2, "b")]


def test_merge_with_event_timestamp_newest_row_wins(h: Harness) -> None:
    rows = [(1, "old", at(1)), (1, "newest", at(3)), (1, "mid", at(2)), (2, "only", at(1))]
    src = h.create_source("src", COLUMNS, rows)
    load = declare(h, f"SELECT id, name, ts FROM {src}", event_timestamp_column="ts")

    result = load.run()

    assert result.rows_inserted == 2
    assert h.rows("cust", ["id", "name", "ts"]) == [(1, "newest", at(3)), (2, "only", at(1))]


def test_merge_with_event_timestamp_ignores_null_event_times(h: Harness) -> None:
    """A row without an event time must not beat rows that have one (NULL ordering differs)."""
    src = h.create_source("src", COLUMNS, [(1, "dated", at(3)), (1, "undated", None)])
    load = declare(h, f"SELECT id, name, ts FROM {src}", event_timestamp_column="ts")
    load.run()
    assert h.rows("cust", ["id", "name"]) == [(1, "dated")]


def test_merge_same_key_and_event_time_with_different_values_is_an_error(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "x", at(3)), (1, "y", at(3)), (1, "z", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", event_timestamp_column="ts")
    with pytest.raises(DuplicateKeyError, match="merge_cust") as caught:
        load.run()
    assert caught.value.key["id"] == 1


def test_duplicates_differing_outside_compare_columns_are_a_conflict(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (1, "a", at(2))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", compare_columns=["name"])
    with pytest.raises(DuplicateKeyError, match="merge_cust"):
        load.run()
    assert not h.columns("cust") or h.count("cust") == 0
