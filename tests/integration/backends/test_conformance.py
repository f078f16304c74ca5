"""Every backend passes the table-store conformance suite (ematix_engine.backends.conformance)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ematix_engine.backends.conformance import CHECKS
from ematix_engine.connections import (
    DeltaLocalConnection,
    DuckDBConnection,
    PostgresConnection,
    SQLiteConnection,
)

pytestmark = pytest.mark.integration

STORES = ("duckdb", "sqlite", "delta", "postgres")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    kind = request.param
    if kind == "duckdb":
        return DuckDBConnection(name="conf", path=str(tmp_path / "conf.duckdb")), "conformance"
    if kind == "sqlite":
        return SQLiteConnection(name="conf", path=str(tmp_path / "conf.sqlite")), "main"
    if kind == "delta":
        return DeltaLocalConnection(name="conf", path=str(tmp_path / "conf.delta")), "lake"
    pg_schema = request.getfixturevalue("pg_schema")
    return PostgresConnection(name="conf", url=pg_schema.dsn), pg_schema.name


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_store_conformance(check: Callable[[Any, str], None], store: tuple[Any, str]) -> None:
    connection, schema = store
    check(connection, schema)
