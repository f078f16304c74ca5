"""PostgreSQL RunLog (``postgres://user:pw@host/db``): one history shared by many hosts.

Tables live in schema ``ematix`` (``?schema=name`` picks another) as ``run_log`` and
``run_leases``. They are created on first use, under a transaction-scoped advisory lock so
several processes starting together do not trip over each other; ``?create_tables=false`` skips
the DDL when migrations are managed elsewhere. Every other query-string parameter
(``sslmode``, ``connect_timeout``, …) goes to libpq unchanged.

A lease is one statement, a compare-and-set on the lease row::

    INSERT … VALUES (pipeline, owner, now + lease)
    ON CONFLICT (pipeline) DO UPDATE SET owner = EXCLUDED.owner, expires_at = …
    WHERE leases.owner = EXCLUDED.owner OR leases.expires_at <= clock_timestamp()
    RETURNING owner

A row comes back only for the winner. Expiry uses the database server's clock, so hosts with
skewed clocks still agree on when a lease ends.

The password never leaves this module: ``repr``, log lines and error messages show the URL with
the password replaced by ``***``. The schema name is the only variable identifier and is composed
with :class:`psycopg.sql.Identifier`; every value is a bind parameter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ematix_engine.connections.redaction import scrub
from ematix_engine.errors import ConfigError, ConnectionFailedError
from ematix_engine.runlog._sql import COLUMNS, record_row, select_sql, upsert_sql
from ematix_engine.runlog._store import PageCursor, RecordStore, check_lease_args
from ematix_engine.runlog.base import RunRecord, RunStatus
from ematix_engine.runlog.urls import redact_url

__all__ = ["DEFAULT_PG_SCHEMA", "PostgresRunLog"]

logger = logging.getLogger("ematix.runlog.postgres")

DEFAULT_PG_SCHEMA = "ematix"
"""Schema of the run-log tables unless the URL says ``?schema=…``."""

_T = TypeVar("_T")
_RUNS = "run_log"
_LEASES = "run_leases"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

_DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ematix.runlog.ddl'))"
_DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    """CREATE TABLE IF NOT EXISTS {runs} (
    "seq" BIGINT GENERATED ALWAYS AS IDENTITY,
    "run_id" TEXT PRIMARY KEY,
    "pipeline" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    "rows_inserted" BIGINT NOT NULL DEFAULT 0,
    "rows_updated" BIGINT NOT NULL DEFAULT 0,
    "rows_unchanged" BIGINT NOT NULL DEFAULT 0,
    "rows_closed" BIGINT NOT NULL DEFAULT 0,
    "rows_deleted" BIGINT NOT NULL DEFAULT 0,
    "watermark" TEXT,
    "error" TEXT,
    "reason" TEXT,
    "metrics" JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    "started_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ
)""",
    """CREATE INDEX IF NOT EXISTS "run_log_pipeline_started_idx"
    ON {runs} ("pipeline", "started_at" DESC, "seq" DESC)""",
    """CREATE TABLE IF NOT EXISTS {leases} (
    "pipeline" TEXT PRIMARY KEY,
    "owner" TEXT NOT NULL,
    "acquired_at" TIMESTAMPTZ NOT NULL,
    "expires_at" TIMESTAMPTZ NOT NULL
)""",
)
_TABLES_EXIST = "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL"
_CLAIM = """INSERT INTO {leases} AS "l" ("pipeline", "owner", "acquired_at", "expires_at")
VALUES (%s, %s, clock_timestamp(), clock_timestamp() + make_interval(secs => %s))
ON CONFLICT ("pipeline") DO UPDATE SET
    "owner" = EXCLUDED."owner",
    "expires_at" = EXCLUDED."expires_at",
    "acquired_at" = CASE WHEN "l"."owner" = EXCLUDED."owner"
                         THEN "l"."acquired_at" ELSE EXCLUDED."acquired_at" END
