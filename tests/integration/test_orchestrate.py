"""run_due: dependency order, upstream skips, retries that survive restarts, alerts, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import duckdb
import pytest

from ematix_engine import ematix, pk, register_connection
from ematix_engine.batch.orchestrate import FiringStatus, run_due
from ematix_engine.connections import DuckDBConnection, PostgresConnection
from ematix_engine.errors import CycleError, UnknownNameError
from ematix_engine.ops.events import AlertEvent
from ematix_engine.runlog import RunStatus, open_run_log
from ematix_engine.types import BigInt, Text


class CollectingAlerter:
    """A real alerter that keeps what it is sent (the Alerter protocol is one method)."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def send(self, event: AlertEvent) -> None:
        self.events.append(event)


class BrokenAlerter:
    def send(self, event: AlertEvent) -> None:
        raise RuntimeError("webhook down")


@pytest.fixture
def warehouse(tmp_duckdb_path: Path) -> Path:
    register_connection(DuckDBConnection(name="default", path=str(tmp_duckdb_path)))
    with duckdb.connect(str(tmp_duckdb_path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute(
            "CREATE TABLE raw.things AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(id, name)"
        )
    return tmp_duckdb_path


def _declare(schedule: str = "0 0 1 1 *", retry: dict | None = None, source: str = "raw.things"):
    @ematix.table(schema="an")
    class Things:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.table(schema="an")
    class Summary:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=Things, mode="merge", schedule=schedule, retry=retry)
    def things(conn):
        return f"SELECT id, name FROM {source}"

    @ematix.pipeline(target=Summary, mode="merge", schedule=schedule, depends_on=["things"])
    def summary(conn):
        return "SELECT id FROM an.things"

    return things, summary


def test_upstreams_fire_first_and_downstream_runs(warehouse: Path, tmp_path: Path) -> None:
    things, summary = _declare()
    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    firings = run_due([summary, things], run_log=log, force=["things", "summary"])
    assert [(f.pipeline, f.status) for f in firings] == [
        ("things", FiringStatus.SUCCESS),
        ("summary", FiringStatus.SUCCESS),
    ]
    again = run_due([summary, things], run_log=log)
    assert {f.status for f in again} == {FiringStatus.NOT_DUE}


def test_failed_upstream_skips_downstream_with_reason(warehouse: Path, tmp_path: Path) -> None:
    things, summary = _declare(source="raw.missing_table")
    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    firings = run_due([things, summary], run_log=log, force=["things", "summary"])
    assert [f.status for f in firings] == [FiringStatus.GAVE_UP, FiringStatus.SKIPPED]
    assert "missing_table" in firings[0].error
    skipped = log.last_run("summary")
    assert skipped.status is RunStatus.SKIPPED
    assert "waiting on upstream 'things'" in skipped.reason


def test_retry_backoff_survives_a_restart_then_recovers(warehouse: Path, tmp_path: Path) -> None:
    retry = {"max_attempts": 3, "backoff_seconds": 60, "backoff_factor": 2.0, "jitter": 0}
    things, _ = _declare(retry=retry, source="raw.later")
    url = f"sqlite://{tmp_path / 'runs.db'}"
    alerts = CollectingAlerter()
    now = datetime.now(UTC)

    first = run_due(
        [things],
        run_log=open_run_log(url),
        alerters=[alerts, BrokenAlerter()],
        now=now,
        force=["things"],
    )
    assert (first[0].status, first[0].attempt) == (FiringStatus.FAILED, 1)

    # A new process (new RunLog instance on the same file) must wait out the 60 s backoff …
    waiting = run_due([things], run_log=open_run_log(url), now=now + timedelta(seconds=5))
    assert waiting[0].status is FiringStatus.WAITING_RETRY

    # … then fire attempt 2, which fails again (backoff doubles to 120 s).
    second = run_due(
        [things], run_log=open_run_log(url), alerters=[alerts], now=now + timedelta(seconds=61)
    )
    assert (second[0].status, second[0].attempt) == (FiringStatus.FAILED, 2)
    too_soon = run_due([things], run_log=open_run_log(url), now=now + timedelta(seconds=100))
    assert too_soon[0].status is FiringStatus.WAITING_RETRY

    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE raw.later AS SELECT * FROM raw.things")
    third = run_due(
        [things], run_log=open_run_log(url), alerters=[alerts], now=now + timedelta(seconds=400)
    )
    assert (third[0].status, third[0].attempt) == (FiringStatus.SUCCESS, 3)
    assert [e.kind.value for e in alerts.events] == ["failed", "failed", "recovered"]
    assert alerts.events[-1].failed_attempts == 2


def test_last_attempt_gives_up_and_alerts(warehouse: Path, tmp_path: Path) -> None:
    things, _ = _declare(retry={"max_attempts": 1}, source="raw.nope")
    alerts = CollectingAlerter()
    firings = run_due(
        [things], run_log=open_run_log("memory://"), alerters=[alerts], force=["things"]
    )
    assert firings[0].status is FiringStatus.GAVE_UP
    assert [e.kind.value for e in alerts.events] == ["gave_up"]


def test_a_terminal_error_gives_up_at_once_despite_attempts_left(
    warehouse: Path, tmp_path: Path
) -> None:
    retry = {"max_attempts": 3, "backoff_seconds": 60, "jitter": 0}
    # A column the source does not have: a SQL error no retry can fix.
    things, _ = _declare(retry=retry, source="raw.things WHERE no_such_column = 1")
    url = f"sqlite://{tmp_path / 'runs.db'}"
    alerts = CollectingAlerter()
    now = datetime.now(UTC)

    first = run_due(
        [things], run_log=open_run_log(url), alerters=[alerts], now=now, force=["things"]
    )
    assert (first[0].status, first[0].attempt) == (FiringStatus.GAVE_UP, 1)
    assert "no_such_column" in first[0].error
    assert [e.kind.value for e in alerts.events] == ["gave_up"]
    log = open_run_log(url)
    assert log.last_run("things").status is RunStatus.GAVE_UP
    assert log.attempt_state("things").gave_up

    # No retry is pending: a later tick waits for the schedule, not for a backoff.
    later = run_due([things], run_log=log, now=now + timedelta(seconds=600))
    assert later[0].status is FiringStatus.NOT_DUE


def test_a_transient_error_schedules_a_retry(warehouse: Path, tmp_path: Path) -> None:
    # Nothing listens on port 1: the source connection is refused, which a retry may fix.
    register_connection(PostgresConnection(name="gone", url="postgres://ematix@127.0.0.1:1/x"))

    @ematix.table(schema="an")
    class Remote:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(
        target=Remote,
        mode="merge",
        source_connection="gone",
        retry={"max_attempts": 3, "backoff_seconds": 60, "jitter": 0},
    )
    def remote(conn):
        return "SELECT 1 AS id"

    url = f"sqlite://{tmp_path / 'runs.db'}"
    alerts = CollectingAlerter()
    now = datetime.now(UTC)
    first = run_due(
        [remote], run_log=open_run_log(url), alerters=[alerts], now=now, force=["remote"]
    )
    assert (first[0].status, first[0].attempt) == (FiringStatus.FAILED, 1)
    assert [e.kind.value for e in alerts.events] == ["failed"]
    assert "refused" in first[0].error.lower()
    assert open_run_log(url).last_run("remote").status is RunStatus.FAILED

    waiting = run_due([remote], run_log=open_run_log(url), now=now + timedelta(seconds=5))
    assert waiting[0].status is FiringStatus.WAITING_RETRY
    second = run_due([remote], run_log=open_run_log(url), now=now + timedelta(seconds=61))
    assert (second[0].status, second[0].attempt) == (FiringStatus.FAILED, 2)


def test_a_held_lease_stops_a_second_worker(warehouse: Path, tmp_path: Path) -> None:
    things, _ = _declare()
    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    assert log.claim("things", "other-worker", 300)
    firings = run_due(
        [things], run_log=open_run_log(f"sqlite://{tmp_path / 'runs.db'}"), force=["things"]
    )
    assert firings[0].status is FiringStatus.CLAIMED_ELSEWHERE


def test_cycle_is_rejected_at_declaration(warehouse: Path) -> None:
    @ematix.table(schema="an")
    class A:
        id: Annotated[BigInt, pk()]

    @ematix.table(schema="an")
    class B:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=A, mode="merge", depends_on=["b_pipe"])
    def a_pipe(conn):
        return "SELECT 1 AS id"

    with pytest.raises(CycleError, match=r"a_pipe -> b_pipe -> a_pipe|b_pipe -> a_pipe -> b_pipe"):

        @ematix.pipeline(target=B, mode="merge", depends_on=["a_pipe"])
        def b_pipe(conn):
            return "SELECT 1 AS id"


def test_unknown_upstream_is_named(warehouse: Path) -> None:
    @ematix.table(schema="an")
    class C:
        id: Annotated[BigInt, pk()]

    @ematix.pipeline(target=C, mode="merge", depends_on=["thingz"])
    def c_pipe(conn):
        return "SELECT 1 AS id"

    _declare()
    with pytest.raises(UnknownNameError, match="did you mean 'things'"):
        run_due([c_pipe], run_log=open_run_log("memory://"))


def test_a_manual_run_does_not_take_the_scheduled_firings_place(
    warehouse: Path, tmp_path: Path
) -> None:
    from ematix_engine.batch.runner import run_pipeline
    from ematix_engine.runlog import RunRecord

    things, _ = _declare(schedule="0 * * * *")
    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)  # the last scheduled firing
    log.record_finish(
        RunRecord(pipeline="things", status="success", attempt=1, started_at=two_hours_ago)
    )

    run_pipeline(things, run_log=log, trigger="manual")  # by hand, after this hour's cron

    (firing,) = run_due([things], run_log=log)
    assert firing.status is FiringStatus.SUCCESS  # the cron fired: the manual run is no excuse
    assert run_due([things], run_log=log)[0].status is FiringStatus.NOT_DUE
