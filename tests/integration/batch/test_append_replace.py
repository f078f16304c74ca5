"""append and replace: row counts, managed columns, atomic swap."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import EmatixError
from ematix_engine.types import BigInt, Text
from tests.integration.batch.harness import Harness

COLUMNS = {"id": "bigint", "name": "text"}


def declare(h: Harness, mode: str, sql: str):
    @ematix.table(schema=h.schema, name="events")
    class Events:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.pipeline(target=Events, mode=mode, name=f"load_{mode}", **h.pipeline_options)
    def load(conn):
        return sql

    return load


def test_append_twice_doubles_rows_with_managed_columns(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b"), (3, "c")])
    load = declare(h, "append", f"SELECT id, name FROM {src}")

    first = load.run()
    second = load.run()

    assert (first.rows_inserted, second.rows_inserted) == (3, 3)
    assert second.targets[0].row_count == 6
    assert h.rows("events", ["id", "name"]) == [
        (i, n) for i, n in [(1, "a"), (2, "b"), (3, "c")] for _ in (0, 1)
    ]
    columns = h.columns("events")
    assert columns is not None and {"_loaded_at", "_batch_id"} <= set(columns)
    batches = h.query(f"SELECT DISTINCT _batch_id FROM {h.table('events')} ORDER BY 1")
    assert sorted(b for (b,) in batches) == sorted([first.run_id, second.run_id])
    assert h.count("events", "WHERE _loaded_at IS NULL") == 0


def test_replace_swaps_in_the_new_rows(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, "replace", f"SELECT id, name FROM {src}")
    load.run()
    h.set_rows("src", [(7, "x")])

    result = load.run()

    assert result.rows_inserted == 1 and result.rows_deleted == 2
    assert h.rows("events", ["id", "name", "_batch_id"]) == [(7, "x", result.run_id)]
    assert not h.exists("events__ematix_new")


@pytest.mark.parametrize("failure", ["source_sql", "not_null"])
def test_failing_replace_leaves_the_old_table(h: Harness, failure: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    first_sql = f"SELECT id, name FROM {src}"
    load = declare(h, "replace", first_sql)
    first = load.run()
    if failure == "source_sql":
        load = declare(h, "replace", f"SELECT id, name FROM {h.table('no_such_table')}")
    else:  # name is declared NOT NULL: the insert into the new table fails half-way
        h.set_rows("src", [(5, "e"), (6, None)])

    with pytest.raises(EmatixError):
        load.run()

    assert h.rows("events", ["id", "name", "_batch_id"]) == [
        (1, "a", first.run_id),
        (2, "b", first.run_id),
    ]
    assert not h.exists("events__ematix_new")


def test_replace_with_duplicate_keys_loads_every_row(h: Harness) -> None:
    """replace adds no key constraint (like append); duplicates never become a DB error."""
    src = h.create_source("src", COLUMNS, [(1, "a")])
    load = declare(h, "replace", f"SELECT id, name FROM {src}")
    load.run()
    h.set_rows("src", [(1, "a"), (1, "b")])
    assert load.run().rows_inserted == 2
    assert h.rows("events", ["id", "name"]) == [(1, "a"), (1, "b")]
