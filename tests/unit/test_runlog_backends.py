"""RunLog backends that need no service: memory, SQLite, DuckDB.

Every backend runs the shared conformance checks; SQLite additionally proves that two instances
(and several processes) on one file agree, and that attempt state survives reopening the file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from ematix_engine.errors import ConnectionFailedError
from ematix_engine.runlog import (
    DuckDBRunLog,
    MemoryRunLog,
    RunLog,
    RunStatus,
    SqliteRunLog,
    open_run_log,
)
from ematix_engine.runlog.conformance import CHECKS, race_for_leases, verify_run_log

BACKENDS = ["memory", "sqlite", "duckdb"]


def _url(kind: str, tmp_path: Path) -> str:
    return {
        "memory": "memory://",
        "sqlite": f"sqlite://{tmp_path / 'state' / 'run_log.db'}",
        "duckdb": f"duckdb://{tmp_path / 'state' / 'run_log.duckdb'}",
    }[kind]


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(kind, check, tmp_path):
    log = open_run_log(_url(kind, tmp_path))
    try:
        check(log)
    finally:
        log.close()


def test_verify_run_log_runs_every_check_on_fresh_instances():
    made: list[RunLog] = []

    def factory() -> RunLog:
        made.append(MemoryRunLog())
        return made[-1]

    verify_run_log(factory)
    assert len(made) == len(CHECKS)


def test_verify_run_log_names_the_failing_check():
    class Forgetful(MemoryRunLog):
        def release(self, pipeline: str, owner: str) -> None:
            pass

    with pytest.raises(AssertionError, match="check_claim_release"):
        verify_run_log(Forgetful)


@pytest.mark.parametrize(
    ("url_template", "cls"),
    [
        ("memory://", MemoryRunLog),
        ("sqlite://{tmp}/rel.db", SqliteRunLog),
        ("duckdb://{tmp}/rel.duckdb", DuckDBRunLog),
    ],
    ids=["memory", "sqlite", "duckdb"],
)
def test_open_run_log_picks_the_backend(url_template, cls, tmp_path):
    with open_run_log(url_template.format(tmp=tmp_path)) as log:
        assert isinstance(log, cls)
        assert isinstance(log, RunLog)


def test_sqlite_default_and_relative_paths_are_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_run_log() as log:
        log.record_skip("p", reason="r")
    assert (tmp_path / ".ematix" / "run_log.db").is_file()
    with open_run_log("sqlite://nested/dir/history.db") as log:
        log.record_skip("p", reason="r")
    assert (tmp_path / "nested" / "dir" / "history.db").is_file()
    with open_run_log("sqlite://") as log:
        assert [r.reason for r in log.runs("p")] == ["r"]
    with open_run_log("duckdb://") as log:
        log.record_skip("p", reason="r")
    assert (tmp_path / ".ematix" / "run_log.duckdb").is_file()


def test_sqlite_absolute_path_and_wal_mode(tmp_path):
    path = tmp_path / "abs" / "run_log.db"
    with open_run_log(f"sqlite://{path}") as log:  # "sqlite://" + "/abs/..." = sqlite:///abs
        log.record_start("p", 1)
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute('SELECT count(*) FROM "ematix_runs"').fetchone()[0] == 1
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_attempt_state_survives_reopening(kind, tmp_path):
    url = _url(kind, tmp_path)
    with open_run_log(url) as log:
        first = log.record_start("orders", attempt=1)
        log.record_finish(first.finished(RunStatus.FAILED, error="timeout"))
        second = log.record_start("orders", attempt=2)
        log.record_finish(second.finished(RunStatus.FAILED, error="timeout again"))
        before = log.attempt_state("orders")
    with open_run_log(url) as reopened:
        after = reopened.attempt_state("orders")
        assert after == before
        assert after.consecutive_failures == 2
        assert after.next_attempt == 3
        assert after.last_error == "timeout again"
        assert [r.attempt for r in reopened.runs("orders")] == [2, 1]


def test_two_sqlite_instances_on_one_file_share_records_and_leases(tmp_path):
    url = _url("sqlite", tmp_path)
    with open_run_log(url) as one, open_run_log(url) as two:
        record = one.record_start("orders", attempt=1)
        assert two.last_run("orders") == record
        two.record_finish(record.finished(RunStatus.SUCCESS, rows_inserted=9))
        assert one.last_success("orders").rows_inserted == 9

        assert one.claim("orders", "host-a:1", 60)
        assert not two.claim("orders", "host-b:2", 60)
        assert one.claim("orders", "host-a:1", 60)  # renewal by the holder
        one.release("orders", "host-a:1")
        assert two.claim("orders", "host-b:2", 60)
        assert not one.claim("orders", "host-a:1", 60)


def test_two_duckdb_instances_in_one_process_share_leases(tmp_path):
    url = _url("duckdb", tmp_path)
    with open_run_log(url) as one, open_run_log(url) as two:
        assert one.claim("orders", "a", 60)
        assert not two.claim("orders", "b", 60)
        one.release("orders", "a")
        assert two.claim("orders", "b", 60)


def test_sqlite_processes_racing_for_leases_have_one_winner_each(tmp_path):
    url = _url("sqlite", tmp_path)  # the file does not exist yet: creation races too
    pipelines = [f"p{i}" for i in range(5)]
    winners = race_for_leases(url, pipelines, processes=6)
    assert all(len(owners) == 1 for owners in winners.values()), winners

    # Expired leases: every pipeline is held by a dead owner whose lease has lapsed.
    with open_run_log(url) as log:
        for pipeline in pipelines:
            log.release(pipeline, winners[pipeline][0])
            assert log.claim(pipeline, "dead-worker", 0.05)
    time.sleep(0.2)
    winners = race_for_leases(url, pipelines, processes=6)
    assert all(len(owners) == 1 for owners in winners.values()), winners
    assert not any("dead-worker" in owners for owners in winners.values())


def test_unwritable_sqlite_location_raises_or_falls_back(tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the run log directory should be")
    url = f"sqlite://{blocker / 'run_log.db'}"
    with pytest.raises(ConnectionFailedError, match="not-a-directory"):
        open_run_log(url)
    with caplog.at_level(logging.WARNING, logger="ematix.runlog"):
        log = open_run_log(url, fallback=True)
    assert isinstance(log, MemoryRunLog)
    assert "in-memory run log" in caplog.text
    assert str(blocker) in caplog.text
    log.record_skip("still", reason="works")
    assert log.last_run("still").reason == "works"


def test_duckdb_unwritable_location_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConnectionFailedError):
        open_run_log(f"duckdb://{blocker / 'run_log.duckdb'}")


def test_sqlite_is_thread_safe(tmp_path):
    import threading

    with open_run_log(_url("sqlite", tmp_path)) as log:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    record = log.record_start(f"p{n}", attempt=i + 1)
                    log.record_finish(record.finished(RunStatus.FAILED, error=str(i)))
                    log.attempt_state(f"p{n}")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert all(log.attempt_state(f"p{n}").consecutive_failures == 20 for n in range(4))
