"""The batch CLI end to end: run, run-due, status, preview, validate, runs list."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from ematix_engine.cli import main

MODULE = '''
from typing import Annotated
from ematix_engine import ematix, pk
from ematix_engine.types import BigInt, Text

@ematix.connection
class default:
    kind = "duckdb"
    path = "wh.duckdb"

@ematix.table(schema="an")
class Things:
    id: Annotated[BigInt, pk()]
    name: Text | None

@ematix.pipeline(target=Things, mode="merge", schedule="0 0 1 1 *")
def things(conn):
    """Things from a VALUES list."""
    return "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)"

@ematix.table(schema="an")
class Broken:
    id: Annotated[BigInt, pk()]

@ematix.pipeline(target=Broken, mode="merge", depends_on=["things"])
def broken(conn):
    return "SELECT id FROM an.no_such_table"
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"cli_pipes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_and_dry_run(project: str) -> None:
    out = invoke("run", "-m", project, "things")
    assert out.exit_code == 0, out.output
    assert "OK things → an.things [merge]: 2 inserted" in out.output
    dry = invoke("run", "-m", project, "things", "--dry-run")
    assert "DRY RUN things" in dry.output and "2 unchanged" in dry.output


def test_run_as_of_a_date(project: str) -> None:
    out = invoke("run", "-m", project, "things", "--as-of", "2024-01-31")
    assert out.exit_code == 0, out.output
    bad = invoke("run", "-m", project, "things", "--as-of", "last tuesday")
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_run_failure_exits_non_zero_and_names_the_pipeline(project: str) -> None:
    out = invoke("run", "-m", project, "broken")
    assert out.exit_code == 1
    assert "FAILED broken" in out.output and "no_such_table" in out.output


def test_unknown_pipeline_is_named_with_a_suggestion(project: str) -> None:
    out = invoke("run", "-m", project, "thingz")
    assert out.exit_code == 1
    assert "did you mean 'things'" in out.output


def test_run_due_status_and_runs_list_share_the_run_log(project: str) -> None:
    first = invoke("run-due", "-m", project, "--force", "things", "--force", "broken")
    assert first.exit_code == 1  # broken fails
    assert "success            things" in first.output
    assert "gave_up            broken" in first.output
    status = invoke("status", "-m", project)
    assert "things" in status.output and "success" in status.output
    assert "gave_up" in status.output
    runs = invoke("runs", "list")
    assert "things" in runs.output and "broken" in runs.output


def test_preview_and_validate(project: str) -> None:
    preview = invoke("preview", "-m", project, "things")
    assert preview.exit_code == 0
    assert "merge into an.things" in preview.output
    assert "VALUES" in preview.output
    ok = invoke("validate", "-m", project, "things")
    assert ok.exit_code == 0 and "OK things" in ok.output
    bad = invoke("validate", "-m", project, "broken")
    assert bad.exit_code == 1 and "INVALID broken" in bad.output


PARTITIONED = """
from typing import Annotated
from ematix_engine import ematix, pk
from ematix_engine.types import BigInt, Date

@ematix.connection
class default:
    kind = "duckdb"
    path = "wh.duckdb"

@ematix.table(schema="an")
class Days:
    id: Annotated[BigInt, pk()]
    day: Date

@ematix.pipeline(target=Days, partitions=ematix.daily("day", start="2024-01-01"))
def days(conn):
    return (
        "SELECT * FROM (VALUES (1, DATE '2024-01-01'), (2, DATE '2024-01-02'), "
        "(3, DATE '2024-01-02'), (4, DATE '2024-01-03')) AS v(id, day)"
    )
"""


def test_run_with_partition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    name = f"cli_parts_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PARTITIONED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        out = invoke("run", "-m", name, "days", "--partition", "2024-01-02")
        assert out.exit_code == 0, out.output
        assert "2 inserted" in out.output
        out = invoke("run", "-m", name, "days", "--partition", "2024-01-01..2024-01-02")
        assert out.exit_code == 0, out.output
        assert "3 inserted" in out.output and "2 deleted" in out.output
        with duckdb.connect("wh.duckdb") as con:
            assert con.sql("SELECT id FROM an.days ORDER BY id").fetchall() == [(1,), (2,), (3,)]

        out = CliRunner().invoke(main, ["run", "-m", name, "days"])
        assert out.exit_code == 1
        assert "'days' is partitioned on 'day'" in out.output
        out = CliRunner().invoke(main, ["run", "-m", name, "days", "--partition", "yesterday"])
        assert out.exit_code == 1 and "'yesterday' is not a daily key" in out.output
    finally:
        sys.modules.pop(name, None)
