"""In Dagster, a terminal error is never retried; a transient one is, per the retry policy.

Factor 2 runs through the op ``RetryPolicy``; factor 3 through the ``RetryRequested`` the
resource raises (see ``ematix_dagster.retry``). Both must stop at once on a terminal error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import dagster as dg
import duckdb
import pytest

from ematix_dagster import DagsterRunLog, build_definitions
from ematix_engine import ematix, pk, register_connection
from ematix_engine.connections import DuckDBConnection, PostgresConnection
from ematix_engine.runlog.base import RunStatus
from ematix_engine.types import BigInt, Text

FACTORS = pytest.mark.parametrize("factor", [2.0, 3.0], ids=["op-policy", "requested"])


def _pipeline(path: Path, factor: float, *, source_connection: str | None, sql: str):
    conn = DuckDBConnection(name="things_db", path=str(path))
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw; CREATE TABLE raw.things AS SELECT 1 AS id, 'a' AS name")

    @ematix.table(schema="analytics", connection=conn)
    class Things:
        id: Annotated[BigInt, pk()]
        name: Text

    @ematix.pipeline(
        target=Things,
        mode="merge",
        source_connection=source_connection,
        retry={"max_attempts": 3, "backoff_seconds": 0, "backoff_factor": factor, "jitter": 0},
    )
    def things(conn):
        """Things from raw."""
        return sql

    return things


def _run(pipeline, instance: dg.DagsterInstance) -> tuple[dg.ExecuteInProcessResult, list]:
    job = build_definitions([pipeline]).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    runs = DagsterRunLog(instance).runs("things")
    return result, [(r.status, r.attempt) for r in runs]


def _restarts(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type is dg.DagsterEventType.STEP_RESTARTED)


@FACTORS
def test_a_terminal_error_is_not_retried(
    factor: float, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # A column raw.things does not have: a SQL error no retry can fix.
    things = _pipeline(
        tmp_path / "things.duckdb",
        factor,
        source_connection=None,
        sql="SELECT id, nme FROM raw.things",
    )
    result, runs = _run(things, dagster_instance)
    assert not result.success
    assert _restarts(result) == 0
    assert runs == [(RunStatus.GAVE_UP, 1)]
    failure = next(e for e in result.all_events if e.event_type is dg.DagsterEventType.STEP_FAILURE)
    assert "retrying cannot help" in failure.step_failure_data.error.message


@FACTORS
def test_a_transient_error_is_retried_per_policy(
    factor: float, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # Nothing listens on port 1: the source connection is refused, which a retry may fix.
    register_connection(PostgresConnection(name="gone", url="postgres://ematix@127.0.0.1:1/x"))
    things = _pipeline(
        tmp_path / "things.duckdb", factor, source_connection="gone", sql="SELECT 1 AS id"
    )
    result, runs = _run(things, dagster_instance)
    assert not result.success
    assert _restarts(result) == 2
    assert runs == [(RunStatus.GAVE_UP, 3), (RunStatus.FAILED, 2), (RunStatus.FAILED, 1)]
