"""Normalizers apply before hashing; dry_run() and preview() leave the target untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.normalize import empty_to_null, lower, trim
from ematix_engine.types import BigInt, String, Text
from tests.integration.batch.harness import Harness, make_harness


def test_lower_trim_empty_to_null(h: Harness) -> None:
    rows = [(1, "  Foo@Example.COM ", " X "), (2, "   ", "Y"), (3, "", ""), (4, None, None)]
    src = h.create_source("src", {"id": "bigint", "email": "text", "code": "text"}, rows)

    @ematix.table(schema=h.schema, name="users")
    class Users:
        id: Annotated[BigInt, pk()]
        email: Annotated[String[256] | None, lower(), trim(), empty_to_null()]
        code: Annotated[Text, trim()] | None

    @ematix.pipeline(target=Users, mode="scd2", name="users_load", **h.pipeline_options)
    def users_load(conn):
        return f"SELECT id, email, code FROM {src}"

    users_load.run()
    assert h.rows("users", ["id", "email", "code"]) == [
        (1, "foo@example.com", "X"),
        (2, None, "Y"),
        (3, None, ""),
        (4, None, None),
    ]
    # the same values spelled differently normalise to the same row_hash: no new versions
    h.set_rows(
        "src", [(1, "FOO@example.com", "X  "), (2, "", " Y"), (3, None, ""), (4, None, None)]
    )
    again = users_load.run()
    assert (again.rows_inserted, again.rows_closed, again.rows_unchanged) == (0, 0, 4)


def declare(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="dry")
    class Dry:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Dry, name="dry_load", **h.pipeline_options, **options)
    def dry_load(conn):
        return sql

    return dry_load


def test_dry_run_on_a_new_target_creates_nothing(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", mode="merge", incremental_column="id")

    result = load.dry_run()

    assert result.dry_run and result.rows_inserted == 2
    assert not h.exists("dry")
    assert h.watermark("dry_load") is None


def test_dry_run_reports_counts_and_rolls_back(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", mode="scd2", deletes="close")
    first = load.run()
    h.set_rows("src", [(1, "A"), (3, "c")])
    before = h.rows("dry", ["id", "name", "valid_from", "valid_to", "is_current", "_batch_id"])

    result = load.dry_run()

    assert (result.rows_inserted, result.rows_closed, result.rows_deleted) == (2, 2, 1)
    assert (
        h.rows("dry", ["id", "name", "valid_from", "valid_to", "is_current", "_batch_id"]) == before
    )
    assert all(batch == first.run_id for *_, batch in before)


def test_dry_run_keeps_the_watermark(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", mode="append", incremental_column="id")
    load.run()
    h.insert("src", [(3, "c")])
    assert load.dry_run().rows_inserted == 1
    assert h.watermark("dry_load") == "2" and h.count("dry") == 2
    assert load.run().rows_inserted == 1


def test_preview_writes_nothing_and_names_the_mode(h: Harness) -> None:
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a")])
    load = declare(h, f"SELECT id, name FROM {src}", mode="scd2")

    preview = load.preview()

    text = str(preview)
    assert "scd2" in text and "dry_load" in text and "SELECT id, name" in text
    assert preview.targets[0].mode == "scd2"
    # delta, postgres_x: the source tables live in a DuckDB file, staged across databases
    assert preview.targets[0].same_database == (not h.cross_database)
    assert not h.exists("dry")


def test_preview_of_a_cross_database_load_into_postgres_names_the_in_process_compare(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    h = make_harness("postgres_x", request, tmp_path)
    src = h.create_source("src", {"id": "bigint", "name": "text"}, [(1, "a")])
    merge = declare(h, f"SELECT id, name FROM {src}", mode="merge").preview()
    assert any("compare there" in step for step in merge.targets[0].statements)
    appended = declare(h, f"SELECT id, name FROM {src}", mode="append").preview()
    assert any("into a temp table, then append" in s for s in appended.targets[0].statements)
