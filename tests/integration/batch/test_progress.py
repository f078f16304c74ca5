"""Load progress: phases in order, rows counted batch by batch, a failing callback ignored."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Annotated

import pytest
from rich.console import Console

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.cli.progress import LoadDisplay
from ematix_engine.types import BigInt, Text
from ematix_engine.write.progress import LoadProgress
from tests.integration.batch.harness import Harness, make_harness

ROWS = [(i, f"n{i}") for i in range(5)]


def declare(h: Harness, src: str, **options):
    @ematix.table(schema=h.schema, name="items")
    class Items:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Items, mode="merge", name="items", **options)
    def items(conn):
        return f"SELECT id, name FROM {src}"

    return items


def test_streamed_load_reports_phases_and_rows_per_batch(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = make_harness("duckdb", request, tmp_path, name="src")
    target = make_harness("sqlite", request, tmp_path, name="default")
    load = declare(
        target,
        source.create_source("s", {"id": "bigint", "name": "text"}, ROWS),
        source_connection="src",
    )
    events: list[LoadProgress] = []

    load.run(batch_size=2, on_progress=events.append)

    assert [(e.phase, e.rows_read) for e in events] == [
        ("reading source", 0),
        ("reading source", 2),
        ("reading source", 4),
        ("reading source", 5),
        ("preparing", 5),
        ("writing", 5),
        ("committed", 5),
    ]
    assert {(e.pipeline, e.target) for e in events} == {("items", f"{target.schema}.items")}


def test_same_database_load_reports_its_rows_when_committed(h: Harness) -> None:
    load = declare(
        h, h.create_source("s", {"id": "bigint", "name": "text"}, ROWS), **h.pipeline_options
    )
    events: list[LoadProgress] = []

    load.run(on_progress=events.append)

    phases = [e.phase for e in events]
    assert phases[0] == "reading source" and phases[-3:] == ["preparing", "writing", "committed"]
    assert events[-1].rows_read == 5


def test_a_failing_progress_callback_does_not_fail_the_load(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = make_harness("duckdb", request, tmp_path, name="default")
    load = declare(target, target.create_source("s", {"id": "bigint", "name": "text"}, ROWS))

    def broken(_event: LoadProgress) -> None:
        raise RuntimeError("display gone")

    with caplog.at_level(logging.WARNING, logger="ematix.batch"):
        assert load.run(on_progress=broken).rows_inserted == 5
    assert "progress callback failed" in caplog.text


def test_load_display_draws_a_bar_per_target_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with LoadDisplay(console) as display:
        display.update(LoadProgress("items", "shop.items", "reading source", 1_500))
        display.update(LoadProgress("items", "shop.items", "committed", 3_000))
        display.update(LoadProgress("orders", "shop.orders", "writing", 0))

    text = out.getvalue()
    assert "items → shop.items: committed" in text and "3,000 rows" in text
    assert "orders → shop.orders: writing" in text


def test_load_display_prints_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    with LoadDisplay(Console(file=out, force_terminal=False)) as display:
        display.update(LoadProgress("items", "shop.items", "committed", 3))
    assert out.getvalue() == ""


def test_a_dry_run_ends_rolled_back(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    target = make_harness("duckdb", request, tmp_path, name="default")
    load = declare(target, target.create_source("s", {"id": "bigint", "name": "text"}, ROWS))
    events: list[LoadProgress] = []

    assert load.dry_run(on_progress=events.append).rows_inserted == 5

    assert [e.phase for e in events][-2:] == ["writing", "rolled back"]
    assert events[-1].rows_read == 5
    assert not target.exists("items")
