"""A PostgreSQL lookup for the transform stage (real server, throwaway schema)."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from ematix_engine.connections import PostgresConnection
from ematix_engine.transform import Lookup, LookupLoadError, TransformStage

JOIN = """
    SELECT s.user_id, u.country
    FROM source s
    LEFT JOIN users u ON s.user_id = u.id
    ORDER BY s.user_id
"""
BATCH = pa.table({"user_id": pa.array([1, 2, 4], pa.int64())})


@pytest.fixture
def refdata(pg_schema):
    with psycopg.connect(pg_schema.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {}.users (id bigint PRIMARY KEY, country text)").format(
                sql.Identifier(pg_schema.name)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {}.users VALUES (1, 'se'), (2, 'de'), (3, 'fr')").format(
                sql.Identifier(pg_schema.name)
            )
        )
    return PostgresConnection(name="refdata", url=pg_schema.dsn), pg_schema.name


def test_a_postgres_table_lookup(refdata) -> None:
    conn, schema = refdata
    lookup = Lookup(connection=conn, table="users", schema=schema)
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        assert stage.run(BATCH).to_pydict() == {"user_id": [1, 2, 4], "country": ["se", "de", None]}


def test_a_postgres_query_lookup_refreshes(refdata, pg_schema) -> None:
    conn, schema = refdata
    query = f'SELECT id, upper(country) AS country FROM "{schema}".users WHERE id <= 2'
    lookup = Lookup(connection=conn, query=query, refresh_interval_ms=3_600_000)
    with TransformStage(JOIN, lookups={"users": lookup}, pipeline="events") as stage:
        assert stage.run(BATCH).column("country").to_pylist() == ["SE", "DE", None]
        with psycopg.connect(pg_schema.dsn, autocommit=True) as pg:
            pg.execute(sql.SQL("UPDATE {}.users SET country = 'no'").format(sql.Identifier(schema)))
        assert stage.lookup_tables["users"].refresh()
        assert stage.run(BATCH).column("country").to_pylist() == ["NO", "NO", None]


def test_a_failing_postgres_lookup_is_named_and_redacted(pg_dsn: str) -> None:
    secret = "s3cr3t-pw-for-lookup"
    url = f"postgresql://nobody:{secret}@127.0.0.1:1/nowhere"
    lookup = Lookup(connection=PostgresConnection(name="refdata", url=url), table="users")
    with pytest.raises(LookupLoadError) as caught:
        TransformStage(JOIN, lookups={"users": lookup}, pipeline="events")
    message = str(caught.value)
    assert "'events'" in message and "lookup 'users'" in message
    assert secret not in message and secret not in repr(caught.value)
