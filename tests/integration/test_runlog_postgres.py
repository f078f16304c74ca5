"""The Postgres RunLog against a real server.

Uses the shared fixtures of tests/conftest.py: ``pg_dsn`` (the server; skipped locally, failed
under ``CI=true`` when there is none) and ``pg_schema`` (a throwaway schema per test, which the
run log is pointed at with ``?schema=``).
"""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ematix_engine.errors import ConnectionFailedError
from ematix_engine.runlog import MemoryRunLog, PostgresRunLog, RunStatus, open_run_log
from ematix_engine.runlog.conformance import CHECKS, race_for_leases

pytestmark = pytest.mark.integration


def _as_url(dsn: str) -> str:
    """The run log takes URLs; turn a key=value conninfo (EMATIX_TEST_PG_DSN) into one."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return dsn
    params = conninfo_to_dict(dsn)
    user = quote(params.pop("user", "postgres"), safe="")
    password = params.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
    host = params.pop("host", "127.0.0.1")
    port = params.pop("port", "5432")
    dbname = quote(params.pop("dbname", "postgres"), safe="")
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{auth}{host}:{port}/{dbname}{query}"


def _with_query(dsn: str, **params: str) -> str:
    parts = urlsplit(_as_url(dsn))
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@pytest.fixture
def base_dsn(pg_dsn) -> str:
    return _as_url(pg_dsn)


@pytest.fixture
def schema(pg_schema) -> str:
    return pg_schema.name


@pytest.fixture
def url(base_dsn, schema) -> str:
    return _with_query(base_dsn, schema=schema)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_conformance(check, url):
    log = open_run_log(url)
    try:
        check(log)
    finally:
        log.close()


def test_tables_live_in_the_configured_schema(url, schema, base_dsn):
    with open_run_log(url) as log:
        assert isinstance(log, PostgresRunLog)
        log.record_start("orders", attempt=1)
    with psycopg.connect(base_dsn) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (schema,),
        ).fetchall()
        assert [t for (t,) in tables] == ["run_leases", "run_log"]
        count = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                psycopg.sql.Identifier(schema, "run_log")
            )
        ).fetchone()[0]
        assert count == 1


def test_postgresql_and_postgres_schemes_both_work(base_dsn, schema):
    alt = base_dsn.replace("postgresql://", "postgres://", 1)
    with open_run_log(_with_query(alt, schema=schema)) as log:
        assert isinstance(log, PostgresRunLog)


def test_schema_name_with_quotes_is_an_identifier_not_sql(base_dsn):
    evil = f'rl"; DROP TABLE x; --{uuid.uuid4().hex[:6]}'
    try:
        with open_run_log(_with_query(base_dsn, schema=evil)) as log:
            log.record_skip("p", reason="fine")
            assert log.last_run("p").reason == "fine"
    finally:
        with psycopg.connect(base_dsn, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(evil)
                )
            )


def test_create_tables_false_requires_existing_tables(url):
    with pytest.raises(ConnectionFailedError, match="create_tables=false"):
        open_run_log(url + "&create_tables=false")
    open_run_log(url).close()  # creates them
    with open_run_log(url + "&create_tables=false") as log:
        assert log.runs() == []


def test_attempt_state_survives_a_new_connection(url):
    with open_run_log(url) as log:
        for attempt in (1, 2, 3):
            record = log.record_start("orders", attempt=attempt)
            log.record_finish(record.finished(RunStatus.FAILED, error=f"e{attempt}"))
    with open_run_log(url) as log:
        state = log.attempt_state("orders")
        assert (state.consecutive_failures, state.next_attempt, state.last_error) == (3, 4, "e3")


def test_two_instances_share_records_and_leases(url):
    with open_run_log(url) as one, open_run_log(url) as two:
        record = one.record_start("orders", attempt=1)
        assert two.last_run("orders") == record
        assert one.claim("orders", "host-a", 60)
        assert not two.claim("orders", "host-b", 60)
        assert one.claim("orders", "host-a", 60)
        one.release("orders", "host-a")
        assert two.claim("orders", "host-b", 60)
        assert two.claim("short", "host-b", 0.1)
        time.sleep(0.3)
        assert one.claim("short", "host-a", 60)


def test_processes_racing_for_leases_have_one_winner_each(url):
    pipelines = [f"p{i}" for i in range(5)] + ["_scheduler_singleton"]
    winners = race_for_leases(url, pipelines, processes=6)
    assert all(len(owners) == 1 for owners in winners.values()), winners


def test_reconnects_after_the_server_drops_the_connection(url, base_dsn):
    with open_run_log(url) as log:
        log.record_start("orders", attempt=1)
        pid = log._run(lambda conn: conn.info.backend_pid)
        with psycopg.connect(base_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        assert len(log.runs("orders")) == 1  # first query fails, reconnect, retry succeeds


def test_password_never_appears_in_repr_errors_or_logs(base_dsn, caplog):
    secret = "Sup3r-Secret-Pw"
    parts = urlsplit(base_dsn)
    host = parts.hostname or "127.0.0.1"
    unreachable = f"postgresql://flow:{secret}@{host}:1/nowhere?connect_timeout=2"
    with pytest.raises(ConnectionFailedError) as info:
        open_run_log(unreachable)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert "flow:***@" in str(info.value)

    with caplog.at_level(logging.DEBUG):
        log = open_run_log(unreachable, fallback=True)
    assert isinstance(log, MemoryRunLog)
    assert "flow:***@" in caplog.text
    assert secret not in caplog.text

    user = parts.username or "postgres"
    with_password = urlunsplit(
        (
            parts.scheme,
            f"{user}:{secret}@{parts.hostname}:{parts.port or 5432}",
            parts.path,
            parts.query,
            "",
        )
    )
    try:
        opened = PostgresRunLog.from_url(_with_query(with_password, schema="ematix_runlog_redact"))
    except ConnectionFailedError as exc:  # password auth configured and the password is wrong
        assert secret not in str(exc)
    else:
        try:
            assert secret not in repr(opened)
            assert "***" in repr(opened)
        finally:
            opened.close()
            with psycopg.connect(base_dsn, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS ematix_runlog_redact CASCADE")
