"""Passwords never leak from a failed connection (issue 12, item 3), tested as a tester would.

A real PostgreSQL role gets a password holding ``%`` and ``@``; pipelines use it as their
target and as their source through three broken URLs (the password unencoded, a refused port,
an unknown database). ``ematix run`` and ``ematix run-due --alerter stdout://`` run as
subprocesses with the RunLog on SQLite and on PostgreSQL; then stdout, stderr (the logs), every
RunLog row and the stdout alerter's output are searched for the password and its fragments.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql

from ematix_engine.errors import ConnectionFailedError, EmatixError
from ematix_engine.write.apply import redact_error

WORKTREE = Path(__file__).resolve().parents[3]
EMATIX = Path(sys.executable).with_name("ematix")

MODULE = """
import os
from typing import Annotated
from ematix_engine import ematix, pk
from ematix_engine.types import BigInt, Text

@ematix.connection
class default:
    kind = "duckdb"
    path = "wh.duckdb"

@ematix.connection
class secret_pg:
    kind = "postgres"
    url = os.environ["SECRET_PG_URL"]

@ematix.table(schema="public", connection="secret_pg")
class LeakTarget:
    id: Annotated[BigInt, pk()]
    name: Text | None

@ematix.pipeline(target=LeakTarget, mode="merge", schedule="0 0 1 1 *")
def to_pg(conn):
    return "SELECT * FROM (VALUES (1, 'a')) AS v(id, name)"

@ematix.table(schema="an")
class LeakLocal:
    id: Annotated[BigInt, pk()]

@ematix.pipeline(
    target=LeakLocal, mode="merge", source_connection="secret_pg", schedule="0 0 1 1 *"
)
def from_pg(conn):
    return "SELECT 1 AS id"
"""


@pytest.fixture
def role(pg_dsn: str):
    """A login role whose password holds ``%`` and ``@`` (and a unique marker)."""
    name = f"ematix_leak_{uuid.uuid4().hex[:8]}"
    password = f"p%z@Q!{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
    yield name, password
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _fragments(password: str) -> list[str]:
    marker = password.split("!", 1)[1]
    return [password, quote(password, safe=""), "p%z", marker]


def _pg_url(dsn: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn) if "://" not in dsn else None
    if parts is None:
        return dsn
    return (
        f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
        f"{parts.get('port', 5432)}/{parts.get('dbname', 'test')}"
    )


@pytest.mark.parametrize("runlog", ["sqlite", "postgres"])
@pytest.mark.parametrize("case", ["unencoded", "refused_port", "unknown_database"])
def test_a_password_never_reaches_output_logs_run_log_or_alerts(
    case: str, runlog: str, role, pg_schema, tmp_path: Path
) -> None:
    user, password = role
    base = _pg_url(pg_schema.dsn)
    host_port_db = base.split("@", 1)[1]
    host_port, _, database = host_port_db.partition("/")
    database = database.split("?", 1)[0]
    url = {
        "unencoded": f"postgresql://{user}:{password}@{host_port}/{database}",
        "refused_port": f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:1/{database}",
        "unknown_database": (
            f"postgresql://{user}:{quote(password, safe='')}@{host_port}/no_such_db_{user}"
        ),
    }[case]
    name = f"leak_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    if runlog == "sqlite":
        run_log_url = f"sqlite://{tmp_path / 'runs.db'}"
    else:
        sep = "&" if "?" in base else "?"
        run_log_url = f"{base}{sep}{urlencode({'schema': pg_schema.name})}"
    env = {
        **os.environ,
        "PYTHONPATH": f"{WORKTREE}{os.pathsep}{tmp_path}",
        "SECRET_PG_URL": url,
    }
    outputs: list[str] = []
    for args in (
        ["run", "-m", name, "to_pg", "from_pg", "--run-log", run_log_url],
        [
            "run-due", "-m", name, "--run-log", run_log_url, "--alerter", "stdout://",
            "--force", "to_pg", "--force", "from_pg",
        ],
    ):  # fmt: skip
        done = subprocess.run(
            [str(EMATIX), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 1, (done.stdout, done.stderr)
        outputs += [done.stdout, done.stderr]
    everything = "\n".join(outputs)
    # The failure is named: the pipeline, the target and the connection.
    assert "pipeline 'to_pg'" in everything and "public.leak_target" in everything
    assert "pipeline 'from_pg'" in everything and "connection 'secret_pg' failed" in everything
    assert "Traceback" not in everything
    # The stdout alerter printed the failures.
    assert everything.count("from_pg") >= 3
    rows = _run_log_rows(runlog, tmp_path, pg_schema)
    assert len(rows) == 4 and all("secret_pg" in row for row in rows)
    for fragment in _fragments(password):
        assert fragment not in everything, f"{fragment!r} leaked into the output:\n{everything}"
        for row in rows:
            assert fragment not in row, f"{fragment!r} leaked into the RunLog: {row}"


def _run_log_rows(kind: str, tmp_path: Path, pg_schema) -> list[str]:
    if kind == "sqlite":
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            return [repr(row) for row in conn.execute('SELECT * FROM "ematix_runs"')]
    with psycopg.connect(pg_schema.dsn) as conn:
        query = sql.SQL("SELECT * FROM {}.{}").format(
            sql.Identifier(pg_schema.name), sql.Identifier("run_log")
        )
        return [repr(row) for row in conn.execute(query)]


def test_connection_errors_name_the_connection_and_are_engine_errors(
    role, pg_dsn: str, tmp_path: Path
) -> None:
    from ematix_engine.backends import open_backend
    from ematix_engine.connections import PostgresConnection

    user, password = role
    conn = PostgresConnection(name="wh", url=f"postgresql://{user}:{password}@127.0.0.1:1/test")
    with pytest.raises(ConnectionFailedError) as caught:
        open_backend(conn)
    assert isinstance(caught.value, EmatixError)
    assert caught.value.connection == "wh"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    for fragment in _fragments(password):
        assert fragment not in str(caught.value)


def test_row_values_of_a_constraint_violation_never_reach_the_message(pg_schema) -> None:
    with psycopg.connect(pg_schema.dsn, autocommit=True) as conn:
        table = sql.Identifier(pg_schema.name, "people")
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int, email text NOT NULL, note text)").format(table)
        )
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (1, NULL, 'alice-private-note')").format(table)
            )
    assert "alice-private-note" in str(caught.value)  # what PostgreSQL says
    text = redact_error(caught.value, None)
    assert "alice-private-note" not in text
    assert 'null value in column "email"' in text and "row values withheld" in text
