"""as_of (dlt's boundary_timestamp): a snapshot's versions open and close at the time the data
stands for, not at the wall clock; _loaded_at stays the wall clock; history never runs back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import ConfigError
from ematix_engine.types import BigInt, Text
from tests.integration.batch.harness import Harness, to_dt

COLUMNS = {"id": "bigint", "name": "text"}
JAN, FEB = datetime(2024, 1, 31, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)


def _declare(h: Harness, sql: str):
    @ematix.table(schema=h.schema, name="snap")
    class Snap:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Snap, mode="scd2", deletes="close", name="snap", **h.pipeline_options)
    def snap(conn):
        return sql

    return snap


def test_versions_open_and_close_at_the_snapshot_time(h: Harness) -> None:
    started = datetime.now(UTC)
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = _declare(h, f"SELECT id, name FROM {src}")
    load.run(as_of=JAN)
    h.set_rows("src", [(1, "A")])  # 1 changed, 2 gone
    result = load.run(as_of=FEB)
    assert (result.rows_closed, result.rows_inserted, result.rows_deleted) == (2, 1, 1)

    rows = h.rows("snap", ["id", "name", "valid_from", "valid_to", "_loaded_at"])
    history = [(i, n, to_dt(f), to_dt(t)) for i, n, f, t, _ in rows]
    assert sorted(history, key=lambda r: (r[0], r[2])) == [
        (1, "a", JAN, FEB),
        (1, "A", FEB, None),
        (2, "b", JAN, FEB),
    ]
    assert all(to_dt(loaded) >= started for *_, loaded in rows)  # the wall clock


def test_an_as_of_before_the_newest_version_is_refused(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a")])
    load = _declare(h, f"SELECT id, name FROM {src}")
    load.run(as_of=FEB)
    h.set_rows("src", [(1, "changed")])
    with pytest.raises(ConfigError, match="before the newest version"):
        load.run(as_of=JAN)
    assert h.count("snap") == 1
