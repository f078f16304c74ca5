"""SQLite RunLog (``sqlite://path``), the default: ``.ematix/run_log.db`` in the working directory.

The file is opened in WAL mode with a busy timeout, so several processes on one host (cron ticks,
workers, a scheduler) can read and write it at once. Timestamps are stored as fixed-width
ISO-8601 UTC text, which sorts correctly as text; lease expiry is a Unix timestamp (``REAL``).

A lease is taken in one ``BEGIN IMMEDIATE`` transaction: ``UPDATE … WHERE "owner" = ? OR
"expires_at" <= ?`` on the existing row, else ``INSERT OR IGNORE`` a new one. SQLite runs one
writer at a time and re-evaluates the ``WHERE`` under the write lock, so of several processes
racing for a free or expired lease exactly one changes a row.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ematix_engine.errors import ConnectionFailedError
from ematix_engine.runlog._sql import COLUMNS, lease_sql, record_row, select_sql, upsert_sql
from ematix_engine.runlog._store import PageCursor, RecordStore, check_lease_args
from ematix_engine.runlog.base import RunRecord, RunStatus

__all__ = ["DEFAULT_SQLITE_PATH", "SqliteRunLog"]

logger = logging.getLogger("ematix.runlog.sqlite")

DEFAULT_SQLITE_PATH = ".ematix/run_log.db"
"""Where ``sqlite://`` (no path) and the CLI default put the run log, relative to the cwd."""

_SCHEMA_VERSION = 1
_RUNS = '"ematix_runs"'
_LEASES = '"ematix_leases"'
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"

_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {_RUNS} (
    "seq" INTEGER PRIMARY KEY AUTOINCREMENT,
    "run_id" TEXT NOT NULL UNIQUE,
    "pipeline" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "rows_inserted" INTEGER NOT NULL DEFAULT 0,
    "rows_updated" INTEGER NOT NULL DEFAULT 0,
    "rows_unchanged" INTEGER NOT NULL DEFAULT 0,
    "rows_closed" INTEGER NOT NULL DEFAULT 0,
    "rows_deleted" INTEGER NOT NULL DEFAULT 0,
    "watermark" TEXT,
    "error" TEXT,
    "reason" TEXT,
    "metrics" TEXT NOT NULL DEFAULT '{{}}',
    "started_at" TEXT NOT NULL,
    "finished_at" TEXT
)""",
    f"""CREATE INDEX IF NOT EXISTS "ematix_runs_pipeline_started"
    ON {_RUNS} ("pipeline", "started_at" DESC, "seq" DESC)""",
    f"""CREATE TABLE IF NOT EXISTS {_LEASES} (
    "pipeline" TEXT PRIMARY KEY,
    "owner" TEXT NOT NULL,
    "expires_at" REAL NOT NULL
)""",
)
_UPSERT = upsert_sql(_RUNS, "?")
_CLAIM_UPDATE, _CLAIM_INSERT, _RELEASE = lease_sql(_LEASES)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.strftime(_TS_FORMAT)


def _parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class SqliteRunLog(RecordStore):
    """A RunLog in one SQLite file.

    Args:
        path: Database file; parent directories are created. ``":memory:"`` keeps it in RAM.
        timeout: Seconds to wait for another process's write lock before failing.

    Raises:
        ConnectionFailedError: The file cannot be created, opened or written.

    Example:
        >>> import tempfile, os
        >>> log = SqliteRunLog(os.path.join(tempfile.mkdtemp(), "runs.db"))
        >>> log.record_skip("orders", reason="upstream failed").status
        <RunStatus.SKIPPED: 'skipped'>
        >>> log.close()
    """

    def __init__(
        self, path: str | os.PathLike[str] = DEFAULT_SQLITE_PATH, *, timeout: float = 30.0
    ):
        self.path = str(path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._closed = False
        try:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                Path(self.path).expanduser() if self.path != ":memory:" else self.path,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConnectionFailedError(f"sqlite://{self.path}", str(exc)) from exc
        try:
            self._initialise()
        except sqlite3.Error as exc:
            self._conn.close()
            raise ConnectionFailedError(f"sqlite://{self.path}", str(exc)) from exc

    def _initialise(self) -> None:
        conn = self._conn
        # Switching to WAL takes an exclusive lock and does not wait on the busy timeout, so
        # workers opening a brand-new file together can see "database is locked": retry it.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        conn.execute("BEGIN IMMEDIATE")  # fails fast on a read-only file, before any DDL
        try:
            for statement in _DDL:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __repr__(self) -> str:
        return f"SqliteRunLog({self.path!r})"

    def _upsert(self, record: RunRecord) -> None:
        row = record_row(record, metrics=json.dumps, timestamp=_ts)
        with self._lock:
            self._conn.execute(_UPSERT, row)

    def _fetch_page(
        self,
        pipeline: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int,
        before: PageCursor | None,
    ) -> list[tuple[RunRecord, int]]:
        query = select_sql(
            _RUNS, "?", pipeline=pipeline is not None, statuses=statuses, before=before is not None
        )
        params: list[object] = []
        if pipeline is not None:
            params.append(pipeline)
        if statuses:
            params.extend(s.value for s in statuses)
        if before is not None:
            started = _ts(before.started_at)
            params.extend((started, started, before.seq))
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        return [(self._record(row), row[-1]) for row in rows]

    @staticmethod
    def _record(row: Sequence[object]) -> RunRecord:
        data = dict(zip(COLUMNS, row, strict=False))
        data["metrics"] = json.loads(data["metrics"] or "{}")
        data["started_at"] = _parse_ts(data["started_at"])
        data["finished_at"] = _parse_ts(data["finished_at"])
        return RunRecord(**data)

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """See :meth:`ematix_engine.runlog.base.RunLog.claim`."""
        check_lease_args(pipeline, owner, lease_seconds)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                expires = now + lease_seconds
                won = conn.execute(_CLAIM_UPDATE, (owner, expires, pipeline, owner, now)).rowcount
                if won != 1:
                    won = conn.execute(_CLAIM_INSERT, (pipeline, owner, expires)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return won == 1

    def release(self, pipeline: str, owner: str) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.release`."""
        with self._lock:
            self._conn.execute(_RELEASE, (pipeline, owner))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
