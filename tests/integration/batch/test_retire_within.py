"""retire_within (dlt's merge_key): a snapshot of some regions retires absent keys only in
those regions, for merge and SCD2 (snapshot and event time), on every harness."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import ConfigError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at

COLUMNS = {"id": "bigint", "region": "text", "name": "text", "ts": "timestamptz"}
FIRST = [(1, "eu", "a", at(1)), (2, "eu", "b", at(1)), (3, "us", "c", at(1)), (4, None, "d", at(1))]


def _declare(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="regional")
    class Regional:
        id: Annotated[BigInt, pk()]
        region: Text | None
        name: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(
        target=Regional, name="regional", retire_within=["region"], **h.pipeline_options, **options
    )
    def regional(conn):
        return sql

    return regional


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "merge", "deletes": "close"},
        {"mode": "scd2", "deletes": "close"},
        {"mode": "scd2", "deletes": "new_record"},
        {"mode": "scd2", "deletes": "close", "event_timestamp_column": "ts"},
    ],
    ids=["merge", "scd2-close", "scd2-new_record", "scd2-event-time"],
)
def test_absent_keys_retire_only_in_the_regions_the_batch_covers(h: Harness, options: dict) -> None:
    src = h.create_source("src", COLUMNS, FIRST)
    load = _declare(h, f"SELECT id, region, name, ts FROM {src}", **options)
    load.run()
    h.set_rows(
        "src", [(1, "eu", "a", at(1))]
    )  # only eu: key 2 is gone, 3 (us) and 4 (NULL) are not
    result = load.run()

    assert result.rows_deleted == 1
    if options["mode"] == "merge":
        live = {row[0] for row in h.rows("regional", ["id"])}
    else:
        rows = h.rows("regional", ["id", "is_current", "is_deleted"])
        live = {i for i, cur, dead in rows if cur in (True, 1) and dead in (False, 0)}
    assert live == {1, 3, 4}

    h.set_rows("src", [(5, None, "e", at(1))])  # the NULL region: key 4 retires, 5 is new
    load.run()
    if options["mode"] == "merge":
        live = {row[0] for row in h.rows("regional", ["id"])}
    else:
        rows = h.rows("regional", ["id", "is_current", "is_deleted"])
        live = {i for i, cur, dead in rows if cur in (True, 1) and dead in (False, 0)}
    assert live == {1, 3, 5}


def test_retire_within_needs_deletes(h: Harness) -> None:
    with pytest.raises(ConfigError, match="retire_within"):
        _declare(h, "SELECT 1", mode="scd2")