WHERE "l"."owner" = EXCLUDED."owner" OR "l"."expires_at" <= clock_timestamp()
RETURNING "owner"
"""
_RELEASE = 'DELETE FROM {leases} WHERE "pipeline" = %s AND "owner" = %s'


def _parse_bool(name: str, value: str, url: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(
        f"run log URL {redact_url(url)!r}: {name}={value!r} is not a boolean; use true or false"
    )


class PostgresRunLog(RecordStore):
    """A RunLog in PostgreSQL tables, safe to share between processes and hosts.

    Use :meth:`from_url` (or :func:`~ematix_engine.runlog.open_run_log`) to build one from a
    ``postgres://`` URL with ``schema`` / ``create_tables`` query parameters.

    Args:
        conninfo: libpq connection string or URL (without the ematix-only parameters).
        schema: Schema holding ``run_log`` and ``run_leases``.
        create_tables: Create the schema and tables when missing.
        connect_kwargs: Extra keyword arguments for :func:`psycopg.connect`.

    Raises:
        ConnectionFailedError: The server is unreachable, the credentials are refused, or the
            tables are missing and cannot be created. The message is redacted.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_PG_SCHEMA,
        create_tables: bool = True,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(schema, str) or not schema or len(schema.encode()) > 63:
            raise ConfigError(
                f"run log schema {schema!r} must be a non-empty name of at most 63 bytes"
            )
        self.schema = schema
        self.create_tables = create_tables
        self._conninfo = conninfo
        self._display = redact_url(conninfo)
        self._secrets = _secrets_of(conninfo)
        self._connect_kwargs = dict(connect_kwargs or {})
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._closed = False
        schema_id = sql.Identifier(schema)
        self._runs = sql.Identifier(schema, _RUNS)
        self._leases = sql.Identifier(schema, _LEASES)
        self._ddl = [
            sql.SQL(text).format(schema=schema_id, runs=self._runs, leases=self._leases)
            for text in _DDL
        ]
        self._upsert_sql = sql.SQL(upsert_sql("{table}", "%s")).format(table=self._runs)
        self._claim_sql = sql.SQL(_CLAIM).format(leases=self._leases)
        self._release_sql = sql.SQL(_RELEASE).format(leases=self._leases)
        try:
            with self._lock:
                self._ensure_tables(self._connection())
        except psycopg.Error as exc:
            self.close()
            raise ConnectionFailedError(self._display, self._scrub(str(exc))) from None
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> PostgresRunLog:
        """Open the run log a ``postgres://`` / ``postgresql://`` URL names.

        Args:
            url: e.g. ``postgres://flow:pw@db/flow_history?schema=ops&create_tables=false``.

        Returns:
            The connected run log.

        Raises:
            ConfigError: A query parameter is malformed.
            ConnectionFailedError: See the class docstring.
        """
        parts = urlsplit(url)
        schema = DEFAULT_PG_SCHEMA
        create_tables = True
        passthrough: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "schema":
                schema = value
            elif key == "create_tables":
                create_tables = _parse_bool(key, value, url)
            else:
                passthrough.append((key, value))
        keys = {key for key, _ in passthrough}
        kwargs: dict[str, Any] = {}
        if "connect_timeout" not in keys:
            kwargs["connect_timeout"] = 10
        if "application_name" not in keys:
            kwargs["application_name"] = "ematix-runlog"
        conninfo = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(passthrough), parts.fragment)
        )
        return cls(conninfo, schema=schema, create_tables=create_tables, connect_kwargs=kwargs)

    def __repr__(self) -> str:
        return f"PostgresRunLog({self._display!r}, schema={self.schema!r})"

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._closed:
                raise ConnectionFailedError(self._display, "the run log is closed")
            if conn is not None:
                logger.warning("run log %s: reconnecting after a lost connection", self._display)
            conn = psycopg.connect(self._conninfo, autocommit=True, **self._connect_kwargs)
            self._conn = conn
        return conn

    def _ensure_tables(self, conn: psycopg.Connection) -> None:
        quoted = (self._runs.as_string(conn), self._leases.as_string(conn))
        exists = conn.execute(_TABLES_EXIST, quoted).fetchone()
        if exists and exists[0]:
            return
        if not self.create_tables:
            raise ConnectionFailedError(
                self._display,
                f"tables {quoted[0]} and {quoted[1]} do not exist and create_tables=false; "
                "create them (drop create_tables=false once to let ematix do it)",
            )
        with conn.transaction():
            conn.execute(_DDL_LOCK)
            for statement in self._ddl:
                conn.execute(statement)

    def _run(self, action: Callable[[psycopg.Connection], _T]) -> _T:
        """Run ``action`` under the lock, retrying once on a connection that broke."""
        with self._lock:
            for retry in (False, True):
                conn = self._connection()
                try:
                    return action(conn)
                except psycopg.OperationalError:
                    if retry or not conn.broken:
                        raise
                    logger.warning("run log %s: connection lost, retrying once", self._display)
            raise AssertionError("unreachable")  # pragma: no cover

    def _upsert(self, record: RunRecord) -> None:
        row = record_row(record, metrics=Jsonb)
        self._run(lambda conn: conn.execute(self._upsert_sql, row))

    def _fetch_page(
        self,
        pipeline: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int,
        before: PageCursor | None,
    ) -> list[tuple[RunRecord, int]]:
        text = select_sql(
            "{table}",
            "%s",
            pipeline=pipeline is not None,
            statuses=statuses,
            before=before is not None,
        )
        query = sql.SQL(text).format(table=self._runs)
        params: list[object] = []
        if pipeline is not None:
            params.append(pipeline)
        if statuses:
            params.extend(s.value for s in statuses)
        if before is not None:
            params.extend((before.started_at, before.started_at, before.seq))
        params.append(limit)
        rows = self._run(lambda conn: conn.execute(query, params).fetchall())
        return [(self._record(row), row[-1]) for row in rows]

    @staticmethod
    def _record(row: Sequence[Any]) -> RunRecord:
        data = dict(zip(COLUMNS, row, strict=False))
        data["metrics"] = data["metrics"] or {}
        data["started_at"] = _utc(data["started_at"])
        data["finished_at"] = _utc(data["finished_at"])
        return RunRecord(**data)

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """See :meth:`ematix_engine.runlog.base.RunLog.claim`."""
        check_lease_args(pipeline, owner, lease_seconds)
        params = (pipeline, owner, float(lease_seconds))
        row = self._run(lambda conn: conn.execute(self._claim_sql, params).fetchone())
        return row is not None

    def release(self, pipeline: str, owner: str) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.release`."""
        self._run(lambda conn: conn.execute(self._release_sql, (pipeline, owner)))

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._closed = True
            if self._conn is not None and not self._conn.closed:
                self._conn.close()


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _secrets_of(conninfo: str) -> tuple[str, ...]:
    """Passwords in ``conninfo`` (user-info and ``password=`` query) to scrub from messages."""
    try:
        parts = urlsplit(conninfo)
    except ValueError:
        return ()
    found = {value for key, value in parse_qsl(parts.query) if key == "password" and value}
    if parts.password:
        found.update({parts.password, unquote(parts.password)})
    return tuple(found)
