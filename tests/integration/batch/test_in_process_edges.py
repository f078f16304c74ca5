"""Edge cases of cross-database loads into PostgreSQL compared in-process (batch/in_process.py):
a key named like a helper column, NULL keys, padded character columns, a lock queued behind
the load, and the rows progress reports."""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import psycopg
import pytest

import ematix_engine.write.in_process as in_process
from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import SourceError
from ematix_engine.types import BigInt, Numeric, Text
from tests.integration.batch.harness import Harness, make_harness


@pytest.fixture
def hx(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """PostgreSQL target, sources in a DuckDB file (the in-process path)."""
    return make_harness("postgres_x", request, tmp_path)


def _declare(h: Harness, name: str, key: str, mode: str, **options):
    table = ematix.table(schema=h.schema, name=name)(
        type("T", (), {"__annotations__": {key: Annotated[BigInt, pk()], "v": Text | None}})
    )
    src = h.table("s")

    def load(conn):
        return f"SELECT * FROM {src}"

    load.__name__ = f"review_{name}"
    return ematix.pipeline(
        target=table, mode=mode, name=f"review_{name}", **h.pipeline_options, **options
    )(load)


def test_merge_with_a_key_named_kind_inserts_new_keys(hx: Harness) -> None:
    """A key named ``kind`` does not collide with the change table's helper column."""
    hx.create_source("s", {"kind": "bigint", "v": "text"}, [(1, "a"), (2, "b")])
    load = _declare(hx, "kinds", "kind", "merge")
    load.run()
    hx.set_rows("s", [(1, "a"), (2, "b"), (10, "new")])
    result = load.run().targets[0]
    assert hx.rows("kinds", ["kind", "v"]) == [(1, "a"), (2, "b"), (10, "new")]
    assert result.rows_inserted == 1


def test_scd2_with_a_key_named_kind_loads_twice(hx: Harness) -> None:
    """The change table's helper column is ``_ematix_kind``, so a key named ``kind`` is fine."""
    hx.create_source("s", {"kind": "bigint", "v": "text"}, [(1, "a")])
    load = _declare(hx, "kinds2", "kind", "scd2")
    load.run()
    hx.set_rows("s", [(1, "b")])
    load.run()  # LoadError: column "kind" specified more than once


@pytest.mark.parametrize("mode", ["merge", "scd2"])
def test_a_null_key_fails_the_load_naming_the_column(hx: Harness, mode: str) -> None:
    """A NULL-key row has no identity: it fails the load instead of vanishing as "absent"."""
    hx.create_source("s", {"id": "bigint", "v": "text"}, [(1, "a")])
    load = _declare(hx, f"nk_{mode}", "id", mode)
    load.run()
    hx.set_rows("s", [(1, "a"), (None, "lost")])
    with pytest.raises(SourceError, match=r"NULL key column \(1 in 'id'\)"):
        load.run()
    assert hx.rows(f"nk_{mode}", ["id", "v"]) == [(1, "a")]


def test_existing_character_column_does_not_change_every_load(hx: Harness) -> None:
    """``character(8)`` is read back as text without its padding, as PostgreSQL compares it;
    compared padded, every load would rewrite every row (SCD2: a new version each time)."""
    hx.create_source("s", {"id": "bigint", "v": "text"}, [(1, "ab"), (2, "cd")])
    hx.execute_target(
        f"CREATE TABLE {hx.table('padded')} (id bigint PRIMARY KEY, v character(8), "
        "_loaded_at timestamptz, _batch_id text)"
    )
    load = _declare(hx, "padded", "id", "merge")
    load.run()
    again = load.run().targets[0]
    assert (again.rows_updated, again.rows_unchanged) == (0, 2)


def test_queued_access_exclusive_lock_does_not_hang_the_load(hx: Harness) -> None:
    """An ACCESS EXCLUSIVE request (ALTER TABLE, TRUNCATE, …) queued behind the load's lock
    must not stall the load: its read of the target (a second connection, which queues behind
    the ALTER, which waits for the load) gives up after a moment and the load compares in
    PostgreSQL instead."""
    hx.create_source("s", {"id": "bigint", "v": "text"}, [(1, "a"), (2, "b")])
    load = _declare(hx, "locked", "id", "merge")
    load.run()
    hx.set_rows("s", [(1, "changed"), (2, "b")])
    assert hx.dsn is not None
    dsn = hx.dsn
    table = hx.table("locked")
    other: dict[str, object] = {}
    original = in_process._pull_current

    def pull_current(prep, ctx, **options):
        def alter() -> None:
            with psycopg.connect(dsn, autocommit=True) as con:
                other["pid"] = con.info.backend_pid
                try:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN extra integer")
                except psycopg.Error as error:
                    other["error"] = error

        # take the load's LOCK first, then queue the ALTER, then read
        ctx.run(f"LOCK TABLE {ctx.table} IN SHARE ROW EXCLUSIVE MODE")
        thread = threading.Thread(target=alter, daemon=True)
        thread.start()
        time.sleep(1.0)
        return original(prep, ctx, **options)

    in_process._pull_current = pull_current
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            load.run()
        except BaseException as error:  # pragma: no cover - reported below
            failure.append(error)
        finally:
            done.set()

    try:
        threading.Thread(target=run, daemon=True).start()
        finished = done.wait(10)
        if not finished:
            with psycopg.connect(dsn, autocommit=True) as con:  # free the load
                con.execute("SELECT pg_cancel_backend(%s)", (other["pid"],))
            done.wait(10)
    finally:
        in_process._pull_current = original
    assert finished, "load, ALTER TABLE and the ADBC read waited on each other for 10 s"


def test_committed_progress_reports_the_source_rows(hx: Harness) -> None:
    """The last event reports the source rows, not the versions written (tombstones)."""
    hx.create_source("s", {"id": "bigint", "v": "text"}, [(1, "a"), (2, "b"), (3, "c")])
    load = _declare(hx, "prog", "id", "scd2", deletes="new_record")
    load.run()
    hx.set_rows("s", [(1, "a")])
    events = []
    load.run(on_progress=events.append)
    assert events[-1].phase == "committed"
    assert events[-1].rows_read == 1  # one source row; two tombstones were written


def test_a_value_without_an_exact_arrow_form_compares_in_postgres_instead(
    hx: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``numeric`` NaN in the target cannot be read back as a decimal: the load compares in
    PostgreSQL (staged temp table), with the same result."""
    hx.create_source("s", {"id": "bigint", "amount": "numeric(12,2)"}, [(1, 1), (2, 2)])

    @ematix.table(schema=hx.schema, name="amounts")
    class Amounts:
        id: Annotated[BigInt, pk()]
        amount: Numeric[12, 2] | None

    @ematix.pipeline(target=Amounts, mode="merge", name="amounts", **hx.pipeline_options)
    def amounts(conn):
        return f"SELECT id, amount FROM {hx.table('s')}"

    amounts.run()
    hx.execute_target(f"UPDATE {hx.table('amounts')} SET amount = 'NaN' WHERE id = 2")

    with caplog.at_level(logging.INFO, logger="ematix.batch"):
        again = amounts.run().targets[0]

    assert "comparing in PostgreSQL instead" in caplog.text
    assert (again.rows_updated, again.rows_unchanged) == (1, 1)  # NaN became 2.00 again
    assert hx.rows("amounts", ["id", "amount"]) == [(1, Decimal("1.00")), (2, Decimal("2.00"))]
