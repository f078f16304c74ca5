"""One module per system; :func:`open_backend` picks the right one for a typed connection."""

from __future__ import annotations

import importlib
import os
from typing import Any

from ematix_engine.backends.base import SqlBackend
from ematix_engine.backends.store import TableStore
from ematix_engine.errors import ConfigError

__all__ = [
    "SqlBackend",
    "TableStore",
    "backend_class",
    "backend_class_for_dialect",
    "backend_kind",
    "open_backend",
    "same_database",
]

#: Backend class by connection kind, as ``module:class`` (imported on first use).
_CLASSES = {
    "postgres": "ematix_engine.backends.postgres:PostgresBackend",
    "duckdb": "ematix_engine.backends.duckdb:DuckDBBackend",
    "sqlite": "ematix_engine.backends.sqlite:SQLiteBackend",
    "delta_local": "ematix_engine.backends.delta:DeltaBackend",
}


def _conn(connection: Any):
    from ematix_engine.connections import get_connection

    return get_connection(connection).resolved()


def backend_kind(connection: Any) -> str:
    """The backend a connection opens: postgres, duckdb, sqlite or delta."""
    kind = _conn(connection).kind
    return {"delta_local": "delta"}.get(kind, kind)


def backend_class(connection: Any) -> type:
    """The backend class a connection opens, without opening it (for planning and preview).

    Raises:
        ConfigError: the connection's kind cannot be a batch source or target.
    """
    conn = _conn(connection)
    path = _CLASSES.get(conn.kind)
    if path is None:
        raise ConfigError(
            f"connection {conn.name!r} is of kind {conn.kind!r}, which batch pipelines cannot "
            f"read or write; use postgres, duckdb, sqlite or delta_local"
        )
    return _import(path)


def backend_class_for_dialect(dialect: str) -> type[SqlBackend]:
    """The SQL backend class that speaks ``dialect`` (postgres, duckdb or sqlite)."""
    for kind in ("postgres", "duckdb", "sqlite"):
        cls = _import(_CLASSES[kind])
        if cls.dialect == dialect:
            return cls
    raise ValueError(f"no backend speaks the {dialect!r} dialect")


def _import(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def open_backend(connection: Any, *, read_only: bool = False) -> Any:
    """Open a session on ``connection`` (a name or a typed connection).

    Args:
        connection: a connection name or a typed connection.
        read_only: open the store for reading only (sources, validation, checks). A DuckDB
            file is then opened without its exclusive write lock, so other readers (and the
            source's own target, in another process) are not locked out.

    Returns:
        A :class:`TableStore`: a :class:`SqlBackend` for PostgreSQL, DuckDB and SQLite, or a
        ``DeltaBackend``.

    Raises:
        ConfigError: the connection's kind cannot be a batch source or target.
        ConnectionFailedError: the database could not be opened: one redacted line naming
            the connection, the setting that defined it and what to do (the driver's error is
            not chained, as its text may quote the DSN).
    """
    from ematix_engine.connections.failures import connection_failed
    from ematix_engine.errors import EmatixError

    conn = _conn(connection)
    cls = backend_class(conn)
    try:
        return cls.open(conn, read_only=True) if read_only else cls.open(conn)
    except EmatixError:
        raise
    except Exception as error:  # the driver's text may quote the DSN: redacted, one line
        raise connection_failed(conn, error) from None


def same_database(a: Any, b: Any) -> bool:
    """Whether two connections reach the same database (so SQL can run across them)."""
    first, second = _conn(a), _conn(b)
    if first.kind != second.kind:
        return False
    if first.kind == "postgres":
        return first.conninfo() == second.conninfo()
    if first.kind in ("duckdb", "sqlite", "delta_local"):
        if ":memory:" in (first.path, second.path):
            return first is second
        return os.path.abspath(first.path) == os.path.abspath(second.path)
    return False
