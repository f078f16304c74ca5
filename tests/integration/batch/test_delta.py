"""Delta Lake targets: one load is exactly one Delta commit, a failed load is none.

The semantic tests run on Delta through the ``h`` fixture; these check what only Delta has:
the table's version history (``DeltaTable(path).version()``) and its schema's nullability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from deltalake import write_deltalake

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.backends import delta as delta_backend
from ematix_engine.errors import DuplicateKeyError, EmatixError, LoadError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at, make_harness, to_dt

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}


@pytest.fixture
def d(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """A delta harness: target ``default`` (Delta), source tables in DuckDB ``default_src``."""
    return make_harness("delta", request, tmp_path)


def declare(d: Harness, sql: str, mode: str, **options):
    @ematix.table(schema=d.schema, name="t")
    class T:
        id: Annotated[BigInt, pk()]
        name: Text  # NOT NULL
        ts: TimestampTZ | None

    @ematix.pipeline(target=T, mode=mode, name=f"delta_{mode}", **d.pipeline_options, **options)
    def load(conn):
        return sql

    return load


def last_commit(d: Harness) -> dict:
    return d.delta_table("t").history(1)[0]


# After the first load, a load with one changed row and one new key, then the same source again.
NEXT_VERSIONS = {"append": (1, 2), "merge": (1, 1), "scd2": (1, 1), "replace": (1, 2)}


@pytest.mark.parametrize("mode", list(NEXT_VERSIONS))
def test_each_load_is_exactly_one_commit(d: Harness, mode: str) -> None:
    src = d.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(1))])
    load = declare(d, f"SELECT id, name, ts FROM {src}", mode)

    first = load.run()
    assert d.delta_version("t") == 0  # created by the load's one commit
    assert last_commit(d)["ematix.batch_id"] == first.run_id

    d.set_rows("src", [(1, "A", at(2)), (2, "b", at(1)), (3, "c", at(2))])
    second = load.run()
    assert d.delta_version("t") == NEXT_VERSIONS[mode][0]
    commit = last_commit(d)
    assert commit["ematix.batch_id"] == second.run_id
    assert commit["ematix.pipeline"] == f"delta_{mode}"

    load.run()  # the same source again: merge and scd2 have nothing to commit
    assert d.delta_version("t") == NEXT_VERSIONS[mode][1]

    # a new source column (schema evolution) rides in the load's single commit
    d.create_source("src", {**COLUMNS, "extra": "bigint"}, [(1, "A", at(2), 7), (4, "d", at(3), 8)])
    declare(d, f"SELECT id, name, ts, extra FROM {src}", mode).run()
    assert d.delta_version("t") == NEXT_VERSIONS[mode][1] + 1
    assert "extra" in (d.columns("t") or {})
    fields = {f.name: f.nullable for f in d.delta_table("t").schema().to_arrow()}
    assert not fields["id"] and not fields["name"] and fields["extra"]  # NOT NULL is kept


@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("merge", "duplicate_key"),
        ("scd2", "duplicate_key"),
        ("append", "source_sql"),
        ("merge", "source_sql"),
        ("append", "not_null"),
        ("merge", "not_null"),
        ("scd2", "not_null"),
    ],
)
def test_failing_load_creates_no_delta_version(d: Harness, mode: str, failure: str) -> None:
    src = d.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(d, f"SELECT id, name, ts FROM {src}", mode, incremental_column="ts")
    load.run()
    version = d.delta_version("t")
    rows = d.rows("t", ["id", "name", "ts", "_batch_id"])
    watermark = d.watermark(f"delta_{mode}")
    assert to_dt(watermark) == at(1)

    if failure == "duplicate_key":
        d.insert("src", [(2, "b", at(2)), (2, "x", at(2))])
        expected: type[Exception] = DuplicateKeyError
    elif failure == "source_sql":
        d.insert("src", [(2, "b", at(2))])
        load = declare(
            d, f"SELECT id, name, ts, no_such_column FROM {src}", mode, incremental_column="ts"
        )
        expected = EmatixError
    else:  # name is NOT NULL: the Delta table's schema says so and the plan refuses the row
        d.insert("src", [(2, None, at(2))])
        expected = EmatixError

    with pytest.raises(expected):
        load.run()

    assert d.delta_version("t") == version
    assert d.rows("t", ["id", "name", "ts", "_batch_id"]) == rows
    assert d.watermark(f"delta_{mode}") == watermark


def test_watermark_advances_in_a_commit_of_its_own_when_no_row_changes(d: Harness) -> None:
    """Rows above the watermark that change nothing still move it (as on the SQL backends)."""
    src = d.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(
        d,
        f"SELECT id, name, ts FROM {src}",
        "merge",
        incremental_column="ts",
        compare_columns=["name"],
    )
    load.run()
    d.set_rows("src", [(1, "a", at(2))])  # a later event, same compared values

    result = load.run()

    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged) == (0, 0, 1)
    assert to_dt(d.watermark("delta_merge")) == at(2) == to_dt(result.watermark)
    assert d.delta_version("t") == 1
    assert d.rows("t", ["id", "name", "ts"]) == [(1, "a", at(1))]
    assert load.run().rows_unchanged == 0  # nothing above the new watermark
    assert d.delta_version("t") == 1


def test_watermark_survives_many_commits_by_other_writers(
    d: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other writers' commits push ematix's last commit out of the first history page."""
    monkeypatch.setattr(delta_backend, "HISTORY_PAGE", 2)
    src = d.create_source("src", COLUMNS, [(1, "a", at(1))])
    load = declare(d, f"SELECT id, name, ts FROM {src}", "append", incremental_column="ts")
    load.run()
    table = d.delta_table("t")
    for _ in range(3):  # commits without ematix metadata, e.g. a compaction job
        write_deltalake(d.delta_path("t"), table.to_pyarrow_table().slice(0, 0), mode="append")
    d.set_rows("src", [(1, "a", at(1)), (2, "b", at(2))])

    again = load.run()

    assert again.rows_inserted == 1  # only the row above the kept watermark
    assert to_dt(again.watermark) == at(2)


@pytest.mark.parametrize("mode", ["merge", "scd2"])
def test_a_concurrent_commit_fails_the_load_instead_of_being_overwritten(
    d: Harness, mode: str
) -> None:
    """The difference is committed against the version the plan read: a commit made in
    between (here: to the very row the load changes) is a conflict, never silently lost."""
    src = d.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(1))])
    sql = f"SELECT id, name, ts FROM {src}"
    declare(d, sql, mode).run()
    d.set_rows("src", [(1, "A", at(1)), (2, "b", at(1))])

    @ematix.table(schema=d.schema, name="t")
    class T:
        id: Annotated[BigInt, pk()]
        name: Text
        ts: TimestampTZ | None

    @ematix.pipeline(target=T, mode=mode, name=f"delta_{mode}", **d.pipeline_options)
    def racing(conn):  # runs after the plan took its snapshot, before the commit
        d.delta_table("t").update(new_values={"name": "other writer"}, predicate="id = 1")
        return sql

    with pytest.raises(LoadError, match="Delta commit failed"):
        racing.run()

    assert d.delta_version("t") == 1  # the other writer's commit only
    assert [n for _, n in d.rows("t", ["id", "name"])] == ["other writer", "b"]
