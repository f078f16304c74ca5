"""``DagsterRunLog``: the engine's RunLog protocol stored in a Dagster instance.

Where the history lives, and why:

* Every write (a run record, a lease claim or release) is one engine event appended to an
  event-log stream of its own, the run id ``ematix-runlog`` (no run row exists for it, so the
  runs page stays clean). The instance's event log is the one store Dagster offers on SQLite
  and on Postgres that is append-only and totally ordered by storage id, which is what the
  protocol needs: records are folded by ``run_id`` (last write wins, first write fixes the
  insertion order), and leases are decided by replaying claims in storage order, so every
  process reaches the same verdict. The key-value store would not do: it has no
  compare-and-set and cannot list keys.
* Records written while Dagster runs an asset carry ``metrics["dagster_run_id"]``, and the run
  is tagged ``ematix/pipeline``; materialization metadata holds the same counts. A record that
  is still ``running`` while its Dagster run has failed or was canceled (the process died
  before it could record the end) reads as ``failed``, so the retry logic sees it.

Reads are incremental: each instance keeps a cursor and folds only new events.

Postgres caveat: storage ids come from a sequence, so a write that commits later than a
higher-numbered one can be skipped by a reader that is already past it. Claims wait
``settle_seconds`` (50 ms) and read again before answering, which covers the microseconds an
autocommit insert takes; a long-lived reader picks up such a record when it is reopened.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ematix_dagster.constants import RUNLOG_JOB_NAME, RUNLOG_STREAM_RUN_ID
from ematix_engine import ConnectionFailedError
from ematix_engine.runlog import AttemptState, RunRecord, RunStatus, attempt_state_from

__all__ = ["DagsterRunLog"]

_PREFIX = "ematix-runlog "
_PAGE = 1000
_FAILED_RUN = frozenset({dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


def _record_from(data: dict[str, Any]) -> RunRecord:
    values = dict(data)
    values["started_at"] = datetime.fromisoformat(values["started_at"])
    if values.get("finished_at"):
        values["finished_at"] = datetime.fromisoformat(values["finished_at"])
    return RunRecord(**values)


@dataclass
class _Fold:
    """Everything read from the stream so far."""

    cursor: str | None = None
    order: int = 0
    records: dict[str, tuple[int, RunRecord]] = field(default_factory=dict)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    claims: dict[str, bool] = field(default_factory=dict)

    def apply(self, payload: dict[str, Any]) -> None:
        kind = payload.get("kind")
        if kind == "record":
            record = _record_from(payload["record"])
            first = self.records.get(record.run_id)
            self.records[record.run_id] = (first[0] if first else self.order, record)
            self.order += 1
        elif kind == "claim":
            holder = self.leases.get(payload["pipeline"])
            owner, at = payload["owner"], payload["at"]
            won = holder is None or holder[1] <= at or holder[0] == owner
            if won:
                self.leases[payload["pipeline"]] = (owner, at + payload["lease_seconds"])
            self.claims[payload["nonce"]] = won
        elif kind == "release":
            holder = self.leases.get(payload["pipeline"])
            if holder is not None and holder[0] == payload["owner"]:
                del self.leases[payload["pipeline"]]


class DagsterRunLog:
    """The RunLog protocol over a Dagster instance's event log (SQLite or Postgres storage).

    Args:
        instance: The Dagster instance (``context.instance`` in an asset or sensor).
        stream: Run id of the event stream that holds the records.
        settle_seconds: How long a claim waits before reading the verdict again.

    Example:
        >>> import dagster as dg
        >>> with dg.instance_for_test() as instance:
        ...     log = DagsterRunLog(instance)
        ...     rec = log.record_start("orders", attempt=1)
        ...     log.record_finish(rec.finished("success", rows_inserted=3))
        ...     log.last_run("orders").rows_inserted
        3
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        *,
        stream: str = RUNLOG_STREAM_RUN_ID,
        settle_seconds: float = 0.05,
    ) -> None:
        self.instance = instance
        self.stream = stream
        self.settle_seconds = settle_seconds
        self._fold = _Fold()
        self._lock = threading.RLock()
        self._owned_instance = False
        self._closed = False
        self._run_status: dict[str, dg.DagsterRunStatus | None] = {}

    @classmethod
    def open(cls, dagster_home: str | Path | None = None) -> DagsterRunLog:
        """Open the instance of ``dagster_home`` (default ``$DAGSTER_HOME``); closing disposes it.

        Args:
            dagster_home: Folder holding ``dagster.yaml``.

        Returns:
            A run log that owns its instance.
        """
        if dagster_home is None:
            instance = dg.DagsterInstance.get()
        else:
            instance = dg.DagsterInstance.from_config(str(dagster_home))
        log = cls(instance)
        log._owned_instance = True
        return log

    def __repr__(self) -> str:
        return f"DagsterRunLog(stream={self.stream!r})"

    # ------------------------------------------------------------------ event stream
    def _append(self, payload: dict[str, Any]) -> None:
        self.instance.report_engine_event(
            _PREFIX + json.dumps(payload, separators=(",", ":")),
            job_name=RUNLOG_JOB_NAME,
            run_id=self.stream,
        )

    def _sync(self) -> _Fold:
        with self._lock:
            fold = self._fold
            while True:
                page = self.instance.get_records_for_run(
                    self.stream,
                    cursor=fold.cursor,
                    of_type=dg.DagsterEventType.ENGINE_EVENT,
                    limit=_PAGE,
                )
                for entry in page.records:
                    event = entry.event_log_entry.dagster_event
                    message = (event.message if event else None) or ""
                    if message.startswith(_PREFIX):
                        fold.apply(json.loads(message[len(_PREFIX) :]))
                if page.records:
                    fold.cursor = page.cursor
                if not page.has_more:
                    return fold

    def _reconciled(self, record: RunRecord) -> RunRecord:
        run_id = record.metrics.get("dagster_run_id")
        if record.status is not RunStatus.RUNNING or not isinstance(run_id, str):
            return record
        if run_id not in self._run_status or self._run_status[run_id] not in _FAILED_RUN:
            run = self.instance.get_run_by_id(run_id)
            self._run_status[run_id] = run.status if run else None
        status = self._run_status[run_id]
        if status not in _FAILED_RUN:
            return record
        return record.finished(
            RunStatus.FAILED,
            finished_at=record.started_at,
            error=f"Dagster run {run_id} ended {status.value} before ematix recorded its end",
        )

    def _sorted(self, pipeline: str | None) -> Iterator[RunRecord]:
        fold = self._sync()
        rows = [
            (record.started_at, order, record)
            for order, record in fold.records.values()
            if pipeline is None or record.pipeline == pipeline
        ]
        rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
        return (self._reconciled(record) for _, _, record in rows)

    # ------------------------------------------------------------------ RunLog protocol
    def record_start(self, pipeline: str, attempt: int, run_id: str | None = None) -> RunRecord:
        """Record that a firing started; return its ``running`` record."""
        record = RunRecord(
            run_id=run_id or str(uuid.uuid4()),
            pipeline=pipeline,
            status=RunStatus.RUNNING,
            attempt=attempt,
        )
        self.record_finish(record)
        return record

    def record_finish(self, record: RunRecord) -> None:
        """Insert or replace the record with ``record.run_id``."""
        self._append({"kind": "record", "record": record.to_dict()})

    def record_skip(self, pipeline: str, reason: str) -> RunRecord:
        """Record a firing that was not attempted (status ``skipped``, attempt 0)."""
        now = datetime.now(UTC)
        record = RunRecord(
            pipeline=pipeline,
            status=RunStatus.SKIPPED,
            attempt=0,
            reason=reason,
            started_at=now,
            finished_at=now,
        )
        self.record_finish(record)
        return record

    def runs(self, pipeline: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Up to ``limit`` records, newest first, of one pipeline or of all."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        out: list[RunRecord] = []
        for record in self._sorted(pipeline):
            out.append(record)
            if len(out) >= limit:
                break
        return out

    def last_run(self, pipeline: str) -> RunRecord | None:
        """The newest record of ``pipeline``, or ``None``."""
        return next(iter(self._sorted(pipeline)), None)

    def last_success(self, pipeline: str) -> RunRecord | None:
        """The newest ``success`` record of ``pipeline``, or ``None``."""
        return next((r for r in self._sorted(pipeline) if r.status is RunStatus.SUCCESS), None)

    def attempt_state(self, pipeline: str) -> AttemptState:
        """Failed attempts since the last success."""
        return attempt_state_from(pipeline, self._sorted(pipeline))

    def records_for_dagster_run(self, dagster_run_id: str) -> list[RunRecord]:
        """The records written while Dagster run ``dagster_run_id`` executed, oldest first."""
        fold = self._sync()
        found = [
            (order, record)
            for order, record in fold.records.values()
            if record.metrics.get("dagster_run_id") == dagster_run_id
        ]
        return [record for _, record in sorted(found, key=lambda item: item[0])]

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """Try to take (or extend) the lease on ``pipeline`` for ``owner``.

        Raises:
            ValueError: ``lease_seconds`` is not a positive, finite number.
        """
        if not isinstance(lease_seconds, int | float) or not (
            math.isfinite(lease_seconds) and lease_seconds > 0
        ):
            raise ValueError(f"lease_seconds must be a positive number, got {lease_seconds!r}")
        nonce = uuid.uuid4().hex
        if self._sync().cursor is None:
            # The first write to a stream creates its storage (a SQLite shard takes ~0.3 s);
            # do that before taking the claim's timestamp, so the lease starts when it lands.
            self._append({"kind": "open"})
        self._append(
            {
                "kind": "claim",
                "pipeline": pipeline,
                "owner": owner,
                "at": time.time(),
                "lease_seconds": float(lease_seconds),
                "nonce": nonce,
            }
        )
        fold = self._sync()
        if self.settle_seconds > 0:
            time.sleep(self.settle_seconds)
            fold = self._sync()
        return fold.claims.get(nonce, False)

    def release(self, pipeline: str, owner: str) -> None:
        """Drop ``owner``'s lease on ``pipeline``; a no-op if someone else holds it."""
        self._append({"kind": "release", "pipeline": pipeline, "owner": owner})

    def close(self) -> None:
        """Dispose the instance when this run log opened it; calling twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._owned_instance:
            self.instance.dispose()


def open_from_url(url: str) -> DagsterRunLog:
    """Open the RunLog for ``dagster://[DAGSTER_HOME path]`` (the engine's plugin hook).

    ``dagster://`` uses ``$DAGSTER_HOME``; ``dagster:///abs/home`` or ``dagster://rel/home``
    names the instance folder.

    Raises:
        ConnectionFailedError: the instance cannot be opened (one line saying which folder and
            what to set).
    """
    rest = url.split("://", 1)[1] if "://" in url else ""
    try:
        return DagsterRunLog.open(rest or None)
    except Exception as error:  # no DAGSTER_HOME, a missing folder, unreachable storage
        home = rest or os.environ.get("DAGSTER_HOME") or "(DAGSTER_HOME is not set)"
        text = " ".join(str(error).split()) or type(error).__name__
        raise ConnectionFailedError(
            url,
            f"cannot open the Dagster instance at {home}: {text}; point DAGSTER_HOME (or "
            f"dagster:///path) at the folder holding dagster.yaml",
        ) from None
