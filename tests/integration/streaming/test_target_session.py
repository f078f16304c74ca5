"""A PostgreSQL streaming target keeps one session between writes and replaces a broken one."""

from __future__ import annotations

import psycopg
import pyarrow as pa

from ematix_engine.connections import PostgresConnection
from ematix_engine.streaming import Target
from ematix_engine.streaming.targets import open_target
from tests.fixtures.postgres import PgSchema


def _rows(start: int, stop: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, stop), pa.int64())})


def test_one_session_between_writes_and_a_new_one_after_it_breaks(pg_schema: PgSchema) -> None:
    connection = PostgresConnection(name="wh", url=pg_schema.dsn)
    target = open_target(Target(connection=connection, table=(pg_schema.name, "t")), "sessions")
    try:
        target.warm()
        session = target._store
        assert session is not None
        target.write(_rows(0, 3), batch_id="b1", positions=None)
        target.write(_rows(3, 5), batch_id="b2", positions=None)
        assert target._store is session, "each write opened its own session"

        # The server ends the session between two batches (a restart, an idle timeout).
        with psycopg.connect(pg_schema.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (session.con.info.backend_pid,))
        target.write(_rows(5, 8), batch_id="b3", positions=None)

        assert target._store is not session
        with psycopg.connect(pg_schema.dsn) as check:
            ids = check.execute(f'SELECT id FROM "{pg_schema.name}".t ORDER BY id').fetchall()
        assert [i for (i,) in ids] == list(range(8))
    finally:
        target.close()
    assert target._store is None
