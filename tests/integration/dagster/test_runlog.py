"""DagsterRunLog: the RunLog conformance suite and real run history, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import dagster as dg
import duckdb
import pytest

from ematix_dagster import DagsterRunLog, build_definitions
from ematix_engine import ematix, pk
from ematix_engine.connections import DuckDBConnection
from ematix_engine.ops import AlertEvent, AlertKind
from ematix_engine.runlog.base import RunLog, RunStatus
from ematix_engine.runlog.conformance import CHECKS
from ematix_engine.types import BigInt, Text

STORAGES = ("sqlite", "postgres")


@pytest.fixture(params=STORAGES)
def instance(request: pytest.FixtureRequest) -> dg.DagsterInstance:
    """A Dagster instance on SQLite storage, then one on its own Postgres database."""
    name = "dagster_instance" if request.param == "sqlite" else "pg_dagster_instance"
    return request.getfixturevalue(name)


@pytest.fixture(params=STORAGES)
def shared_instance(request: pytest.FixtureRequest) -> dg.DagsterInstance:
    """A session-wide instance per storage; each test reads and writes its own stream."""
    return request.getfixturevalue(f"shared_{request.param}_dagster_instance")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_conformance(check, shared_instance: dg.DagsterInstance) -> None:
    log = DagsterRunLog(shared_instance, stream=f"ematix-runlog-{uuid.uuid4().hex}")
    assert isinstance(log, RunLog)
    try:
        check(log)
    finally:
        log.close()


def test_two_logs_on_one_instance_agree(dagster_instance: dg.DagsterInstance) -> None:
    first, second = DagsterRunLog(dagster_instance), DagsterRunLog(dagster_instance)
    started = first.record_start("orders", attempt=1)
    assert second.last_run("orders") == started
    assert first.claim("orders", "a", 60)
    assert not second.claim("orders", "b", 60)
    first.release("orders", "a")
    assert second.claim("orders", "b", 60)


def test_open_owns_its_instance(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = DagsterRunLog.open(home)
    log.record_skip("orders", "upstream failed")
    log.close()
    log.close()
    again = DagsterRunLog.open(home)
    assert again.last_run("orders").status is RunStatus.SKIPPED
    again.close()


class Collector:
    """An alerter that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def send(self, event: AlertEvent) -> None:
        self.events.append(event)


def _things_pipeline(path: Path):
    conn = DuckDBConnection(name="things_db", path=str(path))

    @ematix.table(schema="analytics", connection=conn)
    class Things:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.pipeline(
        target=Things,
        mode="merge",
        retry={"max_attempts": 2, "backoff_seconds": 0, "jitter": 0},
    )
    def things(conn):
        """Things from raw."""
        return "SELECT id, name FROM raw.things"

    return things


def _run_event(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> dg.DagsterEvent:
    return next(e for e in result.all_events if e.event_type == kind)


def test_history_attempts_and_alerts_of_real_runs(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    db = tmp_path / "things.duckdb"
    things = _things_pipeline(db)
    collector = Collector()
    defs = build_definitions([things], alerters=[collector])
    job = defs.resolve_implicit_global_asset_job_def()
    sensors = {s.name: s for s in defs.sensors}

    failed = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    log = DagsterRunLog(instance)
    runs = log.runs("things")
    assert [(r.status, r.attempt) for r in runs] == [
        (RunStatus.GAVE_UP, 2),
        (RunStatus.FAILED, 1),
    ], "Dagster's op retry is attempt 2, recorded as the last one"
    assert "raw.things" in (runs[0].error or "") or "things" in (runs[0].error or "")
    assert {r.metrics["dagster_run_id"] for r in runs} == {failed.run_id}
    assert log.attempt_state("things").gave_up

    context = dg.build_run_status_sensor_context(
        sensor_name="ematix_failure_alerts",
        dagster_event=_run_event(failed, dg.DagsterEventType.RUN_FAILURE),
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
    ).for_run_failure()
    sensors["ematix_failure_alerts"](context)
    assert [(e.kind, e.pipeline, e.attempt) for e in collector.events] == [
        (AlertKind.GAVE_UP, "things", 2)
    ]

    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE SCHEMA raw; CREATE TABLE raw.things AS SELECT 1 AS id, 'a' AS name")
    succeeded = job.execute_in_process(instance=instance)
    assert log.last_run("things").status is RunStatus.SUCCESS
    assert log.last_success("things").rows_inserted == 1
    context = dg.build_run_status_sensor_context(
        sensor_name="ematix_recovery_alerts",
        dagster_event=_run_event(succeeded, dg.DagsterEventType.RUN_SUCCESS),
        dagster_instance=instance,
        dagster_run=succeeded.dagster_run,
    )
    sensors["ematix_recovery_alerts"](context)
    assert collector.events[-1].kind is AlertKind.RECOVERED
    assert collector.events[-1].failed_attempts == 2
    materialization = instance.fetch_materializations(
        dg.AssetKey(["analytics", "things"]), limit=1
    ).records[0]
    metadata = materialization.asset_materialization.metadata
    assert metadata["ematix/run_id"].value == log.last_run("things").run_id


def test_a_running_record_of_a_failed_dagster_run_reads_as_failed(
    dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    things = _things_pipeline(tmp_path / "things.duckdb")
    failed = (
        build_definitions([things])
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(instance=dagster_instance, raise_on_error=False)
    )
    log = DagsterRunLog(dagster_instance)
    # Simulate a worker that died after recording the start of a third attempt.
    from ematix_engine.runlog.base import RunRecord

    log.record_finish(
        RunRecord(
            pipeline="things",
            status=RunStatus.RUNNING,
            attempt=3,
            metrics={"dagster_run_id": failed.run_id},
        )
    )
    latest = log.last_run("things")
    assert latest.status is RunStatus.FAILED
    assert "ended FAILURE" in latest.error
