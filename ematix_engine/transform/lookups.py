"""Lookup tables for ``transform_sql``: loaded through the engine's backends, refreshed in place.

A :class:`Lookup` names a query (or a table) on any database connection the engine can read
(PostgreSQL, DuckDB, SQLite, Delta). :class:`LookupTable` loads it once with
``open_backend(connection).read_arrow(query)`` and, with ``refresh_interval_ms``, reloads it on a
daemon thread. The reload runs outside any lock; only the swap (one ``register`` call on the
stage's session) runs under the stage's lock, which :meth:`TransformStage.run` also holds, so a
batch sees either the old table or the new one, never a half-swapped one. A failed reload keeps
the old table and logs a warning naming the pipeline and the lookup (redacted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ematix_engine.errors import ConfigError, EmatixError
from ematix_engine.transform.errors import LookupLoadError

__all__ = ["Lookup", "LookupTable"]

log = logging.getLogger("ematix.transform.lookups")


@dataclass(frozen=True, slots=True, kw_only=True)
class Lookup:
    """A reference table joined by ``transform_sql`` under the name of its ``lookups`` key.

    Give either ``query`` (SQL in the connection's own dialect) or ``table`` (with an optional
    ``schema``), as in the reference guide.

    Attributes:
        connection: a connection name or typed connection (PostgreSQL, DuckDB, SQLite, Delta).
        query: the query whose result is the lookup table.
        table: a table to read whole, instead of ``query``.
        schema: the schema of ``table``.
        refresh_interval_ms: reload every this many milliseconds on a background thread
            (``None``: load once at start-up).

    Examples:
        >>> Lookup(connection="refdata", table="users", refresh_interval_ms=300_000).table
        'users'
    """

    connection: Any
    query: str | None = None
    table: str | None = None
    schema: str | None = None
    refresh_interval_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.query is None) == (self.table is None):
            raise ConfigError("Lookup: give exactly one of query= or table=")
        if self.schema is not None and self.table is None:
            raise ConfigError("Lookup: schema= goes with table=, not with query=")
        interval = self.refresh_interval_ms
        if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)):
            raise ConfigError(f"Lookup: refresh_interval_ms must be an int, got {interval!r}")
        if interval is not None and interval <= 0:
            raise ConfigError(f"Lookup: refresh_interval_ms must be positive, got {interval}")

    def load(self) -> pa.Table:
        """Read the lookup through the engine's backend for its connection."""
        from ematix_engine.backends import open_backend

        backend = open_backend(self.connection)
        try:
            sql = self.query
            if sql is None:
                sql = f"SELECT * FROM {backend.table_sql(self.schema, self.table)}"
            return backend.read_arrow(sql).read_all()
        finally:
            backend.close()


def _describe(error: BaseException, connection: Any) -> str:
    from ematix_engine.connections.redaction import redact

    text = str(error) if isinstance(error, EmatixError) else f"{type(error).__name__}: {error}"
    try:
        from ematix_engine.connections import get_connection

        return redact(text, get_connection(connection))
    except Exception:  # an unknown connection name: structural redaction only
        return redact(text)


class LookupTable:
    """One lookup of one stage: the current Arrow table and its refresh thread.

    Args:
        pipeline: the pipeline name (for errors and warnings).
        name: the table name in SQL (the ``lookups`` key).
        lookup: what to load.
        install: called with the freshly loaded table; it swaps it into the session.
    """

    def __init__(
        self, pipeline: str, name: str, lookup: Lookup, install: Callable[[str, pa.Table], None]
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.lookup = lookup
        self._install = install
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: How many reloads succeeded / failed since start-up.
        self.refreshes = 0
        self.failed_refreshes = 0
        try:
            table = lookup.load()
        except Exception as error:
            raise LookupLoadError(pipeline, name, _describe(error, lookup.connection)) from None
        self.table = table
        install(name, table)

    def start(self) -> None:
        """Start the refresh thread when ``refresh_interval_ms`` is set."""
        if self.lookup.refresh_interval_ms is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, name=f"ematix-lookup-{self.pipeline}-{self.name}", daemon=True
        )
        self._thread.start()

    def refresh(self) -> bool:
        """Reload now and swap on success; on failure keep the old table and log a warning.

        Returns:
            Whether the new table was installed.
        """
        try:
            table = self.lookup.load()
            self._install(self.name, table)
        except Exception as error:
            self.failed_refreshes += 1
            log.warning(
                "pipeline %r: refreshing lookup %r failed; keeping the previous table (%d rows): "
                "%s",
                self.pipeline,
                self.name,
                self.table.num_rows,
                _describe(error, self.lookup.connection),
            )
            return False
        self.table = table
        self.refreshes += 1
        return True

    def _loop(self) -> None:
        interval = self.lookup.refresh_interval_ms / 1000  # type: ignore[operator]
        while not self._stop.wait(interval):
            self.refresh()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the refresh thread (waits for a reload in flight up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
