"""Leases that exclude other workers (issue 12, item 2), on every RunLog backend.

* a run holds its lease for as long as it lives (a heartbeat renews a short lease), so a run
  longer than the lease is never fired twice;
* a worker that dies (SIGKILL) leaves a ``running`` record whose lease expires: ``run-due``
  reports ``claimed_elsewhere`` while the lease is live, then ``abandoned`` (recorded as failed,
  alerted) and the retry policy fires it again;
* an unreachable RunLog stops ``ematix run-due`` with exit code 1: no in-memory fallback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

import duckdb
import pytest
from click.testing import CliRunner

from ematix_engine import ematix, pk, register_connection
from ematix_engine.batch.orchestrate import FiringStatus, pipeline_status, run_due
from ematix_engine.batch.runner import run_pipeline
from ematix_engine.cli import main
from ematix_engine.connections import DuckDBConnection
from ematix_engine.ops.events import AlertEvent, AlertKind
from ematix_engine.runlog import RunStatus, open_run_log
from ematix_engine.runlog.lease import HeldLease, LeaseHeldError
from ematix_engine.types import BigInt, Text

WORKTREE = Path(__file__).resolve().parents[3]
RUN_LOGS = ("sqlite", "duckdb", "postgres", "dagster")


class Collecting:
    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def send(self, event: AlertEvent) -> None:
        self.events.append(event)


@pytest.fixture
def warehouse(tmp_duckdb_path: Path) -> Path:
    register_connection(DuckDBConnection(name="default", path=str(tmp_duckdb_path)))
    with duckdb.connect(str(tmp_duckdb_path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.things AS SELECT * FROM (VALUES (1, 'a')) v(id, name)")
    return tmp_duckdb_path


@pytest.fixture(params=RUN_LOGS)
def run_log_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """Opens a new RunLog instance on one shared store each call (as separate workers do)."""
    kind = request.param
    if kind == "sqlite":
        yield lambda: open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    elif kind == "duckdb":
        opened = open_run_log(f"duckdb://{tmp_path / 'runs.duckdb'}")  # one writer process
        opened.close = lambda: None  # type: ignore[method-assign]
        yield lambda: opened
    elif kind == "postgres":
        schema = request.getfixturevalue("pg_schema")
        dsn = schema.dsn if "://" in schema.dsn else _as_url(schema.dsn)
        sep = "&" if "?" in dsn else "?"
        yield lambda: open_run_log(f"{dsn}{sep}{urlencode({'schema': schema.name})}")
    else:
        from ematix_dagster import DagsterRunLog

        instance = request.getfixturevalue("dagster_instance")
        stream = f"ematix-runlog-{uuid.uuid4().hex}"
        yield lambda: DagsterRunLog(instance, stream=stream)


def _as_url(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    return (
        f"postgresql://{user}@{parts.get('host', '127.0.0.1')}:{parts.get('port', 5432)}/"
        f"{parts.get('dbname', 'test')}"
    )


def _declare(retry: dict | None = None):
    @ematix.table(schema="an")
    class Things:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Things, mode="merge", schedule="0 0 1 1 *", retry=retry)
    def things(conn):
        return "SELECT id, name FROM raw.things"

    return things


def test_a_dead_workers_run_is_claimed_elsewhere_then_abandoned_alerted_and_retried(
    warehouse: Path, run_log_factory
) -> None:
    things = _declare(retry={"max_attempts": 3, "backoff_seconds": 0, "jitter": 0})
    dead = run_log_factory()
    # What a SIGKILLed worker leaves behind: a running record and a lease nobody renews.
    assert dead.claim("things", "deadhost:1:abc", 1.0)
    started = dead.record_start("things", attempt=1)
    dead.record_finish(replace(started, metrics={"lease_owner": "deadhost:1:abc"}))

    alerts = Collecting()
    live = run_due([things], run_log=run_log_factory(), alerters=[alerts], force=["things"])
    assert live[0].status is FiringStatus.CLAIMED_ELSEWHERE
    assert "lease held by a live worker" in live[0].reason
    assert alerts.events == []

    assert pipeline_status([things], run_log_factory())[0].last_status == "running (lease held)"
    time.sleep(1.5)  # the dead owner's lease runs out
    shown = pipeline_status([things], run_log_factory())[0].last_status
    assert shown.startswith("running (abandoned")
    found = run_due([things], run_log=run_log_factory(), alerters=[alerts], force=["things"])
    assert found[0].status is FiringStatus.ABANDONED
    assert "abandoned" in found[0].error
    record = run_log_factory().runs("things")[0]
    assert record.run_id == started.run_id and record.status is RunStatus.FAILED
    assert "stopped renewing its lease" in record.error
    assert [e.kind for e in alerts.events] == [AlertKind.FAILED]

    retried = run_due([things], run_log=run_log_factory(), alerters=[alerts], force=["things"])
    assert (retried[0].status, retried[0].attempt) == (FiringStatus.SUCCESS, 2)
    assert alerts.events[-1].kind is AlertKind.RECOVERED


def test_a_run_longer_than_its_lease_is_not_fired_twice(warehouse: Path, run_log_factory) -> None:
    things = _declare()
    reached, finish = threading.Event(), threading.Event()
    outcome: dict = {}

    def slow_progress(_event) -> None:
        reached.set()
        finish.wait(timeout=60)

    def worker() -> None:
        try:
            outcome["result"] = run_pipeline(
                things, run_log=run_log_factory(), on_progress=slow_progress, lease_seconds=1.0
            )
        except BaseException as error:  # reported below
            outcome["error"] = error

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert reached.wait(timeout=60)
        time.sleep(2.5)  # well past the 1 s lease: only the heartbeat keeps it
        second = run_due([things], run_log=run_log_factory(), force=["things"], lease_seconds=1)
        assert second[0].status is FiringStatus.CLAIMED_ELSEWHERE
        with pytest.raises(LeaseHeldError, match="running elsewhere"):
            run_pipeline(things, run_log=run_log_factory())
    finally:
        finish.set()
        thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].status == "success"
    # The run released its lease at the end: the next firing may run.
    assert run_due([things], run_log=run_log_factory(), force=["things"])[0].status is (
        FiringStatus.SUCCESS
    )


KILLED_WORKER = """
import sys, time
from pathlib import Path
from typing import Annotated
from ematix_engine import ematix, pk, register_connection
from ematix_engine.batch.runner import run_pipeline
from ematix_engine.connections import DuckDBConnection
from ematix_engine.runlog import open_run_log
from ematix_engine.types import BigInt, Text

