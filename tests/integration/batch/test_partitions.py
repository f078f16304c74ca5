"""Partitioned pipelines on every harness: two partitions, a re-run, a range, static values.

A partition's run loads only its slice and is idempotent: append and replace targets lose
the slice's old rows first, merge and SCD2 re-merge it and retire absent keys only within it;
other partitions are never touched, and no watermark is read or stored.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import pytest

from ematix_engine import ConfigError, ematix, pk
from ematix_engine.runlog.memory import MemoryRunLog
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at

COLUMNS = {"id": "bigint", "region": "text", "name": "text", "ts": "timestamptz"}
DAY1 = [(1, "eu", "a", at(1, day=1)), (2, "us", "b", at(23, 59, day=1))]
DAY2 = [(3, "eu", "c", at(0, day=2)), (4, "us", "d", at(12, day=2))]
DAY3 = [(5, "eu", "e", at(6, day=3))]


def _declare(h: Harness, sql: str, partitions=None, **options):
    @ematix.table(schema=h.schema, name="sliced")
    class Sliced:
        id: Annotated[BigInt, pk()]
        region: Text | None
        name: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(
        target=Sliced,
        name="sliced",
        partitions=partitions or ematix.daily("ts", start="2024-01-01"),
        **h.pipeline_options,
        **options,
    )
    def sliced(conn):
        return sql

    return sliced


def _live(h: Harness, mode: str) -> dict[int, str]:
    """``{id: name}`` of the target's live rows (current, not deleted, for SCD2)."""
    if mode in ("append", "replace", "merge"):
        return {i: n for i, n in h.rows("sliced", ["id", "name"])}
    rows = h.rows("sliced", ["id", "name", "is_current", "is_deleted"])
    return {i: n for i, n, cur, dead in rows if cur in (True, 1) and dead in (False, 0)}


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "append"},
        {"mode": "replace"},
        {"mode": "merge"},
        {"mode": "merge", "deletes": "close"},
        {"mode": "scd2"},
        {"mode": "scd2", "deletes": "close"},
    ],
    ids=["append", "replace", "merge", "merge-deletes", "scd2", "scd2-deletes"],
)
def test_a_rerun_replaces_its_partition_and_leaves_the_others(h: Harness, options: dict) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}", **options)
    mode = options["mode"]

    load.run(partition="2024-01-01")
    load.run(partition="2024-01-02")
    assert _live(h, mode) == {1: "a", 2: "b", 3: "c", 4: "d"}

    # day 2 changes (3 renamed, 4 gone, 6 new) and so does day 1, which is not re-run
    h.set_rows(
        "src",
        [(1, "eu", "A", at(1, day=1)), (3, "eu", "C", at(0, day=2)), (6, "us", "f", at(9, day=2))],
    )
    result = load.run(partition="2024-01-02")

    live = _live(h, mode)
    if mode in ("append", "replace"):
        assert live == {1: "a", 2: "b", 3: "C", 6: "f"}
        assert result.rows_deleted == 2 and result.rows_inserted == 2
    elif options.get("deletes"):
        assert live == {1: "a", 2: "b", 3: "C", 6: "f"}  # 4 retired; day 1's 2 is kept
        assert result.rows_deleted == 1
    else:
        assert live == {1: "a", 2: "b", 3: "C", 4: "d", 6: "f"}
    assert h.count("sliced", "WHERE " + h.quote("id") + " = 5") == 0  # day 3 never ran
    assert result.watermark is None and h.watermark("sliced") is None

    load.run(partition="2024-01-02")  # nothing changed: a re-run is a no-op on the content
    assert _live(h, mode) == live


def test_a_range_loads_every_window_of_it_in_one_write(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}")
    load.run(partition="2024-01-01")

    result = load.run(partition="2024-01-01..2024-01-03")

    assert result.targets[0].rows_deleted == 2
    assert [r[0] for r in h.rows("sliced", ["id"])] == [1, 2, 3, 4, 5]


