"""Open a RunLog from the URL given to ``--run-log`` (or any config)."""

from __future__ import annotations

import logging

from ematix_engine.errors import ConnectionFailedError
from ematix_engine.runlog.base import RunLog
from ematix_engine.runlog.memory import MemoryRunLog
from ematix_engine.runlog.sqlite import DEFAULT_SQLITE_PATH
from ematix_engine.runlog.urls import redact_url, split_scheme, unknown_scheme_error

__all__ = ["DEFAULT_RUN_LOG_URL", "RUN_LOG_SCHEMES", "open_run_log"]

logger = logging.getLogger("ematix.runlog")

DEFAULT_RUN_LOG_URL = f"sqlite://{DEFAULT_SQLITE_PATH}"
"""The run log used when none is configured: ``sqlite://.ematix/run_log.db``."""

RUN_LOG_SCHEMES: tuple[str, ...] = ("duckdb", "memory", "postgres", "postgresql", "sqlite")
"""URL schemes :func:`open_run_log` understands."""


def _open(url: str) -> RunLog:
    scheme, rest = split_scheme(url)
    if scheme == "memory":
        return MemoryRunLog()
    if scheme == "sqlite":
        from ematix_engine.runlog.sqlite import SqliteRunLog

        return SqliteRunLog(rest or DEFAULT_SQLITE_PATH)
    if scheme == "duckdb":
        from ematix_engine.runlog.duckdb import DEFAULT_DUCKDB_PATH, DuckDBRunLog

        return DuckDBRunLog(rest or DEFAULT_DUCKDB_PATH)
    if scheme in ("postgres", "postgresql"):
        from ematix_engine.runlog.postgres import PostgresRunLog

        return PostgresRunLog.from_url(url)
    plugin = _plugins().get(scheme)
    if plugin is not None:
        return plugin.load()(url)
    raise unknown_scheme_error("run log", url, (*RUN_LOG_SCHEMES, *sorted(_plugins())))


def _plugins() -> dict:
    """Run logs other packages provide through the ``ematix_engine.run_logs`` entry points.

    ``ematix_dagster`` registers ``dagster://`` this way, so ``ematix status --run-log
    dagster://`` reads Dagster's own storage while the engine never imports Dagster.
    """
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group="ematix_engine.run_logs")}


def open_run_log(url: str = DEFAULT_RUN_LOG_URL, *, fallback: bool = False) -> RunLog:
    """Open the run log ``url`` names.

    ============================================  ==============================================
    URL                                           Backend
    ============================================  ==============================================
    ``sqlite://.ematix/run_log.db``               SQLite file, path relative to the cwd (default)
    ``sqlite:///var/lib/ematix/run_log.db``       SQLite file, absolute path
    ``memory://``                                 In-process, lost on exit
    ``postgres://user:pw@host:5432/db``           Postgres (``postgresql://`` too); query
                                                  ``schema=`` (default ``ematix``) and
                                                  ``create_tables=false``
    ``duckdb://path/to/run_log.duckdb``           DuckDB file (single writer process)
    ``dagster://`` (``dagster:///home``)          The Dagster instance of ``$DAGSTER_HOME`` (or
                                                  that folder); needs ``ematix_dagster``
    ============================================  ==============================================

    Args:
        url: The run log URL.
        fallback: When the store cannot be opened or written (read-only filesystem, server
            down, credentials refused), log a warning and return a :class:`MemoryRunLog`
            instead of raising. Only for a single process that needs neither history nor
            exclusion (a notebook, a one-off script): a memory log's leases exclude nobody
            outside this process, so two workers falling back would both load. The CLI never
            falls back (an unreachable run log stops ``run``, ``run-due`` and ``status`` with
            exit code 1). A malformed URL still raises.

    Returns:
        An open :class:`~ematix_engine.runlog.base.RunLog`; call ``close()`` when done.

    Raises:
        ConfigError: The scheme is unknown or a URL parameter is malformed.
        ConnectionFailedError: The store cannot be opened and ``fallback`` is false.

    Examples:
        >>> log = open_run_log("memory://")
        >>> log.record_skip("orders", reason="upstream 'raw' failed").reason
        "upstream 'raw' failed"
        >>> log.close()
    """
    try:
        return _open(url)
    except ConnectionFailedError as exc:
        if not fallback:
            raise
        logger.warning(
            "run log %s is unavailable (%s); continuing with an in-memory run log: run history "
            "and retry state will not survive this process",
            redact_url(url),
            exc.reason,
        )
        return MemoryRunLog()
