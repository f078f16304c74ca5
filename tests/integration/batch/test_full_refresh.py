"""Full refresh: every mode rebuilds its target from the source and resets the watermark."""

from __future__ import annotations

from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import DuplicateKeyError
from ematix_engine.types import BigInt, Text
from tests.integration.batch.harness import Harness, assert_scd2_invariants

COLUMNS = {"id": "bigint", "name": "text"}


def declare(h: Harness, src: str, mode: str, *, incremental: bool = False):
    @ematix.table(schema=h.schema, name="fr")
    class Fr:
        id: Annotated[BigInt, pk()]
        name: Text | None

    options = {"incremental_column": "id"} if incremental else {}

    @ematix.pipeline(target=Fr, mode=mode, name=f"fr_{mode}", **options, **h.pipeline_options)
    def load(conn):
        return f"SELECT id, name FROM {src}"

    return load


@pytest.mark.parametrize("mode", ["append", "merge", "scd2", "replace"])
def test_full_refresh_rebuilds_every_mode_from_the_source(h: Harness, mode: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b"), (3, "c")])
    load = declare(h, src, mode)
    load.run()
    h.execute(f"DELETE FROM {src} WHERE id = 3")
    h.execute(f"UPDATE {src} SET name = 'B' WHERE id = 2")
    load.run()  # history, duplicates or closed versions, depending on the mode
    h.insert("src", [(4, "d")])

    result = load.run(full_refresh=True)

    assert h.rows("fr", ["id", "name"], order_by=["id"]) == [(1, "a"), (2, "B"), (4, "d")]
    assert result.rows_inserted == 3
    assert result.targets[0].row_count == 3
    if mode == "scd2":  # history starts again: one current version per source row
        versions = assert_scd2_invariants(h, "fr", ["id"])
        assert all(len(v) == 1 and v[0]["is_current"] for v in versions.values())


def test_full_refresh_resets_the_watermark(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, src, "append", incremental=True)
    load.run()
    h.execute(f"UPDATE {src} SET name = 'A' WHERE id = 1")  # below the watermark: not loaded
    assert load.run().rows_inserted == 0
    assert h.rows("fr", ["id", "name"], order_by=["id"]) == [(1, "a"), (2, "b")]

    result = load.run(full_refresh=True)

    assert result.rows_inserted == 2 and result.watermark == "2"
    assert h.rows("fr", ["id", "name"], order_by=["id"]) == [(1, "A"), (2, "b")]
    assert h.watermark("fr_append") == "2"


def test_full_refresh_of_an_empty_source_empties_the_target_and_the_watermark(
    h: Harness,
) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, src, "merge", incremental=True)
    load.run()
    h.execute(f"DELETE FROM {src}")

    load.run(full_refresh=True)

    assert h.count("fr") == 0
    h.insert("src", [(1, "again")])  # below the old watermark, above the reset one
    assert load.run().rows_inserted == 1


def test_full_refresh_dry_run_changes_nothing(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a")])
    load = declare(h, src, "scd2")
    load.run()
    h.execute(f"DELETE FROM {src}")

    rehearsal = load.dry_run(full_refresh=True)

    assert rehearsal.rows_inserted == 0
    assert h.rows("fr", ["id", "name"]) == [(1, "a")]


def test_a_failed_full_refresh_keeps_the_old_rows_and_watermark(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, src, "merge", incremental=True)
    load.run()
    h.insert("src", [(3, "c"), (3, "duplicate key")])

    with pytest.raises(DuplicateKeyError):
        load.run(full_refresh=True)

    assert h.rows("fr", ["id", "name"], order_by=["id"]) == [(1, "a"), (2, "b")]
    assert h.watermark("fr_merge") == "2"
