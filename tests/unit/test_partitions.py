"""Partition declarations: keys, windows, ranges, and the errors of a bad declaration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import pytest

from ematix_engine import ConfigError, DuckDBConnection, ematix, pk
from ematix_engine.partitions import Partition, StaticPartitions, TimeWindowPartitions
from ematix_engine.types import BigInt, Date, Text, TimestampTZ


def test_windows_and_keys_match_dagsters_formats() -> None:
    hours = ematix.hourly("ts", start="2024-01-01")
    assert hours.partition("2024-01-02-13:00").start == datetime(2024, 1, 2, 13, tzinfo=UTC)
    assert hours.keys(until=datetime(2024, 1, 1, 2, 30, tzinfo=UTC)) == [
        "2024-01-01-00:00",
        "2024-01-01-01:00",
    ]
    months = ematix.monthly("day", start="2024-11-01")
    december = months.partition("2024-12-01")
    assert (december.start.month, december.end.year, december.end.month) == (12, 2025, 1)
    days = ematix.daily("day", start="2024-01-01", end="2024-01-04")
    assert days.keys(until=datetime(2030, 1, 1, tzinfo=UTC)) == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]
    ranged = days.partition("2024-01-01..2024-01-03")
    assert ranged == Partition(
        key="2024-01-01..2024-01-03",
        column="day",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 1, 4, tzinfo=UTC),
    )
    assert hash(days) == hash(ematix.daily("day", start="2024-01-01", end="2024-01-04"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ematix.daily("d", start="first of may"), "not an ISO date"),
        (lambda: ematix.daily("d", start="2024-01-01T06:00"), "window boundary"),
        (lambda: ematix.monthly("d", start="2024-01-15"), "window boundary"),
        (lambda: ematix.daily("d", start="2024-01-02", end="2024-01-01"), "end must be after"),
        (lambda: ematix.static("r", []), "at least one value"),
        (lambda: ematix.static("r", ["eu", "eu"]), "'eu' is listed twice"),
        (lambda: ematix.static("r", "eu"), "must be a list"),
    ],
)
def test_bad_declarations_are_refused(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_bad_keys_name_the_pipeline() -> None:
    days = ematix.daily("d", start="2024-01-01")
    with pytest.raises(ConfigError, match=r"pipeline 'p': partition range .* ends before"):
        days.partition("2024-01-03..2024-01-01", "p")
    regions = ematix.static("region", ["eu", "us"])
    with pytest.raises(ConfigError, match=r"did you mean 'eu'"):
        regions.partition("euu", "p")
    with pytest.raises(ConfigError, match="one value per run"):
        regions.partition("eu..us", "p")


def _table():
    @ematix.table(schema="s", connection=DuckDBConnection(name="m", path=":memory:"))
    class Events:
        id: Annotated[BigInt, pk()]
        day: Date
        ts: TimestampTZ | None
        name: Text | None

    return Events


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partitions": ematix.daily("nope", start="2024-01-01")}, "has no column 'nope'"),
        ({"partitions": ematix.daily("name", start="2024-01-01")}, "need a date or timestamp"),
        ({"partitions": ematix.hourly("day", start="2024-01-01")}, "hourly windows need a time"),
        (
            {"partitions": ematix.daily("day", start="2024-01-01"), "incremental_column": "ts"},
            "keeps no watermark",
        ),
        ({"partitions": "daily"}, "must be ematix.daily"),
    ],
)
def test_pipeline_declarations_check_the_partition_column(options: dict, message: str) -> None:
    table = _table()
    with pytest.raises(ConfigError, match=message):

        @ematix.pipeline(target=table, name="bad_partitions", **options)
        def bad(conn):
            return "SELECT 1"


def test_specs_are_frozen_records() -> None:
    assert isinstance(ematix.daily("d", start="2024-01-01"), TimeWindowPartitions)
    assert isinstance(ematix.static("r", ["a"]), StaticPartitions)
    with pytest.raises(AttributeError):
        ematix.static("r", ["a"]).column = "x"  # type: ignore[misc]
