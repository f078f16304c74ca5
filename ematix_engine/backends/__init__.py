"""One module per system; :func:`open_backend` picks the right one for a typed connection."""

from __future__ import annotations

import os
from typing import Any

from ematix_engine.backends.base import SqlBackend
from ematix_engine.errors import ConfigError

__all__ = ["SqlBackend", "backend_kind", "open_backend", "same_database"]


def _conn(connection: Any):
    from ematix_engine.connections import get_connection

    return get_connection(connection).resolved()


def backend_kind(connection: Any) -> str:
    """The backend a connection opens: postgres, duckdb, sqlite or delta."""
    kind = _conn(connection).kind
    return {"delta_local": "delta"}.get(kind, kind)


def open_backend(connection: Any) -> Any:
    """Open a session on ``connection`` (a name or a typed connection).

    Returns:
        A :class:`SqlBackend` for PostgreSQL, DuckDB and SQLite, or a ``DeltaBackend``.

    Raises:
        ConfigError: the connection's kind cannot be a batch source or target.
    """
    conn = _conn(connection)
    if conn.kind == "postgres":
        from ematix_engine.backends.postgres import PostgresBackend

        return PostgresBackend(conn.conninfo(), connection=conn)
    if conn.kind == "duckdb":
        from ematix_engine.backends.duckdb import DuckDBBackend

        _parent_dir(conn.path)
        return DuckDBBackend(conn.path, connection=conn)
    if conn.kind == "sqlite":
        from ematix_engine.backends.sqlite import SQLiteBackend

        _parent_dir(conn.path)
        return SQLiteBackend(conn.path, connection=conn)
    if conn.kind == "delta_local":
        from ematix_engine.backends.delta import DeltaBackend

        return DeltaBackend(conn.path, connection=conn)
    raise ConfigError(
        f"connection {conn.name!r} is of kind {conn.kind!r}, which batch pipelines cannot read "
        f"or write; use postgres, duckdb, sqlite or delta_local"
    )


def _parent_dir(path: str) -> None:
    if path != ":memory:":
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)


def same_database(a: Any, b: Any) -> bool:
    """Whether two connections reach the same database (so SQL can run across them)."""
    first, second = _conn(a), _conn(b)
    if first.kind != second.kind:
        return False
    if first.kind == "postgres":
        return first.conninfo() == second.conninfo()
    if first.kind in ("duckdb", "sqlite"):
        if ":memory:" in (first.path, second.path):
            return first is second
        return os.path.abspath(first.path) == os.path.abspath(second.path)
    return False
