"""DuckDB RunLog (``duckdb://path``): run history in a file you can query with DuckDB SQL.

DuckDB lets one process write a database file at a time, so this backend suits a single host
(local development, inspection with ``SELECT … FROM ematix_runs``). Within the process it is
thread-safe, and several instances opened on the same path share DuckDB's database instance.
Leases are taken inside one transaction (``UPDATE … WHERE`` then ``INSERT OR IGNORE``), guarded
by the instance lock; cross-process leases need the SQLite or Postgres backend.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ematix_engine.errors import ConnectionFailedError
from ematix_engine.runlog._sql import COLUMNS, lease_sql, record_row, select_sql, upsert_sql
from ematix_engine.runlog._store import PageCursor, RecordStore, check_lease_args
from ematix_engine.runlog.base import RunRecord, RunStatus

__all__ = ["DEFAULT_DUCKDB_PATH", "DuckDBRunLog"]

logger = logging.getLogger("ematix.runlog.duckdb")

DEFAULT_DUCKDB_PATH = ".ematix/run_log.duckdb"
"""Where ``duckdb://`` without a path puts the run log, relative to the cwd."""

_RUNS = '"ematix_runs"'
_LEASES = '"ematix_leases"'

_DDL = (
    'CREATE SEQUENCE IF NOT EXISTS "ematix_runs_seq"',
    f"""CREATE TABLE IF NOT EXISTS {_RUNS} (
    "seq" BIGINT NOT NULL DEFAULT nextval('ematix_runs_seq'),
    "run_id" VARCHAR PRIMARY KEY,
    "pipeline" VARCHAR NOT NULL,
    "status" VARCHAR NOT NULL,
    "attempt" INTEGER NOT NULL,
    "rows_inserted" BIGINT NOT NULL DEFAULT 0,
    "rows_updated" BIGINT NOT NULL DEFAULT 0,
    "rows_unchanged" BIGINT NOT NULL DEFAULT 0,
    "rows_closed" BIGINT NOT NULL DEFAULT 0,
    "rows_deleted" BIGINT NOT NULL DEFAULT 0,
    "watermark" VARCHAR,
    "error" VARCHAR,
    "reason" VARCHAR,
    "metrics" JSON NOT NULL DEFAULT '{{}}',
    "started_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ
)""",
    f"""CREATE TABLE IF NOT EXISTS {_LEASES} (
    "pipeline" VARCHAR PRIMARY KEY,
    "owner" VARCHAR NOT NULL,
    "expires_at" DOUBLE NOT NULL
)""",
)
_UPSERT = upsert_sql(_RUNS, "?")
_CLAIM_UPDATE, _CLAIM_INSERT, _RELEASE = lease_sql(_LEASES)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


class DuckDBRunLog(RecordStore):
    """A RunLog in a DuckDB database file.

    Args:
        path: Database file (parent directories are created) or ``":memory:"``.

    Raises:
        ConnectionFailedError: The file cannot be created or opened (for instance because
            another process holds DuckDB's write lock on it).
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DUCKDB_PATH) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._closed = False
        try:
            target = self.path
            if target != ":memory:":
                resolved = Path(target).expanduser()
                resolved.parent.mkdir(parents=True, exist_ok=True)
                target = str(resolved)
            self._conn = duckdb.connect(target)
            self._conn.execute("SET TimeZone = 'UTC'")
            for statement in _DDL:
                self._conn.execute(statement)
        except (OSError, duckdb.Error) as exc:
            raise ConnectionFailedError(f"duckdb://{self.path}", str(exc)) from exc

    def __repr__(self) -> str:
        return f"DuckDBRunLog({self.path!r})"

    def _execute(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(query, list(params)).fetchall()

    def _upsert(self, record: RunRecord) -> None:
        row = record_row(record, metrics=json.dumps)
        self._execute(_UPSERT, row)

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
            params.extend((before.started_at, before.started_at, before.seq))
        params.append(limit)
        return [(self._record(row), row[-1]) for row in self._execute(query, params)]

    @staticmethod
    def _record(row: Sequence[Any]) -> RunRecord:
        data = dict(zip(COLUMNS, row, strict=False))
        metrics = data["metrics"]
        data["metrics"] = json.loads(metrics) if isinstance(metrics, str) else (metrics or {})
        data["started_at"] = _utc(data["started_at"])
        data["finished_at"] = _utc(data["finished_at"])
        return RunRecord(**data)

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """See :meth:`ematix_engine.runlog.base.RunLog.claim`."""
        check_lease_args(pipeline, owner, lease_seconds)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN TRANSACTION")
            try:
                now = time.time()
                expires = now + lease_seconds
                updated = conn.execute(
                    _CLAIM_UPDATE, [owner, expires, pipeline, owner, now]
                ).fetchall()[0][0]
                if updated != 1:
                    updated = conn.execute(_CLAIM_INSERT, [pipeline, owner, expires]).fetchall()[0][
                        0
                    ]
                conn.execute("COMMIT")
            except duckdb.TransactionException:
                # Another connection changed the lease row concurrently: it won this round.
                conn.execute("ROLLBACK")
                return False
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return updated == 1

    def release(self, pipeline: str, owner: str) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.release`."""
        self._execute(_RELEASE, (pipeline, owner))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
