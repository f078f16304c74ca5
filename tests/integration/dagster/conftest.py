"""Fixtures of the Dagster suite: the example project on temp data, Postgres databases.

The example's connections read ``${EMATIX_DATA_DIR}`` when used, so each test points that
variable at its own folder. ``tests/conftest.py`` forgets Python-registered connections after
every test; ``example_data`` registers the example's again.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session", autouse=True)
def _example_data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every import of the example away from the repository's own ``.data``."""
    root = tmp_path_factory.mktemp("example_import_data")
    old = os.environ.get("EMATIX_DATA_DIR")
    os.environ["EMATIX_DATA_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("EMATIX_DATA_DIR", None)
    else:
        os.environ["EMATIX_DATA_DIR"] = old


@pytest.fixture
def example_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder for the example, with its shop at day 0 and connections registered."""
    data = tmp_path / "data"
    monkeypatch.setenv("EMATIX_DATA_DIR", str(data))
    from example_project import connections
    from example_project.shop import ensure_shop

    connections.register()
    ensure_shop()
    return data


@pytest.fixture
def example_defs(example_data: Path) -> dg.Definitions:
    """The example's definitions (built on first import, data in ``example_data``)."""
    from example_project.definitions import defs

    return defs


def pg_url(dsn: str, dbname: str | None = None) -> str:
    """A ``postgresql://`` URL for ``dsn`` (any libpq form), optionally another database."""
    params = conninfo_to_dict(dsn)
    user = params.get("user") or "postgres"
    auth = user + (f":{params['password']}" if params.get("password") else "")
    host = params.get("host") or "127.0.0.1"
    port = params.get("port") or 5432
    return f"postgresql://{auth}@{host}:{port}/{dbname or params.get('dbname') or 'postgres'}"


@contextlib.contextmanager
def scratch_database(dsn: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named database on the server of ``dsn``; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_database(pg_dsn: str) -> Iterator[str]:
    """A URL of a fresh, empty database (dropped after the test)."""
    with scratch_database(pg_dsn, "ematix_dg") as name:
        yield pg_url(pg_dsn, name)


@contextlib.contextmanager
def postgres_dagster_instance(dsn: str, home: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose run, event and schedule storage is its own Postgres database."""
    with scratch_database(dsn, "ematix_dgstore") as name:
        params = conninfo_to_dict(dsn)
        storage = {
            "postgres": {
                "postgres_db": {
                    "username": params.get("user") or "postgres",
                    "password": params.get("password") or "",
                    "hostname": params.get("host") or "127.0.0.1",
                    "port": int(params.get("port") or 5432),
                    "db_name": name,
                    "scheme": "postgresql+psycopg2",
                }
            }
        }
        home.mkdir(parents=True, exist_ok=True)
        with dg.instance_for_test(
            temp_dir=str(home),
            overrides={"storage": storage, "telemetry": {"enabled": False}},
            synchronous_run_launcher=True,
            synchronous_run_coordinator=True,
        ) as instance:
            yield instance


@pytest.fixture
def pg_dagster_instance(pg_dsn: str, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on a fresh Postgres database of its own (dropped afterwards)."""
    with postgres_dagster_instance(pg_dsn, tmp_path / "pg_dagster_home") as instance:
        yield instance


@pytest.fixture(scope="session")
def shared_postgres_dagster_instance(
    pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dg.DagsterInstance]:
    """One Postgres-backed instance for the whole session (use a unique RunLog stream)."""
    with postgres_dagster_instance(pg_dsn, tmp_path_factory.mktemp("pg_home")) as instance:
        yield instance


@pytest.fixture(scope="session")
def shared_sqlite_dagster_instance(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dg.DagsterInstance]:
    """One SQLite-backed instance for the whole session (use a unique RunLog stream)."""
    with dg.instance_for_test(
        temp_dir=str(tmp_path_factory.mktemp("sqlite_home")),
        overrides={"telemetry": {"enabled": False}},
    ) as instance:
        yield instance
