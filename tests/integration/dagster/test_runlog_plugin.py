"""`dagster://` reaches DagsterRunLog through the engine's run-log entry points (CLI included)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ematix_dagster import DagsterRunLog
from ematix_engine.cli import main
from ematix_engine.runlog import RunStatus, open_run_log


def test_dagster_scheme_opens_the_instance_history(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    log = open_run_log(f"dagster://{home}")
    assert isinstance(log, DagsterRunLog)
    record = log.record_start("orders", 1)
    log.record_finish(record.finished(RunStatus.FAILED, error="boom"))
    log.close()

    again = open_run_log(f"dagster://{home}")
    assert again.attempt_state("orders").consecutive_failures == 1
    again.close()

    out = CliRunner().invoke(main, ["runs", "list", "--run-log", f"dagster://{home}"])
    assert out.exit_code == 0, out.output
    assert "orders" in out.output and "failed" in out.output
