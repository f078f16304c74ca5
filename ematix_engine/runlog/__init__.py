"""Durable run history: the RunLog protocol, its records, and backends opened by URL.

``open_run_log("sqlite://.ematix/run_log.db")`` (the default), ``"memory://"``,
``"postgres://user:pw@host/db"`` or ``"duckdb://path"`` returns a
:class:`~ematix_engine.runlog.base.RunLog`. See ``docs/operations.md``.
"""

from ematix_engine.runlog.base import (
    AttemptState,
    RunLog,
    RunRecord,
    RunStatus,
    attempt_state_from,
)
from ematix_engine.runlog.factory import DEFAULT_RUN_LOG_URL, RUN_LOG_SCHEMES, open_run_log
from ematix_engine.runlog.memory import MemoryRunLog
from ematix_engine.runlog.sqlite import SqliteRunLog

__all__ = [
    "DEFAULT_RUN_LOG_URL",
    "RUN_LOG_SCHEMES",
    "AttemptState",
    "DuckDBRunLog",
    "MemoryRunLog",
    "PostgresRunLog",
    "RunLog",
    "RunRecord",
    "RunStatus",
    "SqliteRunLog",
    "attempt_state_from",
    "open_run_log",
]


def __getattr__(name: str) -> object:
    # DuckDB and psycopg are imported only when their backend is used.
    if name == "DuckDBRunLog":
        from ematix_engine.runlog.duckdb import DuckDBRunLog

        return DuckDBRunLog
    if name == "PostgresRunLog":
        from ematix_engine.runlog.postgres import PostgresRunLog

        return PostgresRunLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
