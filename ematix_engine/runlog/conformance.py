"""A conformance suite for RunLog implementations.

Every bundled backend runs these checks in the test suite, and a new implementation (the
Dagster-backed one, a MySQL one, …) proves it honours the protocol by running them too::

    import pytest
    from ematix_engine.runlog.conformance import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_run_log(check, tmp_path):
        log = MyRunLog(tmp_path)
        try:
            check(log)
        finally:
            log.close()

Each check receives a fresh, empty run log and raises :class:`AssertionError` naming what
differed. :func:`race_for_leases` covers what one instance cannot: several processes, each with
its own instance opened from the same URL, claiming the same leases at the same moment.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from ematix_engine.runlog.base import RunLog, RunRecord, RunStatus

__all__ = [
    "CHECKS",
    "check_attempt_state",
    "check_attempt_state_long_streak",
    "check_claim_release",
    "check_close_is_idempotent",
    "check_dead_owner_cannot_return",
    "check_lease_expiry",
    "check_lease_heartbeat",
    "check_runs_order_limit_filter",
    "check_skip",
    "check_start_finish",
    "check_success_lookup",
    "check_upsert_by_run_id",
    "check_values_round_trip",
    "race_for_leases",
    "verify_run_log",
]

_T0 = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _failed(pipeline: str, attempt: int, at: datetime, error: str = "boom") -> RunRecord:
    return RunRecord(
        pipeline=pipeline,
        status=RunStatus.FAILED,
        attempt=attempt,
        error=error,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
    )


def _success(pipeline: str, at: datetime, attempt: int = 1) -> RunRecord:
    return RunRecord(
        pipeline=pipeline,
        status=RunStatus.SUCCESS,
        attempt=attempt,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
    )


def check_start_finish(log: RunLog) -> None:
    """``record_start`` stores a running record; ``record_finish`` replaces it."""
    _expect(log.last_run("orders") is None, "an empty run log returned a last_run")
    started = log.record_start("orders", attempt=1)
    _expect(started.status is RunStatus.RUNNING, f"record_start returned {started.status}")
    _expect(log.last_run("orders") == started, "last_run differs from the started record")
    done = started.finished(RunStatus.SUCCESS, rows_inserted=3, watermark="42")
    log.record_finish(done)
    _expect(log.last_run("orders") == done, "last_run differs from the finished record")
    _expect(len(log.runs("orders")) == 1, "record_finish added a row instead of upserting")
    chosen = log.record_start("orders", attempt=2, run_id="run-fixed-id")
    _expect(chosen.run_id == "run-fixed-id", "record_start ignored the given run_id")


def check_upsert_by_run_id(log: RunLog) -> None:
    """``record_finish`` of an unknown run id inserts; repeating it leaves one record."""
    record = _failed("orders", 1, _T0)
    log.record_finish(record)
    log.record_finish(record)
    _expect(log.runs() == [record], f"expected exactly the one record, got {log.runs()}")


def check_runs_order_limit_filter(log: RunLog) -> None:
    """``runs`` is newest first, honours ``limit`` and the pipeline filter, ties by insertion."""
    older = _success("a", _T0)
    newer = _success("b", _T0 + timedelta(minutes=5))
    log.record_finish(newer)
    log.record_finish(older)
    tie_first = _failed("a", 1, _T0 + timedelta(minutes=1))
    tie_second = _failed("a", 2, _T0 + timedelta(minutes=1))
    log.record_finish(tie_first)
    log.record_finish(tie_second)
    everything = log.runs()
    _expect(
        everything == [newer, tie_second, tie_first, older],
        f"runs() is not newest first with insertion order breaking ties: {everything}",
    )
    _expect(log.runs(limit=2) == [newer, tie_second], "runs(limit=2) is wrong")
    _expect(log.runs("a") == [tie_second, tie_first, older], "runs('a') is wrong")
    _expect(log.runs("missing") == [], "runs() of an unknown pipeline is not empty")
    _expect(log.last_run("a") == tie_second, "last_run('a') is not the newest record")


def check_success_lookup(log: RunLog) -> None:
    """``last_success`` skips newer failures and other pipelines."""
    _expect(log.last_success("orders") is None, "last_success of an empty log is not None")
    first = _success("orders", _T0)
    log.record_finish(first)
    log.record_finish(_success("other", _T0 + timedelta(minutes=2)))
    log.record_finish(_failed("orders", 1, _T0 + timedelta(minutes=1)))
    _expect(log.last_success("orders") == first, "last_success returned the wrong record")


def check_skip(log: RunLog) -> None:
    """``record_skip`` stores a finished ``skipped`` record with its reason and attempt 0."""
    skipped = log.record_skip("daily", reason="upstream 'orders' failed")
    _expect(skipped.status is RunStatus.SKIPPED, "record_skip did not return status skipped")
    _expect(skipped.attempt == 0, "a skipped record should carry attempt 0")
    _expect(skipped.finished_at is not None, "a skipped record should be finished")
    _expect(log.last_run("daily") == skipped, "the skipped record was not stored")
    _expect(log.last_run("daily").reason == "upstream 'orders' failed", "reason was lost")


def check_attempt_state(log: RunLog) -> None:
    """Attempt state counts failures since the last success and ignores skips/running."""
    empty = log.attempt_state("orders")
    _expect(
        empty.consecutive_failures == 0 and empty.next_attempt == 1,
        f"attempt_state of an empty log: {empty}",
    )
    log.record_finish(_failed("orders", 1, _T0, "old failure"))
    log.record_finish(_success("orders", _T0 + timedelta(minutes=1)))
    log.record_finish(_failed("orders", 1, _T0 + timedelta(minutes=2), "first"))
    log.record_skip("orders", reason="ignored by attempt_state")
    log.record_finish(_failed("orders", 2, _T0 + timedelta(minutes=3), "second"))
    log.record_finish(_failed("other", 1, _T0 + timedelta(minutes=4)))
    log.record_start("orders", attempt=3)
    state = log.attempt_state("orders")
    _expect(state.consecutive_failures == 2, f"expected 2 failures since success, got {state}")
    _expect(state.last_attempt == 2 and state.next_attempt == 3, f"wrong attempts: {state}")
    _expect(state.last_error == "second", f"last_error should be 'second': {state}")
    _expect(
        state.last_failure_at == _T0 + timedelta(minutes=3, seconds=1),
        f"last_failure_at should be the newest failure's finished_at: {state}",
    )
    _expect(
        state.last_success_at == _T0 + timedelta(minutes=1, seconds=1),
        f"last_success_at is wrong: {state}",
    )
    gave_up = _failed("orders", 3, _T0 + timedelta(minutes=5), "third")
    log.record_finish(gave_up.finished(RunStatus.GAVE_UP, finished_at=gave_up.finished_at))
    state = log.attempt_state("orders")
    _expect(state.gave_up and state.consecutive_failures == 3, f"gave_up not seen: {state}")
    _expect(state.next_attempt == 1, f"after giving up the next attempt is 1: {state}")
    log.record_finish(_success("orders", _T0 + timedelta(minutes=6), attempt=1))
    state = log.attempt_state("orders")
    _expect(state.consecutive_failures == 0, f"a success must reset the streak: {state}")


def check_attempt_state_long_streak(log: RunLog) -> None:
    """A failure streak longer than one read page is counted in full."""
    log.record_finish(_success("orders", _T0))
    for i in range(1, 251):
        log.record_finish(_failed("orders", i, _T0 + timedelta(seconds=10 * i)))
    state = log.attempt_state("orders")
    _expect(state.consecutive_failures == 250, f"expected 250 failures, got {state}")
    _expect(state.last_attempt == 250, f"expected last attempt 250, got {state}")
    _expect(len(log.runs(limit=1000)) == 251, "runs(limit=1000) did not return every record")


def check_claim_release(log: RunLog) -> None:
    """Claims are compare-and-set, re-claims extend, and only the owner can release."""
    _expect(log.claim("orders", "a", 60), "the first claim failed")
    _expect(not log.claim("orders", "b", 60), "a second owner won a held lease")
    _expect(log.claim("orders", "a", 60), "the owner could not extend its lease")
    _expect(log.claim("other", "b", 60), "leases of different pipelines interfere")
    log.release("orders", "b")
    _expect(not log.claim("orders", "b", 60), "release by a non-owner dropped the lease")
    log.release("orders", "a")
    _expect(log.claim("orders", "b", 60), "the lease was not free after its owner released it")
    log.release("never-claimed", "a")
    for bad in (0, -1, float("nan")):
        try:
            log.claim("orders", "a", bad)
        except ValueError:
            continue
        raise AssertionError(f"claim accepted lease_seconds={bad!r}")


def check_lease_expiry(log: RunLog) -> None:
    """An expired lease can be taken over by another owner."""
    _expect(log.claim("orders", "a", 0.2), "the first claim failed")
    _expect(not log.claim("orders", "b", 60), "the lease was taken before it expired")
    time.sleep(0.45)
    _expect(log.claim("orders", "b", 60), "an expired lease could not be taken over")
    _expect(not log.claim("orders", "a", 60), "the old owner won back a lease it had lost")


def check_lease_heartbeat(log: RunLog) -> None:
    """Renewing a short lease keeps it for longer than its TTL; the owner's silence frees it.

    This is what a heartbeating run relies on: a run outlives its lease's TTL as long as it
    keeps re-claiming, and a dead owner (no more renewals) loses the lease within one TTL.
    """
    ttl = 1.0
    _expect(log.claim("orders", "live", ttl), "the first claim failed")
    deadline = time.monotonic() + 2.5 * ttl
    while time.monotonic() < deadline:
        time.sleep(ttl / 4)
        _expect(log.claim("orders", "live", ttl), "the owner could not renew its lease")
        _expect(not log.claim("orders", "rival", ttl), "a rival took a lease being renewed")
    time.sleep(ttl * 1.5)
    _expect(log.claim("orders", "rival", 60), "a dead owner's lease was not freed by its TTL")


def check_dead_owner_cannot_return(log: RunLog) -> None:
    """Once another owner took an expired lease, the old owner can neither renew nor release it."""
    _expect(log.claim("orders", "dead", 0.2), "the first claim failed")
    time.sleep(0.45)
    _expect(log.claim("orders", "heir", 60), "an expired lease could not be taken over")
    _expect(not log.claim("orders", "dead", 60), "the dead owner renewed a lease it had lost")
    log.release("orders", "dead")
    _expect(not log.claim("orders", "third", 60), "the dead owner released its heir's lease")
    log.release("orders", "heir")
    _expect(log.claim("orders", "third", 60), "the heir could not release the lease")


def check_values_round_trip(log: RunLog) -> None:
    """Awkward text, JSON metrics, big counts and microsecond timestamps survive storage."""
    nasty = 'it\'s "quoted"; DROP TABLE runs; -- \u00e9\u00e8 \U0001f680 \\ %s ?'
    record = RunRecord(
        run_id="run-" + nasty,
        pipeline=nasty,
        status=RunStatus.FAILED,
        attempt=7,
        rows_inserted=2**53,
        rows_updated=1,
        rows_unchanged=2,
        rows_closed=3,
        rows_deleted=4,
        watermark="2030-01-02T03:04:05.123456+00:00",
        error=nasty + "\nline two",
        reason=None,
        metrics={"nested": {"list": [1, 2.5, None, True, nasty]}, "empty": {}},
        started_at=_T0,
        finished_at=_T0 + timedelta(microseconds=1),
    )
    log.record_finish(record)
    _expect(log.runs(nasty) == [record], f"the record did not round-trip: {log.runs(nasty)}")
    stored = log.last_run(nasty)
    _expect(stored is not None and stored.started_at.tzinfo is not None, "naive timestamp")
    _expect(log.claim(nasty, nasty, 30), "claim with an awkward name failed")
    _expect(not log.claim(nasty, "other", 30), "claim with an awkward name is not exclusive")


def check_close_is_idempotent(log: RunLog) -> None:
    """``close`` can be called twice."""
    log.close()
    log.close()


CHECKS: tuple[Callable[[RunLog], None], ...] = (
    check_start_finish,
    check_upsert_by_run_id,
    check_runs_order_limit_filter,
    check_success_lookup,
    check_skip,
    check_attempt_state,
    check_attempt_state_long_streak,
    check_claim_release,
    check_lease_expiry,
    check_lease_heartbeat,
    check_dead_owner_cannot_return,
    check_values_round_trip,
    check_close_is_idempotent,
)
"""Every check, in a stable order; parametrize a test over it."""


def verify_run_log(factory: Callable[[], RunLog]) -> None:
    """Run every check, each on a fresh run log from ``factory``, closing it afterwards.

    Args:
        factory: Returns a new, empty run log each call.

    Raises:
        AssertionError: The first check that fails, prefixed with its name.
    """
    for check in CHECKS:
        log = factory()
        try:
            check(log)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from exc
        finally:
            log.close()


def _race_worker(url: str, owner: str, pipelines: Sequence[str], barrier, results) -> None:
    from ematix_engine.runlog.factory import open_run_log

    barrier.wait(timeout=120)  # open together: creating a brand-new store races too
    log = open_run_log(url)
    try:
        barrier.wait(timeout=120)  # then claim together
        for pipeline in pipelines:
            results.put((pipeline, owner, log.claim(pipeline, owner, 60)))
    finally:
        log.close()


def race_for_leases(
    url: str, pipelines: Sequence[str], *, processes: int = 4, timeout: float = 120.0
) -> dict[str, list[str]]:
    """Let several processes open ``url`` and claim every pipeline at the same moment.

    Each process (started with ``spawn``, so nothing is shared) opens its own run log, waits
    at a barrier, then claims each pipeline as owner ``worker-<i>`` with a 60 s lease.

    Args:
        url: A run-log URL that several processes can open (SQLite file, Postgres, …).
        pipelines: Lease names to race for.
        processes: Number of competing processes.
        timeout: Seconds to wait for the workers' answers.

    Returns:
        The winning owners of each pipeline; a correct backend has exactly one per pipeline.

    Raises:
        AssertionError: A worker crashed or did not answer in time.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_race_worker,
            args=(url, f"worker-{i}", list(pipelines), barrier, results),
            daemon=True,
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes: list[tuple[str, str, bool]] = []
    try:
        for _ in range(processes * len(pipelines)):
            outcomes.append(results.get(timeout=timeout))
    except queue.Empty:
        raise AssertionError(
            f"lease race: got {len(outcomes)} of {processes * len(pipelines)} answers"
        ) from None
    finally:
        for worker in workers:
            worker.join(timeout=timeout)
    codes = [worker.exitcode for worker in workers]
    _expect(all(code == 0 for code in codes), f"lease race: worker exit codes {codes}")
    winners: dict[str, list[str]] = {pipeline: [] for pipeline in pipelines}
    for pipeline, owner, won in outcomes:
        if won:
            winners[pipeline].append(owner)
    return winners