register_connection(DuckDBConnection(name="default", path=sys.argv[1]))

@ematix.table(schema="an")
class Things:
    id: Annotated[BigInt, pk()]
    name: Text | None

@ematix.pipeline(target=Things, mode="merge")
def things(conn):
    return "SELECT id, name FROM raw.things"

def hang(_event):
    Path(sys.argv[3]).write_text("running")
    time.sleep(3600)

run_pipeline(things, run_log=open_run_log(sys.argv[2]), on_progress=hang, lease_seconds=1.0)
"""


def test_a_sigkilled_worker_blocks_its_pipeline_for_one_lease_only(
    warehouse: Path, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'runs.db'}"
    marker = tmp_path / "marker"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(KILLED_WORKER))
    env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
    worker = subprocess.Popen(
        [sys.executable, str(script), str(warehouse), url, str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert worker.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker never started loading"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
    things = _declare()
    alerts = Collecting()
    log = open_run_log(url)
    assert log.last_run("things").status is RunStatus.RUNNING
    time.sleep(1.5)
    firings = run_due([things], run_log=log, alerters=[alerts], force=["things"])
    assert firings[0].status is FiringStatus.ABANDONED
    assert log.last_run("things").status is RunStatus.GAVE_UP  # one attempt by default
    assert "stopped renewing its lease" in log.last_run("things").error
    assert [e.kind for e in alerts.events] == [AlertKind.GAVE_UP]


def test_a_lost_lease_stops_the_run_before_it_commits(tmp_path: Path) -> None:
    log = open_run_log(f"sqlite://{tmp_path / 'runs.db'}")
    lease = HeldLease(log, "things", ttl=0.5, renew_every=0.4)
    assert lease.acquire()
    lease._stop.set()  # a stalled worker: its heartbeat stops (as a frozen process's would)
    time.sleep(0.8)
    assert log.claim("things", "heir", 60)
    from ematix_engine.runlog.lease import LeaseLostError

    with pytest.raises(LeaseLostError, match="lost its lease"):
        lease.check()
    lease.release()
    assert not log.claim("things", "third", 60), "the stalled worker released its heir's lease"


def test_run_due_fails_loudly_when_the_run_log_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"lease_pipes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from typing import Annotated
            from ematix_engine import ematix, pk
            from ematix_engine.types import BigInt

            @ematix.connection
            class default:
                kind = "duckdb"
                path = "wh.duckdb"

            @ematix.table(schema="an")
            class Things:
                id: Annotated[BigInt, pk()]

            @ematix.pipeline(target=Things, mode="append", schedule="* * * * *")
            def things(conn):
                return "SELECT 1 AS id"
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        for url in ("postgresql://nobody:pw@127.0.0.1:1/none", f"sqlite://{tmp_path}/f/x.db"):
            if url.startswith("sqlite"):
                (tmp_path / "f").write_text("a file where a folder should be")
            result = CliRunner().invoke(main, ["run-due", "-m", name, "--run-log", url])
            assert result.exit_code == 1, result.output
            assert "is unreachable" in result.output and "nothing was run" in result.output
            assert "pw@" not in result.output
        assert not (tmp_path / "wh.duckdb").exists(), "a pipeline ran without a lease"
    finally:
        sys.modules.pop(name, None)
