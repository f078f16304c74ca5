"""Shared pytest setup: service fixtures (see `tests/fixtures/`) and the integration marker.

Fixtures available to every test:

- PostgreSQL: `pg_dsn` (session), `pg_schema` (a throwaway schema), `pg_conn` (autocommit,
  search_path = that schema).
- Kafka protocol: `kafka_bootstrap` (session Tansu broker), `kafka_client_config`,
  `kafka_topic`.
- Paths: `tmp_duckdb_path`, `tmp_sqlite_path`, `tmp_delta_path`, `tmp_files_dir`.
- Dagster: `dagster_home`, `dagster_instance`.

A service that cannot be had skips the test locally and fails it when `CI=true`.

Temporary folders (`tmp_path` & co.) live on a RAM disk (`/dev/shm`) when the machine has one
with room to spare: SQLite, DuckDB, Delta and Dagster's SQLite storage then sync to memory
instead of the disk, which makes the file-backed tests markedly faster and changes nothing
they prove (no test simulates a power loss). `EMATIX_TEST_TMPROOT` names another root
(`EMATIX_TEST_TMPROOT=/tmp` keeps them on disk); `--basetemp` and `PYTEST_DEBUG_TEMPROOT`
still win.
Every test under `tests/integration/` is marked `integration` (`pytest -m "not integration"`
runs the fast unit tests only).
"""

from __future__ import annotations

import os
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

RAM_DISK = Path("/dev/shm")
#: Use the RAM disk only when at least this much of it is free.
RAM_DISK_MIN_FREE = 2 * 1024**3


def _fast_temp_root() -> str | None:
    """The folder to hold pytest's temporary folders, or None for the default (`/tmp`)."""
    if explicit := os.environ.get("EMATIX_TEST_TMPROOT"):
        return explicit
    try:
        usage = os.statvfs(RAM_DISK)
    except OSError:
        return None
    if usage.f_bavail * usage.f_frsize < RAM_DISK_MIN_FREE or not os.access(RAM_DISK, os.W_OK):
        return None
    return str(RAM_DISK)


def pytest_configure(config: pytest.Config) -> None:
    """Root `tmp_path` & co. on the RAM disk (see the module docstring)."""
    if config.option.basetemp is not None or "PYTEST_DEBUG_TEMPROOT" in os.environ:
        return
    if root := _fast_temp_root():
        # Read by pytest's TempPathFactory when it makes the session's base folder.
        os.environ["PYTEST_DEBUG_TEMPROOT"] = root


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
