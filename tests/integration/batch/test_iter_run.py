"""iter_run: the public run iterator (events in order, target subsets, RunLog bookkeeping,
failures raised after they are recorded, cancellation rolls the load back)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import pytest

from ematix_engine import (
    DuckDBConnection,
    LoadProgress,
    RunResult,
    RunStarted,
    RunStatus,
    TargetResult,
    UnknownNameError,
    ematix,
    iter_run,
    pk,
)
from ematix_engine.batch.runner import RunCancelled
from ematix_engine.runlog import MemoryRunLog
from ematix_engine.types import BigInt, Text

pytestmark = pytest.mark.integration


def _pipeline(path: Path, sql: str = "SELECT 1 AS id, 'a' AS name", *, gate=None):
    conn = DuckDBConnection(name="it", path=str(path / "it.duckdb"))

    @ematix.table(schema="s", name="first", connection=conn)
    class First:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.table(schema="s", name="second", connection=conn)
    class Second:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(
        targets=[ematix.target(First, mode="merge"), ematix.target(Second, mode="merge")],
        name="two_targets",
    )
    def two_targets(c):
        if gate is not None:
            gate()
        return sql

    return two_targets, conn


def _count(conn: DuckDBConnection, table: str) -> int:
    import duckdb

    with duckdb.connect(conn.path) as con:
        exists = con.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()[0]
        return con.execute(f"SELECT COUNT(*) FROM s.{table}").fetchone()[0] if exists else 0


def test_events_arrive_in_order_and_are_recorded(tmp_path: Path) -> None:
    pipeline, _ = _pipeline(tmp_path)
    log = MemoryRunLog()
    events = list(iter_run(pipeline, run_log=log, run_metrics={"orchestrator": "x"}))

    assert isinstance(events[0], RunStarted) and events[0].attempt == 1
    assert events[0].targets == ("s.first", "s.second")
    assert isinstance(events[-1], RunResult) and events[-1].rows_inserted == 2
    results = [e for e in events if isinstance(e, TargetResult)]
    assert [r.target for r in results] == ["s.first", "s.second"]
    assert all(isinstance(e, LoadProgress) for e in events[1:-1] if e not in results)
    committed = [e for e in events if isinstance(e, LoadProgress) and e.committed]
    assert [e.target for e in committed] == ["s.first", "s.second"]
    record = log.last_run("two_targets")
    assert record is not None and record.status is RunStatus.SUCCESS
    assert record.metrics["orchestrator"] == "x"
    assert record.metrics["targets"] == ["s.first", "s.second"]


def test_a_subset_of_targets_loads_only_those(tmp_path: Path) -> None:
    pipeline, conn = _pipeline(tmp_path)
    results = [e for e in iter_run(pipeline, targets=["s.second"]) if isinstance(e, TargetResult)]
    assert [r.target for r in results] == ["s.second"]
    assert (_count(conn, "first"), _count(conn, "second")) == (0, 1)
    with pytest.raises(UnknownNameError, match=r"s\.thrid"):
        list(iter_run(pipeline, targets=["s.thrid"]))


def test_a_failure_is_recorded_then_raised(tmp_path: Path) -> None:
    pipeline, _ = _pipeline(tmp_path, "SELECT no_such_column FROM (SELECT 1 AS id)")
    log = MemoryRunLog()
    with pytest.raises(Exception, match="no_such_column"):
        list(iter_run(pipeline, run_log=log))
    record = log.last_run("two_targets")
    assert record is not None and record.status in (RunStatus.FAILED, RunStatus.GAVE_UP)


def test_closing_the_iterator_cancels_and_rolls_back(tmp_path: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def gate() -> None:  # the SQL of each target renders inside its write
        calls.append(1)
        if len(calls) == 2:  # the second target: hold its write open until told
            started.set()
            release.wait(timeout=30)

    pipeline, conn = _pipeline(tmp_path, gate=gate)
    log = MemoryRunLog()
    events = iter_run(pipeline, run_log=log)
    for event in events:
        if isinstance(event, TargetResult):  # the first target is done
            break
    started.wait(timeout=30)  # the second target's write is under way
    release.set()
    events.close()  # cancels at the second target's next progress point

    assert _count(conn, "first") == 1
    assert _count(conn, "second") == 0
    record = log.last_run("two_targets")
    assert record is not None and record.status is not RunStatus.SUCCESS
    assert "cancelled" in (record.error or "")
    assert issubclass(RunCancelled, BaseException)
