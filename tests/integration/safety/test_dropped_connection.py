"""A dropped connection is reported as what happened (issue 12, item 4), not as the rollback's
"the connection is closed"."""

from __future__ import annotations

import psycopg
import pytest

from ematix_engine.backends.postgres import PostgresBackend


def test_a_failed_rollback_keeps_the_original_error(pg_dsn: str) -> None:
    backend = PostgresBackend(pg_dsn)
    pid = backend.con.info.backend_pid
    try:
        with pytest.raises(psycopg.OperationalError) as caught, backend.transaction():
            backend.execute("SELECT 1")
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            backend.execute("SELECT 1")
        message = str(caught.value)
        assert "the connection is closed" not in message
        assert "terminat" in message or "server closed the connection" in message
        assert any("rollback failed too" in note for note in caught.value.__notes__)
    finally:
        backend.close()


def test_an_engine_error_survives_a_rollback_on_a_dead_connection(pg_dsn: str) -> None:
    from ematix_engine.errors import LoadError

    backend = PostgresBackend(pg_dsn)
    pid = backend.con.info.backend_pid
    try:
        with pytest.raises(LoadError, match="the real reason"), backend.transaction():
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            raise LoadError("p", "s.t", "the real reason")
    finally:
        backend.close()
