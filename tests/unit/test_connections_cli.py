"""`ematix connections list|check` through click's CliRunner, on embedded backends only."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ematix_engine.cli import main
from tests.unit.test_connections_support import Sandbox, isolate_connections


@pytest.fixture(autouse=True)
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Sandbox]:
    yield from isolate_connections(monkeypatch, tmp_path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def user_module(sandbox: Sandbox) -> Iterator[str]:
    """A module in the cwd that declares a connection with @ematix.connection."""
    name = f"conns_{sandbox.cwd.parent.name.replace('-', '_')}"
    (sandbox.cwd / f"{name}.py").write_text(
        "from ematix_engine.api.namespace import ematix\n\n"
        "@ematix.connection\n"
        "class local_db:\n"
        '    kind = "sqlite"\n'
        '    url = "sqlite://local.db"\n'
    )
    yield name
    sys.modules.pop(name, None)


def parse_table(output: str) -> list[dict[str, str]]:
    """Split the plain (non-terminal) table into rows keyed by the header names."""
    header, *lines = output.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [
        {name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)}
        for line in lines
    ]


def test_help(runner: CliRunner) -> None:
    result = runner.invoke(main, ["connections", "--help"])
    assert result.exit_code == 0
    assert "list" in result.output
    assert "check" in result.output


def test_list_shows_name_kind_source_and_redacted_url(
    runner: CliRunner, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, user_module: str
) -> None:
    sandbox.project_toml(
        '[connections.warehouse]\nurl = "postgres://app:topsecret@db:5432/main"\n'
        '[connections.broken]\nkind = "postgress"\n'
    )
    monkeypatch.setenv("EMATIX_DSN_SCRATCH", "duckdb://:memory:")
    result = runner.invoke(main, ["connections", "list", "--module", user_module])
    assert result.exit_code == 0, result.output
    rows = {row["NAME"]: row for row in parse_table(result.output)}
    assert rows["warehouse"] == {
        "NAME": "warehouse",
        "KIND": "postgres",
        "SOURCE": str(sandbox.cwd / ".ematix.toml"),
        "URL": "postgres://app:***@db:5432/main",
    }
    assert rows["scratch"]["SOURCE"] == "env EMATIX_DSN_SCRATCH"
    assert rows["scratch"]["URL"] == "duckdb://:memory:"
    assert (rows["local_db"]["KIND"], rows["local_db"]["SOURCE"]) == (
        "sqlite",
        f"python:{user_module}",
    )
    assert rows["broken"]["KIND"] == "?"
    assert "did you mean 'postgres'" in rows["broken"]["URL"]
    assert "topsecret" not in result.output


def test_list_without_connections(runner: CliRunner) -> None:
    result = runner.invoke(main, ["connections", "list"])
    assert result.exit_code == 0
    assert "No connections defined" in result.output


def test_list_with_a_missing_module(runner: CliRunner) -> None:
    result = runner.invoke(main, ["connections", "list", "--module", "no_such_module_xyz"])
    assert result.exit_code == 1
    assert "cannot import module 'no_such_module_xyz'" in result.output


def test_check_ok(runner: CliRunner, sandbox: Sandbox, user_module: str) -> None:
    sqlite3.connect(sandbox.cwd / "local.db").close()
    result = runner.invoke(main, ["connections", "check", "local_db", "--module", user_module])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "OK local_db (sqlite)"


def test_check_failure_exits_1_with_the_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMATIX_DSN_GONE", "duckdb:///no/such/dir/x.duckdb")
    result = runner.invoke(main, ["connections", "check", "gone"])
    assert result.exit_code == 1
    assert "FAILED gone:" in result.output
    assert "/no/such/dir" in result.output


def test_check_unknown_name_suggests(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMATIX_DSN_WAREHOUSE", "sqlite://w.db")
    result = runner.invoke(main, ["connections", "check", "warehose"])
    assert result.exit_code == 1
    assert "did you mean 'warehouse'" in result.output


def test_check_missing_variable(runner: CliRunner, sandbox: Sandbox) -> None:
    sandbox.project_toml('[connections.wh]\nkind = "postgres"\nurl = "${NOT_SET_DSN_XYZ}"\n')
    result = runner.invoke(main, ["connections", "check", "wh"])
    assert result.exit_code == 1
    assert "NOT_SET_DSN_XYZ" in result.output
