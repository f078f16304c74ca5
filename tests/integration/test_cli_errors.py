"""CLI error paths: one line, exit code 1, no traceback (``--debug`` shows it); manual runs.

Connections fail for real: a refused port, an unknown database and an unknown role on the test
PostgreSQL server. Each case checks the exit code, the one-line message (connection, the
setting that defined it, what to do) and that no credential or traceback leaks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict

from ematix_engine.cli import main
from ematix_engine.runlog import open_run_log

MODULE = """
from typing import Annotated
from ematix_engine import ematix, pk
from ematix_engine.types import BigInt, Text

@ematix.table(schema="cli_err")
class Things:
    id: Annotated[BigInt, pk()]
    name: Text | None

@ematix.pipeline(target=Things, mode="merge", target_connection="warehouse",
                 schedule="0 0 1 1 *", retry={"max_attempts": 3, "backoff_seconds": 3600})
def things(conn):
    return "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)"

@ematix.pipeline(target=Things, mode="merge", target_connection="warehouse", name="missing")
def missing(conn):
    return "SELECT id, name FROM cli_err.no_such_table"
"""
SECRET = "s3cret-pw"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"cli_err_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / "bad_syntax.py").write_text("def broken(:\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for variable in ("DAGSTER_HOME", "EMATIX_RUN_LOG", "EMATIX_DEBUG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("EMATIX_DSN_WAREHOUSE", f"duckdb://{tmp_path / 'wh.duckdb'}")
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop("bad_syntax", None)


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _pg(pg_dsn: str, *, user: str | None = None, port: int | None = None, db: str | None = None):
    params = conninfo_to_dict(pg_dsn)
    user = user or params.get("user") or "postgres"
    host = params.get("host") or "127.0.0.1"
    return (
        f"postgresql://{user}:{SECRET}@{host}:{port or params.get('port') or 5432}/"
        f"{db or params.get('dbname') or 'test'}"
    )


def _assert_one_clean_line(output: str) -> None:
    assert "Traceback" not in output
    assert SECRET not in output


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"port": 1}, "check the host and port"),
        ({"db": "no_such_database_ematix"}, "fix the database name"),
        ({"user": "no_such_role_ematix"}, "fix the user"),
    ],
    ids=["refused-port", "unknown-database", "unknown-role"],
)
def test_a_failing_target_connection_is_one_line_naming_its_setting(
    project: str, pg_dsn: str, change: dict, hint: str
) -> None:
    out = invoke(
        "run", "-m", project, "things", env={"EMATIX_DSN_WAREHOUSE": _pg(pg_dsn, **change)}
    )

    assert out.exit_code == 1
    (line,) = [x for x in out.output.splitlines() if x.startswith("FAILED things")]
    assert "connection 'warehouse' failed" in line
    assert "(defined by env EMATIX_DSN_WAREHOUSE)" in line
    assert hint in line and "ematix connections check warehouse" in line
    _assert_one_clean_line(out.output)


def test_a_wrong_password_is_one_line_naming_its_setting(project: str) -> None:
    """A private cluster that checks passwords (the test server trusts every connection)."""
    from tests.fixtures.postgres import ThrowawayPostgres, find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("initdb/pg_ctl are needed for the wrong-password test")
        pytest.skip("no initdb/pg_ctl to start a password-checking cluster")
    cluster = ThrowawayPostgres(bindir, password="the-right-one")
    cluster.start()
    try:
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{cluster.port}/postgres"
        out = invoke("run", "-m", project, "things", env={"EMATIX_DSN_WAREHOUSE": url})
    finally:
        cluster.stop()
    assert out.exit_code == 1
    (line,) = [x for x in out.output.splitlines() if x.startswith("FAILED things")]
    assert "connection 'warehouse' failed" in line
    assert "(defined by env EMATIX_DSN_WAREHOUSE)" in line
    assert "fix the user or password" in line
    _assert_one_clean_line(out.output)


def test_debug_shows_the_traceback(project: str, pg_dsn: str) -> None:
    env = {"EMATIX_DSN_WAREHOUSE": _pg(pg_dsn, port=1)}
    out = CliRunner().invoke(main, ["run", "-m", project, "things", "--debug"], env=env)
    assert out.exit_code == 1
    assert "Traceback" in out.output and "ConnectionFailedError" in out.output
    before = CliRunner().invoke(main, ["--debug", "list", "-m", "bad_syntax"])
    assert isinstance(before.exception, SyntaxError)


def test_a_syntax_error_in_the_module_names_file_and_line(project: str) -> None:
    for command in (["list"], ["run", "x"], ["status"], ["validate"]):
        out = invoke(*command[:1], "-m", "bad_syntax", *command[1:])
        assert out.exit_code == 1, command
        assert "cannot import module 'bad_syntax' (bad_syntax.py, line 1): SyntaxError" in (
            out.output
        )
        _assert_one_clean_line(out.output)


def test_an_unknown_run_log_scheme(project: str) -> None:
    for args in (["run", "-m", project, "things"], ["runs", "list"], ["status", "-m", project]):
        out = invoke(*args, "--run-log", "nosuch://x")
        assert out.exit_code == 1, args
        assert "unknown run log URL scheme 'nosuch'" in out.output
        assert "sqlite://" in out.output  # the known ones are listed
        _assert_one_clean_line(out.output)


def test_reading_an_unreachable_run_log_exits_non_zero(project: str, pg_dsn: str) -> None:
    url = _pg(pg_dsn, port=1)
    for args in (["runs", "list"], ["status", "-m", project]):
        out = invoke(*args, "--run-log", url)
        assert out.exit_code == 1, args
        assert out.output.startswith("error: the run log postgresql://")
        _assert_one_clean_line(out.output)


def test_status_and_runs_list_say_which_log_they_read(project: str) -> None:
    out = invoke("runs", "list")
    assert out.exit_code == 0 and "run log: sqlite://.ematix/run_log.db (the default)" in out.output
    out = invoke("runs", "list", env={"EMATIX_RUN_LOG": "memory://"})
    assert "run log: memory:// (EMATIX_RUN_LOG)" in out.output


def test_dagster_home_makes_dagster_the_default_run_log(project: str, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    out = invoke("runs", "list", env={"DAGSTER_HOME": str(home)})  # the folder is missing
    assert out.exit_code == 1
    assert "dagster://" in out.output and "DAGSTER_HOME" in out.output
    _assert_one_clean_line(out.output)

    home.mkdir()
    assert invoke("run", "-m", project, "things", env={"DAGSTER_HOME": str(home)}).exit_code == 0
    out = invoke("runs", "list", env={"DAGSTER_HOME": str(home)})
    assert out.exit_code == 0
    assert "run log: dagster:// (DAGSTER_HOME is set" in out.output
    assert "things" in out.output and "1 (manual)" in out.output


def test_list_shows_the_pipelines(project: str) -> None:
    out = invoke("list", "--module", project)
    assert out.exit_code == 0
    assert "things  → cli_err.things [merge]  schedule 0 0 1 1 *" in out.output
    assert "missing  → cli_err.things [merge]" in out.output


def test_preview_of_sql_reading_a_missing_table_fails_like_validate(project: str) -> None:
    preview = invoke("preview", "-m", project, "missing")
    validate = invoke("validate", "-m", project, "missing")
    assert preview.exit_code == validate.exit_code == 1
    assert "INVALID missing" in preview.output and "no_such_table" in preview.output
    assert preview.output.splitlines()[0] == validate.output.splitlines()[0]


def test_full_refresh_from_the_cli(project: str) -> None:
    assert invoke("run", "-m", project, "things").exit_code == 0
    out = invoke("run", "-m", project, "things", "--full-refresh")
    assert out.exit_code == 0
    assert "OK things → cli_err.things (full refresh) [merge]: 2 inserted" in out.output
    rehearsal = invoke("run", "-m", project, "things", "--full-refresh", "--dry-run")
    assert "DRY RUN things" in rehearsal.output and "2 inserted" in rehearsal.output


def test_a_failed_manual_run_is_no_attempt_of_the_scheduled_firing(
    project: str, pg_dsn: str
) -> None:
    refused = {"EMATIX_DSN_WAREHOUSE": _pg(pg_dsn, port=1)}
    scheduled = invoke("run-due", "-m", project, "--force", "things", env=refused)
    assert scheduled.exit_code == 1  # attempt 1 of 3 failed; a retry is pending
    log = open_run_log("sqlite://.ematix/run_log.db")
    assert log.attempt_state("things").next_attempt == 2

    manual = invoke("run", "-m", project, "things", env=refused)

    assert manual.exit_code == 1
    record = log.last_run("things")
    assert record.attempt == 1 and record.metrics["trigger"] == "manual"
    assert record.status.value == "failed"  # never gave_up: it is a firing of its own
    state = log.attempt_state("things")
    assert state.next_attempt == 2 and state.consecutive_failures == 1
    log.close()


def test_the_console_script_prints_one_line(project: str, pg_dsn: str, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ematix"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(tmp_path)]),
        "EMATIX_DSN_WAREHOUSE": _pg(pg_dsn, db="no_such_database_ematix"),
    }
    done = subprocess.run(
        [str(script), "run", "-m", project, "things"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("FAILED things: ") and "connection 'warehouse' failed" in line
    _assert_one_clean_line(done.stderr + done.stdout)


def test_a_duckdb_file_locked_by_another_process_says_what_to_do(
    project: str, tmp_path: Path
) -> None:
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        out = invoke(
            "run", "-m", project, "things", "--run-log", "memory://",
            env={"EMATIX_DSN_WAREHOUSE": f"duckdb://{path}", "EMATIX_LOCK_TIMEOUT_S": "0.5"},
        )  # fmt: skip
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert out.exit_code == 1
    (line,) = [x for x in out.output.splitlines() if x.startswith("FAILED things")]
    assert "the process holding the DuckDB file" in line
    assert "retry later or raise EMATIX_LOCK_TIMEOUT_S" in line
    _assert_one_clean_line(out.output)
