"""The RunLog protocol and the records it stores.

A run log is the durable history of pipeline firings. The orchestrator (``ematix run-due``, the
central scheduler, a worker) writes one :class:`RunRecord` per firing and reads back two things
it cannot keep in memory across restarts:

* the :class:`AttemptState` of a pipeline (consecutive failed attempts since the last success,
  when the last one failed), so a ``max_attempts=5`` retry policy does not reset when the cron
  worker rolls, and
* leases (:meth:`RunLog.claim` / :meth:`RunLog.release`), a compare-and-set lock per pipeline so
  two processes never fire the same pipeline at once.

The protocol is deliberately small: any store that can upsert a record by ``run_id``, list
records newest first and compare-and-set one lease row can implement it (SQLite, Postgres, DuckDB
and memory ship here; Dagster's run storage is another). Records are frozen; change them with
:meth:`RunRecord.finished` or :func:`dataclasses.replace` and write them back with
:meth:`RunLog.record_finish`.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MANUAL",
    "ROW_COUNT_FIELDS",
    "AttemptState",
    "RunLog",
    "RunRecord",
    "RunStatus",
    "attempt_state_from",
    "utc_now",
]

ROW_COUNT_FIELDS: tuple[str, ...] = (
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_closed",
    "rows_deleted",
)
"""The row-count fields of :class:`RunRecord`, in storage order."""

MANUAL = "manual"
"""``metrics["trigger"]`` of a firing started by hand (``ematix run``): its own firing, attempt
1, whose failure is no attempt of a scheduled firing (see :func:`attempt_state_from`)."""


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class RunStatus(StrEnum):
    """Status of one pipeline firing."""

    RUNNING = "running"
    """Started and not finished yet (or the process died before recording the end)."""
    SUCCESS = "success"
    """Finished without error."""
    FAILED = "failed"
    """Raised; the retry policy may fire another attempt."""
    SKIPPED = "skipped"
    """Not attempted, e.g. because an upstream failed; :attr:`RunRecord.reason` says why."""
    GAVE_UP = "gave_up"
    """Failed on the last attempt the retry policy allows."""

    @property
    def is_terminal(self) -> bool:
        """Whether the status ends a firing (everything except ``running``)."""
        return self is not RunStatus.RUNNING

    @property
    def is_failure(self) -> bool:
        """Whether the status counts as a failed attempt (``failed`` or ``gave_up``)."""
        return self in (RunStatus.FAILED, RunStatus.GAVE_UP)


def _aware_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"RunRecord.{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            f"RunRecord.{name} must be timezone-aware (got naive {value.isoformat()}); "
            "use datetime.now(UTC)"
        )
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One pipeline firing as the run log stores it.

    Attributes:
        run_id: Unique id of the firing (a UUID string by default); the upsert key.
        pipeline: Pipeline name.
        status: Where the firing stands.
        attempt: 1-based attempt number under the retry policy; ``0`` only for ``skipped``
            records, which were never attempted.
        rows_inserted: Rows inserted by the load.
        rows_updated: Rows updated in place (merge) or re-versioned (SCD2).
        rows_unchanged: Rows compared and left alone.
        rows_closed: SCD2 versions closed.
        rows_deleted: Rows deleted.
        watermark: Incremental watermark after the run, as text.
        error: Error text of a failed run (already redacted by the caller).
        reason: Why the firing was skipped (or any free-form note).
        metrics: Extra JSON-serialisable metrics; stored as a deep copy.
        started_at: Aware datetime, normalised to UTC.
        finished_at: Aware datetime, normalised to UTC; ``None`` while running.

    Example:
        >>> rec = RunRecord(pipeline="orders", status="running", attempt=1)
        >>> done = rec.finished(RunStatus.SUCCESS, rows_inserted=3)
        >>> (done.status, done.rows["inserted"])
        (<RunStatus.SUCCESS: 'success'>, 3)
    """

    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pipeline: str
    status: RunStatus
    attempt: int = 1
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_closed: int = 0
    rows_deleted: int = 0
    watermark: str | None = None
    error: str | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise ValueError(f"RunRecord.run_id must be a non-empty string, got {self.run_id!r}")
        if not isinstance(self.pipeline, str) or not self.pipeline:
            raise ValueError(
                f"RunRecord.pipeline must be a non-empty string, got {self.pipeline!r}"
            )
        try:
            status = RunStatus(self.status)
        except ValueError:
            known = ", ".join(s.value for s in RunStatus)
            raise ValueError(
                f"RunRecord.status {self.status!r} for pipeline {self.pipeline!r} is not one of: "
                f"{known}"
            ) from None
        object.__setattr__(self, "status", status)
        minimum = 0 if status is RunStatus.SKIPPED else 1
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int):
            raise TypeError(f"RunRecord.attempt must be an int, got {self.attempt!r}")
        if self.attempt < minimum:
            raise ValueError(
                f"RunRecord.attempt must be >= {minimum} for a {status.value} run of "
                f"{self.pipeline!r}, got {self.attempt}"
            )
        for name in ROW_COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(
                    f"RunRecord.{name} must be a non-negative int for pipeline "
                    f"{self.pipeline!r}, got {value!r}"
                )
        for name in ("watermark", "error", "reason"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"RunRecord.{name} must be str or None, got {value!r}")
        try:
            metrics = json.loads(json.dumps(self.metrics, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"RunRecord.metrics for pipeline {self.pipeline!r} must be JSON-serialisable: {exc}"
            ) from None
        if not isinstance(metrics, dict):
            raise TypeError(f"RunRecord.metrics must be a dict, got {type(self.metrics).__name__}")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "started_at", _aware_utc(self.started_at, "started_at"))
        if self.finished_at is not None:
            object.__setattr__(self, "finished_at", _aware_utc(self.finished_at, "finished_at"))

    @property
    def rows(self) -> dict[str, int]:
        """Row counts keyed by kind: ``inserted``, ``updated``, ``unchanged``, ``closed``, …."""
        return {name.removeprefix("rows_"): getattr(self, name) for name in ROW_COUNT_FIELDS}

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish, or ``None`` while running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def finished(
        self, status: RunStatus | str, *, finished_at: datetime | None = None, **changes: Any
    ) -> RunRecord:
        """Return a copy with ``status``, ``finished_at`` (default now) and other fields set.

        Args:
            status: The final status.
            finished_at: When the run ended; defaults to now.
            **changes: Any other field, e.g. ``rows_inserted=10`` or ``error="…"``.

        Returns:
            A new record; pass it to :meth:`RunLog.record_finish`.
        """
        return dataclasses.replace(
            self, status=RunStatus(status), finished_at=finished_at or utc_now(), **changes
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (timestamps as ISO-8601 strings)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["status"] = self.status.value
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptState:
    """Failed attempts of a pipeline since its last success, as the retry logic needs them.

    Attributes:
        pipeline: Pipeline name.
        consecutive_failures: ``failed``/``gave_up`` runs since the last ``success`` (skipped and
            running records are ignored).
        last_attempt: Attempt number of the most recent failed run (0 when there is none).
        last_failure_at: When that run finished (or started, if it never recorded an end).
        last_error: Its error text.
        gave_up: Whether that run was the retry policy's last attempt (status ``gave_up``).
        last_success_at: When the last successful run finished, if any.
    """

    pipeline: str
    consecutive_failures: int = 0
    last_attempt: int = 0
    last_failure_at: datetime | None = None
    last_error: str | None = None
    gave_up: bool = False
    last_success_at: datetime | None = None

    @property
    def next_attempt(self) -> int:
        """The attempt number the next firing should carry (1 after a success or a give-up)."""
        if self.consecutive_failures == 0 or self.gave_up:
            return 1
        return self.last_attempt + 1


def attempt_state_from(pipeline: str, newest_first: Iterable[RunRecord]) -> AttemptState:
    """Fold a pipeline's records, newest first, into its :class:`AttemptState`.

    Stops reading at the first ``success``, so backends can pass a lazy cursor. A failed
    manual firing (``metrics["trigger"] == MANUAL``) is skipped: attempts belong to one
    firing, and a run started by hand must not use up a scheduled firing's retries. A manual
    success does end the streak: the target is loaded, so no retry is pending.

    Args:
        pipeline: Pipeline name (records of other pipelines are ignored).
        newest_first: The pipeline's records, newest first.

    Returns:
        The attempt state.
    """
    failures = 0
    latest: RunRecord | None = None
    last_success_at: datetime | None = None
    for record in newest_first:
        if record.pipeline != pipeline:
            continue
        if record.status is RunStatus.SUCCESS:
            last_success_at = record.finished_at or record.started_at
            break
        if record.status.is_failure and record.metrics.get("trigger") != MANUAL:
            failures += 1
            if latest is None:
                latest = record
    if latest is None:
        return AttemptState(pipeline=pipeline, last_success_at=last_success_at)
    return AttemptState(
        pipeline=pipeline,
        consecutive_failures=failures,
        last_attempt=latest.attempt,
        last_failure_at=latest.finished_at or latest.started_at,
        last_error=latest.error,
        gave_up=latest.status is RunStatus.GAVE_UP,
        last_success_at=last_success_at,
    )


@runtime_checkable
class RunLog(Protocol):
    """Durable history of pipeline firings, attempt state and per-pipeline leases.

    Implementations must be safe to call from several threads. Two instances opened on the same
    store (two processes, two hosts) must agree: a record written by one is read by the other,
    and :meth:`claim` is a compare-and-set so at most one owner holds an unexpired lease.

    Example:
        >>> from ematix_engine.runlog import open_run_log
        >>> log = open_run_log("memory://")
        >>> rec = log.record_start("orders", attempt=1)
        >>> log.record_finish(rec.finished("success", rows_inserted=3))
        >>> log.last_run("orders").rows_inserted
        3
    """

    def record_start(self, pipeline: str, attempt: int, run_id: str | None = None) -> RunRecord:
        """Record that a firing started and return its ``running`` record.

        Args:
            pipeline: Pipeline name.
            attempt: 1-based attempt number.
            run_id: Id to use; a new UUID when ``None``. An existing id is overwritten.

        Returns:
            The stored record (status ``running``, ``started_at`` now).
        """
        ...

    def record_finish(self, record: RunRecord) -> None:
        """Insert or replace the record with ``record.run_id`` (an upsert by run id).

        Args:
            record: Usually ``started.finished(status, rows_inserted=…)``.
        """
        ...

    def record_skip(self, pipeline: str, reason: str) -> RunRecord:
        """Record a firing that was not attempted (status ``skipped``, attempt ``0``).

        Args:
            pipeline: Pipeline name.
            reason: Why, e.g. ``"upstream 'orders' failed"``.

        Returns:
            The stored record.
        """
        ...

    def last_run(self, pipeline: str) -> RunRecord | None:
        """Return the newest record of ``pipeline`` (any status), or ``None``."""
        ...

    def runs(self, pipeline: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Return up to ``limit`` records, newest first, of one pipeline or of all.

        Args:
            pipeline: Only this pipeline's records; all pipelines when ``None``.
            limit: Maximum number of records (>= 1).

        Returns:
            Records ordered by ``started_at`` descending (insertion order breaks ties).
        """
        ...

    def last_success(self, pipeline: str) -> RunRecord | None:
        """Return the newest ``success`` record of ``pipeline``, or ``None``."""
        ...

    def attempt_state(self, pipeline: str) -> AttemptState:
        """Return failed attempts since the last success (see :class:`AttemptState`)."""
        ...

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """Try to take (or extend) the lease on ``pipeline`` for ``owner``.

        Compare-and-set: succeeds when no lease exists, the current lease has expired, or
        ``owner`` already holds it (then the lease is extended to ``now + lease_seconds``).

        Args:
            pipeline: Pipeline name (or any lock name, e.g. ``"_scheduler_singleton"``).
            owner: Stable id of the claimant, e.g. ``"host:pid"``.
            lease_seconds: How long the lease lasts without a renewing claim (> 0).

        Returns:
            ``True`` when ``owner`` holds the lease after the call.
        """
        ...

    def release(self, pipeline: str, owner: str) -> None:
        """Drop ``owner``'s lease on ``pipeline``; a no-op if someone else holds it."""
        ...

    def close(self) -> None:
        """Release connections and files; calling it twice is harmless."""
        ...