def test_placeholders_bind_the_window_and_skip_the_automatic_filter(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    ts = h.quote("ts")
    load = _declare(
        h,
        f"SELECT id, region, name, ts FROM {src} "
        f"WHERE {ts} >= $partition_start AND {ts} < $partition_end",
    )
    load.run(partition="2024-01-02")
    assert [r[0] for r in h.rows("sliced", ["id"])] == [3, 4]


def test_static_partitions_replace_one_value_each(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    load = _declare(
        h,
        f"SELECT id, region, name, ts FROM {src}",
        partitions=ematix.static("region", ["eu", "us"]),
    )
    load.run(partition="eu")
    load.run(partition="us")
    h.set_rows("src", [(1, "eu", "A", at(1)), (2, "us", "gone", at(1))])

    load.run(partition="eu")

    assert h.rows("sliced", ["id", "name"]) == [(1, "A"), (2, "b"), (4, "d")]


def test_the_run_log_records_the_partition(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}")
    run_log = MemoryRunLog()

    load.run(run_log, partition="2024-01-01")

    record = run_log.last_run("sliced")
    assert record.metrics["partition"] == "2024-01-01"
    assert record.watermark is None


def test_partition_errors_name_the_pipeline_and_the_key(h: Harness) -> None:
    load = _declare(h, "SELECT 1 AS id")
    with pytest.raises(ConfigError, match=r"'sliced' is partitioned on 'ts'"):
        load.run()
    with pytest.raises(ConfigError, match=r"'2024-13-01' is not a daily key"):
        load.run(partition="2024-13-01")
    with pytest.raises(ConfigError, match=r"outside the declared windows"):
        load.run(partition="2023-12-31")
    with pytest.raises(ConfigError, match=r"full_refresh rebuilds whole targets"):
        load.run(partition="2024-01-02", full_refresh=True)


@pytest.mark.parametrize("h", ["duckdb"], indirect=True)  # scheduling is backend-independent
def test_run_due_loads_the_last_window_complete_at_the_fire_time(h: Harness) -> None:
    from datetime import UTC, datetime

    from ematix_engine import run_due

    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}", schedule="0 1 * * *")
    run_log = MemoryRunLog()

    run_due([load], run_log=run_log, now=datetime(2024, 1, 3, 5, tzinfo=UTC))

    assert [r[0] for r in h.rows("sliced", ["id"])] == [3, 4]  # 2024-01-02, closed at 01:00
    assert run_log.last_run("sliced").metrics["partition"] == "2024-01-02"


def test_preview_says_a_partition_is_replaced(h: Harness) -> None:
    load = _declare(h, "SELECT 1 AS id")
    (target,) = load.preview().targets
    assert "delete the partition's rows on ts, then insert" in target.statements[-1]


def test_hourly_windows_on_a_timestamp_without_time_zone(h: Harness) -> None:
    from datetime import datetime

    from ematix_engine.types import Timestamp

    def naive(hour: int, minute: int = 0) -> datetime:
        return datetime(2024, 1, 1, hour, minute)

    src = h.create_source(
        "src",
        {"id": "bigint", "ts": "timestamp"},
        [(1, naive(0)), (2, naive(0, 59)), (3, naive(1)), (4, naive(2, 30))],
    )

    @ematix.table(schema=h.schema, name="hours")
    class Hours:
        id: Annotated[BigInt, pk()]
        ts: Timestamp

    @ematix.pipeline(
        target=Hours,
        name="hours",
        mode="merge",
        partitions=ematix.hourly("ts", start="2024-01-01"),
        **h.pipeline_options,
    )
    def hours(conn):
        return f"SELECT id, ts FROM {src}"

    hours.run(partition="2024-01-01-00:00")
    assert [r[0] for r in h.rows("hours", ["id"])] == [1, 2]
    hours.run(partition="2024-01-01-01:00..2024-01-01-02:00")
    assert [r[0] for r in h.rows("hours", ["id"])] == [1, 2, 3, 4]


def test_static_values_are_cast_to_the_column_type(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    load = _declare(
        h, f"SELECT id, region, name, ts FROM {src}", partitions=ematix.static("id", ["3", "5"])
    )
    load.run(partition="5")
    assert h.rows("sliced", ["id", "name"]) == [(5, "e")]


def test_markers_in_literals_and_comments_are_text(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1 + DAY2 + DAY3)
    ts = h.quote("ts")
    load = _declare(
        h,
        f"SELECT id, region, '$partition_key' AS name, ts FROM {src} "
        f"WHERE {ts} >= $partition_start AND {ts} < $partition_end  -- not $partition_key",
    )
    load.run(partition="2024-01-03")
    assert h.rows("sliced", ["id", "name"]) == [(5, "$partition_key")]


def test_static_partitions_have_no_window_markers(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, DAY1)
    load = _declare(
        h,
        f"SELECT id, region, name, ts FROM {src} WHERE ts >= $partition_start",
        partitions=ematix.static("region", ["eu"]),
    )
    with pytest.raises(ConfigError, match=r"uses \$partition_start, but static partitions"):
        load.run(partition="eu")


@pytest.mark.parametrize("h", ["duckdb"], indirect=True)  # leases are backend-independent
def test_each_partition_holds_its_own_lease(h: Harness) -> None:
    from ematix_engine.batch.orchestrate import pipeline_status
    from ematix_engine.runlog.lease import LeaseHeldError

    src = h.create_source("src", COLUMNS, DAY1 + DAY2)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}")
    run_log = MemoryRunLog()
    assert run_log.claim("sliced[2024-01-01]", "another-worker", 60)  # day 1 loads elsewhere

    load.run(run_log, partition="2024-01-02")  # another day runs side by side
    with pytest.raises(LeaseHeldError, match=r"sliced\[2024-01-01\]"):
        load.run(run_log, partition="2024-01-01")
    assert [r[0] for r in h.rows("sliced", ["id"])] == [3, 4]

    # A running partition's record is probed on its own lease: live, not abandoned.
    record = run_log.record_start("sliced", 9, run_id="elsewhere")
    run_log.record_finish(replace(record, metrics={"partition": "2024-01-01"}))
    (status,) = pipeline_status([load], run_log)
    assert status.last_status == "running (lease held)"
