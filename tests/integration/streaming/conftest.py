"""Fixtures of the streaming suite: ``store`` is one table store (DuckDB, SQLite, PostgreSQL,
Delta) with a helper to read a target back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ematix_engine import (
    DeltaLocalConnection,
    DuckDBConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.backends import open_backend

STORES = ("duckdb", "sqlite", "postgres", "delta")


@dataclass
class Store:
    """One target store of a test.

    Attributes:
        connection: the typed connection.
        schema: the schema test tables go in.
    """

    connection: Any
    schema: str

    def table(self, name: str) -> tuple[str, str]:
        """``(schema, name)`` for a target."""
        return (self.schema, name)

    def read(self, name: str, columns: str = "*") -> pa.Table:
        """Every row of ``schema.name``."""
        store = open_backend(self.connection)
        try:
            with store.query_session() as sql:
                table_sql = sql.table_sql(self.schema, name)
                return store.read_arrow(f"SELECT {columns} FROM {table_sql}").read_all()
        finally:
            store.close()

    def ids(self, name: str, column: str = "id") -> list[int]:
        """The sorted values of ``column`` (duplicates kept)."""
        return sorted(self.read(name).column(column).to_pylist())


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    """A fresh store of ``kind``."""
    if kind == "duckdb":
        return Store(DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb")), "main")
    if kind == "sqlite":
        return Store(SQLiteConnection(name="wh", path=str(tmp_path / "wh.sqlite")), "main")
    if kind == "delta":
        return Store(DeltaLocalConnection(name="wh", path=str(tmp_path / "delta")), "lake")
    schema = request.getfixturevalue("pg_schema")
    return Store(PostgresConnection(name="wh", url=schema.dsn), schema.name)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """One of :data:`STORES`."""
    return make_store(request.param, tmp_path, request)


@pytest.fixture
def pipeline_name() -> str:
    """A unique pipeline name (checkpoints are keyed by it)."""
    return f"stream_{uuid.uuid4().hex[:10]}"
