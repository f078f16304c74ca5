"""One empty table store per backend, for tests that run the same check on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ematix_engine.connections import (
    DeltaLocalConnection,
    DuckDBConnection,
    PostgresConnection,
    SQLiteConnection,
)

#: Every backend a store can be.
KINDS = ("duckdb", "sqlite", "delta", "postgres")


def make_store(
    kind: str, name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Any, str]:
    """A typed connection to an empty store of ``kind``, and the schema to write in.

    PostgreSQL uses the test's throwaway schema (fixture ``pg_schema``); the file stores live
    under ``tmp_path``. ``repr(connection)`` is Python that rebuilds the connection.
    """
    if kind == "duckdb":
        return DuckDBConnection(name=name, path=str(tmp_path / f"{name}.duckdb")), "s"
    if kind == "sqlite":
        return SQLiteConnection(name=name, path=str(tmp_path / f"{name}.sqlite")), "main"
    if kind == "delta":
        return DeltaLocalConnection(name=name, path=str(tmp_path / f"{name}.delta")), "s"
    schema = request.getfixturevalue("pg_schema")
    return PostgresConnection(name=name, url=schema.dsn), schema.name
