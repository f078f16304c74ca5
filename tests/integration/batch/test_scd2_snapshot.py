"""SCD2 over full snapshots: no-op re-runs, versions on change, deletes, tombstones, TTL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.errors import DuplicateKeyError
from ematix_engine.types import BigInt, Text
from tests.integration.batch.harness import Harness, assert_scd2_invariants, history

COLUMNS = {"id": "bigint", "name": "text"}


def declare(h: Harness, sql: str, **options):
    @ematix.table(schema=h.schema, name="dim")
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Dim, mode="scd2", name="dim_scd2", **h.pipeline_options, **options)
    def dim_scd2(conn):
        return sql

    return dim_scd2


def counts(result) -> tuple[int, int, int, int, int]:
    return (
        result.rows_inserted,
        result.rows_updated,
        result.rows_unchanged,
        result.rows_closed,
        result.rows_deleted,
    )


def test_first_load_then_rerun_is_a_no_op(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b"), (3, None)])
    load = declare(h, f"SELECT id, name FROM {src}")

    first = load.run()
    second = load.run()

    assert counts(first) == (3, 0, 0, 0, 0)
    assert counts(second) == (0, 0, 3, 0, 0)
    assert h.count("dim") == 3
    assert h.count("dim", f"WHERE _batch_id = '{second.run_id}'") == 0
    versions = assert_scd2_invariants(h, "dim", ["id"])
    assert all(len(v) == 1 and not v[0]["is_deleted"] for v in versions.values())
    assert {"valid_from", "valid_to", "is_current", "row_hash"} <= set(h.columns("dim") or {})


def test_change_closes_old_version_and_opens_a_new_one(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}")
    load.run()
    h.set_rows("src", [(1, "a"), (2, "B"), (3, "c")])

    result = load.run()

    assert counts(result) == (2, 0, 1, 1, 0)
    versions = assert_scd2_invariants(h, "dim", ["id"])
    old, new = versions[(2,)]
    assert old["valid_to"] == new["valid_from"] and not old["is_current"]
    assert new["is_current"] and new["valid_to"] is None
    assert h.rows("dim", ["id", "name", "is_current"], order_by=["id", "valid_from"]) == [
        (1, "a", True),
        (2, "b", False),
        (2, "B", True),
        (3, "c", True),
    ]
    assert old["row_hash"] != new["row_hash"]


def test_deletes_close_closes_absent_keys(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", deletes="close")
    load.run()
    h.set_rows("src", [(1, "a")])

    result = load.run()

    assert counts(result) == (0, 0, 1, 1, 1)
    assert_scd2_invariants(h, "dim", ["id"], closed_keys=[(2,)])
    assert h.count("dim") == 2
    rerun = load.run()  # the closed key stays closed, nothing else happens
    assert counts(rerun) == (0, 0, 1, 0, 0)

    h.set_rows("src", [(1, "a"), (2, "b")])  # the key comes back: a new current version
    back = load.run()
    assert (back.rows_inserted, back.rows_closed) == (1, 0)
    versions = history(h, "dim", ["id"])
    assert [v["is_current"] for v in versions[(2,)]] == [False, True]
    assert versions[(2,)][0]["valid_to"] < versions[(2,)][1]["valid_from"]  # the gap is real


def test_deletes_new_record_writes_a_tombstone_and_reopens(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", deletes="new_record")
    load.run()
    h.set_rows("src", [(1, "a")])

    result = load.run()

    assert (result.rows_deleted, result.rows_closed, result.rows_inserted) == (1, 1, 1)
    versions = assert_scd2_invariants(h, "dim", ["id"])
    live, tomb = versions[(2,)]
    assert not live["is_deleted"] and live["valid_to"] == tomb["valid_from"]
    assert tomb["is_deleted"] and tomb["is_current"] and tomb["valid_to"] is None
    assert counts(load.run()) == (0, 0, 1, 0, 0)  # the tombstone is not repeated

    h.set_rows("src", [(1, "a"), (2, "b")])  # reappears with the same values as before
    back = load.run()

    assert (back.rows_inserted, back.rows_closed) == (1, 1)
    versions = assert_scd2_invariants(h, "dim", ["id"])
    assert [(v["is_deleted"], v["is_current"]) for v in versions[(2,)]] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert h.rows("dim", ["id", "name"], order_by=["id", "valid_from"])[-1] == (2, "b")


def test_duplicate_keys_in_a_snapshot_raise(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (1, "b")])
    load = declare(h, f"SELECT id, name FROM {src}")
    with pytest.raises(DuplicateKeyError, match="dim_scd2") as caught:
        load.run()
    assert caught.value.key == {"id": 1}


def backdate(h: Harness, key: int, seconds: float) -> None:
    old = datetime.now(UTC) - timedelta(seconds=seconds)
    if h.target_kind == "delta":  # a commit of its own, outside any load
        h.delta_table("dim").update(
            new_values={"valid_from": old}, predicate=f"id = {key} AND is_current"
        )
        return
    h.execute_target(
        f"UPDATE {h.table('dim')} SET valid_from = {h.marker} WHERE id = {key} AND is_current",
        (old,),
    )


def test_ttl_closes_stale_current_rows_the_batch_lacks(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b"), (3, "c")])
    load = declare(h, f"SELECT id, name FROM {src}", ttl_seconds=3600)
    load.run()
    backdate(h, 1, 7200)  # stale and absent: closed
    backdate(h, 2, 7200)  # stale but present: kept
    h.set_rows("src", [(2, "b")])  # 3 is absent but fresh: kept

    result = load.run()

    assert result.rows_closed == 1
    versions = history(h, "dim", ["id"])
    assert [v["is_current"] for v in versions[(1,)]] == [False]
    assert versions[(1,)][0]["valid_to"] is not None
    assert versions[(2,)][-1]["is_current"] and versions[(3,)][-1]["is_current"]


@pytest.mark.parametrize("h", ["duckdb"], indirect=True)
def test_ttl_with_real_time_passing(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a"), (2, "b")])
    load = declare(h, f"SELECT id, name FROM {src}", ttl_seconds=1)
    load.run()
    time.sleep(1.1)
    h.set_rows("src", [(2, "b")])
    result = load.run()
    assert result.rows_closed == 1
    assert h.rows("dim", ["id", "is_current"]) == [(1, False), (2, True)]
