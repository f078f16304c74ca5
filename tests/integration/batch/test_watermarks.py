"""incremental_column and $watermark: strictly greater, advanced only with the rows it covers."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import DuplicateKeyError, EmatixError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at, to_dt

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


def declare(h: Harness, sql: str, *, mode: str = "append", column: str = "id"):
    @ematix.table(schema=h.schema, name="inc")
    class Inc:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ

    @ematix.pipeline(
        target=Inc,
        mode=mode,
        incremental_column=column,
        name=f"inc_{mode}",
        **h.pipeline_options,
    )
    def load(conn):
        return sql

    return load


@pytest.mark.parametrize("style", ["implicit", "placeholder"])
def test_only_rows_above_the_watermark_load(h: Harness, style: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(2))])
    where = " WHERE id > $watermark" if style == "placeholder" else ""
    load = declare(h, f"SELECT id, name, ts FROM {src}{where}")

    first = load.run()
    assert first.rows_inserted == 2 and first.watermark == "2"
    assert h.watermark("inc_append") == "2"

    h.insert("src", [(2, "b-again", at(2)), (3, "c", at(3))])  # 2 is not strictly greater
    second = load.run()

    assert second.rows_inserted == 1 and second.watermark == "3"
    assert h.rows("inc", ["id", "name"]) == [(1, "a"), (2, "b"), (3, "c")]

    third = load.run()  # nothing new: watermark stays
    assert third.rows_inserted == 0 and h.watermark("inc_append") == "3"


def test_timestamp_watermark(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(2, 30))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", mode="merge", column="ts")
    load.run()
    assert to_dt(h.watermark("inc_merge")) == at(2, 30)
    h.insert("src", [(3, "c", at(2, 30)), (4, "d", at(3))])
    result = load.run()
    assert result.rows_inserted == 1
    assert h.rows("inc", ["id"]) == [(1,), (2,), (4,)]
    assert to_dt(h.watermark("inc_merge")) == at(3)


def test_failing_source_leaves_rows_and_watermark(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}")
    first = load.run()
    h.insert("src", [(2, "b", at(2))])
    broken = declare(h, f"SELECT id, name, ts, no_such_column FROM {src}")

    with pytest.raises(EmatixError):
        broken.run()

    assert h.rows("inc", ["id", "_batch_id"]) == [(1, first.run_id)]
    assert h.watermark("inc_append") == "1"
    assert load.run().rows_inserted == 1  # the rows are still there to load
    assert h.watermark("inc_append") == "2"


def test_duplicate_key_error_leaves_rows_and_watermark(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(h, f"SELECT id, name, ts FROM {src}", mode="merge")
    load.run()
    h.insert("src", [(2, "b", at(2)), (2, "x", at(2)), (3, "c", at(3))])

    with pytest.raises(DuplicateKeyError):
        load.run()

    assert h.rows("inc", ["id", "name"]) == [(1, "a")]
    assert h.watermark("inc_merge") == "1"
