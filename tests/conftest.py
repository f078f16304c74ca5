"""Shared pytest setup: service fixtures (see `tests/fixtures/`) and the integration marker.

Fixtures available to every test:

- PostgreSQL: `pg_dsn` (session), `pg_schema` (a throwaway schema), `pg_conn` (autocommit,
  search_path = that schema).
- Kafka protocol: `kafka_bootstrap` (session Tansu broker), `kafka_client_config`,
  `kafka_topic`.
- Paths: `tmp_duckdb_path`, `tmp_sqlite_path`, `tmp_delta_path`, `tmp_files_dir`.
- Dagster: `dagster_home`, `dagster_instance`.

A service that cannot be had skips the test locally and fails it when `CI=true`.
Every test under `tests/integration/` is marked `integration` (`pytest -m "not integration"`
runs the fast unit tests only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.dagster_instance",
    "tests.fixtures.kafka",
    "tests.fixtures.paths",
    "tests.fixtures.postgres",
]

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from `tests/integration/` with `pytest.mark.integration`."""
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _clear_ematix_registries() -> Iterator[None]:
    """Forget pipelines and Python-registered connections after each test."""
    yield
    from ematix_engine import registry

    registry.clear()
    try:
        from ematix_engine.connections import clear_registry
    except ImportError:  # pragma: no cover - connections package not there yet
        return
    clear_registry()
