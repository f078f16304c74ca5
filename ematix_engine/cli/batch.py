"""Batch commands: run, run-due, status, list, preview, validate and runs list.

Which run log a command uses (:func:`resolve_run_log`): ``--run-log``, else
``$EMATIX_RUN_LOG``, else ``dagster://`` when ``$DAGSTER_HOME`` is set and ``ematix_dagster``
is installed (the history Dagster runs record), else ``sqlite://.ematix/run_log.db``. ``status``
and ``runs list`` print which one they read, and fail (exit 1) when it cannot be opened.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import click

from ematix_engine.cli.errors import debugging, fail, import_failure, one_line
from ematix_engine.errors import EmatixError
from ematix_engine.runlog.base import MANUAL

__all__ = [
    "list_pipelines",
    "preview",
    "resolve_run_log",
    "run",
    "run_due",
    "runs",
    "status",
    "validate",
]

_DEFAULT_RUN_LOG = "sqlite://.ematix/run_log.db"


def _load(module: str, names: Sequence[str] = ()):
    from ematix_engine import registry

    try:
        declared = registry.load_module(module)
    except EmatixError:
        raise
    except Exception as error:  # a syntax error, a bad import, a decorator misused, …
        if debugging():
            raise
        raise import_failure(module, error) from None
    if names:
        return [registry.get_pipeline(n) for n in names]
    return declared


def _fail(error: Exception) -> None:
    fail(error)


module_option = click.option(
    "--module", "-m", "module", required=True, help="Python module declaring the pipelines."
)
run_log_option = click.option(
    "--run-log",
    "run_log_url",
    default=None,
    help=(
        "RunLog URL: sqlite://path, memory://, postgres://…, duckdb://path, dagster://. "
        "Default: $EMATIX_RUN_LOG, else dagster:// when $DAGSTER_HOME is set, else "
        f"{_DEFAULT_RUN_LOG}."
    ),
)


def resolve_run_log(url: str | None) -> tuple[str, str]:
    """The run log URL a command uses, and why (see the module docstring).

    Args:
        url: the ``--run-log`` value, if given.

    Returns:
        ``(url, reason)``, e.g. ``("dagster://", "DAGSTER_HOME is set")``.
    """
    if url:
        return url, "--run-log"
    if os.environ.get("EMATIX_RUN_LOG"):
        return os.environ["EMATIX_RUN_LOG"], "EMATIX_RUN_LOG"
    if os.environ.get("DAGSTER_HOME") and _has_run_log_plugin("dagster"):
        return "dagster://", f"DAGSTER_HOME is set ({os.environ['DAGSTER_HOME']})"
    return _DEFAULT_RUN_LOG, "the default"


def _has_run_log_plugin(scheme: str) -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == scheme for ep in entry_points(group="ematix_engine.run_logs"))


def _open_run_log(url: str | None):
    """Open the RunLog, or fail loudly: no command falls back to an in-memory log.

    A memory log cannot exclude other workers (two ``run-due`` would both load) and forgets
    attempts and history, so an unreachable RunLog stops the command with exit code 1. Use
    ``--run-log memory://`` explicitly for a single process that needs neither.
    """
    from ematix_engine.errors import ConnectionFailedError
    from ematix_engine.runlog import open_run_log
    from ematix_engine.runlog.urls import redact_url

    url = resolve_run_log(url)[0]
    try:
        return open_run_log(url)
    except ConnectionFailedError as error:
        raise RunLogUnavailableError(redact_url(url), error.reason) from None


class RunLogUnavailableError(EmatixError):
    """The RunLog cannot be opened: nothing was run."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"the run log {url} is unreachable ({reason}); nothing was run. Without it no lease "
            f"can keep other workers from loading the same pipelines, so ematix stops here. "
            f"Fix the run log (or pass --run-log memory:// for a one-off, single-process run)"
        )


def _run_log_caption(url: str | None) -> str:
    from ematix_engine.runlog.urls import redact_url

    chosen, reason = resolve_run_log(url)
    return f"run log: {redact_url(chosen)} ({reason})"


@click.command()
@module_option
@click.argument("names", nargs=-1, required=True)
@run_log_option
@click.option("--dry-run", is_flag=True, help="Run the SQL, then roll everything back.")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    default=None,
    help="The time the source's rows stand for (UTC): SCD2 versions open and close at it.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild each target from the source: empty it and reset the watermark, in the "
    "load's one transaction.",
)
@click.option(
    "--partition",
    default=None,
    help="Partition to load (partitioned pipelines): a key, or FIRST..LAST for time windows.",
)
def run(
    module: str,
    names: tuple[str, ...],
    run_log_url: str | None,
    dry_run: bool,
    as_of: Any,
    full_refresh: bool,
    partition: str | None,
) -> None:
    """Run the named pipelines once, now (``--partition`` for partitioned ones).

    A manual run is its own firing (attempt 1, ``trigger=manual`` in the run log): its failure
    does not use up a scheduled firing's retries.
    """
    from rich.console import Console

    from ematix_engine.batch.runner import run_pipeline
    from ematix_engine.cli.progress import LoadDisplay

    console = Console(stderr=True)
    try:
        pipelines = _load(module, names)
        log = _open_run_log(run_log_url)
        failed = False
        # On a terminal: a bar per target with its phase and the rows read so far.
        with LoadDisplay(console) as display:
            for pipeline in pipelines:
                try:
                    result = run_pipeline(
                        pipeline,
                        run_log=None if dry_run else log,
                        dry_run=dry_run,
                        on_progress=display.update,
                        full_refresh=full_refresh,
                        as_of=as_of.replace(tzinfo=UTC) if as_of else None,
                        trigger=MANUAL,
                        partition=partition,
                    )
                except EmatixError as error:
                    if debugging():
                        import traceback

                        traceback.print_exception(error, file=sys.stderr)
                    click.echo(f"FAILED {pipeline.name}: {one_line(error)}", err=True)
                    failed = True
                    continue
                for t in result.targets:
                    click.echo(
                        f"{'DRY RUN' if dry_run else 'OK'} {pipeline.name} → {t.target} "
                        f"{'(full refresh) ' if full_refresh else ''}"
                        f"[{t.mode}]: {t.rows_inserted} inserted, {t.rows_updated} updated, "
                        f"{t.rows_unchanged} unchanged, {t.rows_closed} closed, "
                        f"{t.rows_deleted} deleted ({t.duration_s:.2f}s)"
                    )
        log.close()
        if failed:
            sys.exit(1)
    except EmatixError as error:
        _fail(error)


@click.command(name="run-due")
@module_option
@run_log_option
@click.option("--alerter", "alerters", multiple=True, help="stdout:// or slack://… (repeatable).")
@click.option("--metrics", "metrics_url", default="null://", show_default=True)
@click.option("--force", multiple=True, help="Fire this pipeline even if not due (repeatable).")
def run_due(
    module: str,
    run_log_url: str | None,
    alerters: tuple[str, ...],
    metrics_url: str,
    force: tuple[str, ...],
) -> None:
    """Fire every due pipeline once, in dependency order, with retries."""
    from ematix_engine.batch.orchestrate import FiringStatus
    from ematix_engine.batch.orchestrate import run_due as fire
    from ematix_engine.ops.alerters import open_alerters
    from ematix_engine.ops.metrics import open_metrics

    try:
        pipelines = _load(module)
        log = _open_run_log(run_log_url)
        metrics = open_metrics(metrics_url)
        firings = fire(
            pipelines,
            run_log=log,
            alerters=open_alerters(alerters),
            metrics=metrics,
            force=force,
        )
        for f in firings:
            detail = f.error or f.reason or ""
            click.echo(f"{f.status.value:18} {f.pipeline}" + (f"  {detail}" if detail else ""))
        metrics.close()
        log.close()
        bad = (FiringStatus.FAILED, FiringStatus.GAVE_UP, FiringStatus.ABANDONED)
        if any(f.status in bad for f in firings):
            sys.exit(1)
    except EmatixError as error:
        _fail(error)


@click.command()
@module_option
@run_log_option
def status(module: str, run_log_url: str | None) -> None:
    """Per-pipeline status: last run, attempts, next due, upstream waits.

    The line under the table says which run log was read (``dagster://`` when
    ``$DAGSTER_HOME`` is set); a run log that cannot be opened is an error (exit 1).
    """
    from rich.console import Console
    from rich.table import Table

    from ematix_engine.batch.orchestrate import pipeline_status

    try:
        pipelines = _load(module)
        log = _open_run_log(run_log_url)
        table = Table(
            "pipeline",
            "schedule",
            "last",
            "started",
            "attempts",
            "next due",
            "waiting on",
            caption=_run_log_caption(run_log_url),
        )
        for row in pipeline_status(pipelines, log):
            table.add_row(
                row.pipeline,
                row.schedule or "-",
                row.last_status or "never",
                row.last_started_at.strftime("%Y-%m-%d %H:%M:%S") if row.last_started_at else "-",
                str(row.attempts),
                row.next_due.strftime("%Y-%m-%d %H:%M:%S") if row.next_due else "-",
                row.waiting_on or "",
            )
        Console(width=160).print(table)
        log.close()
    except EmatixError as error:
        _fail(error)


@click.command()
@module_option
@click.argument("name")
def preview(module: str, name: str) -> None:
    """Show the plan for NAME without writing anything.

    The SQL is checked first as ``validate`` does (EXPLAIN on the source database): SQL the
    database rejects, e.g. reading a missing table, fails the same way (exit 1).
    """
    from ematix_engine.batch.validate import validate_pipeline

    try:
        (pipeline,) = _load(module, [name])
        try:
            validate_pipeline(pipeline)
        except EmatixError as error:
            click.echo(f"INVALID {pipeline.name}: {error}", err=True)
            sys.exit(1)
        click.echo(str(pipeline.preview()))
    except EmatixError as error:
        _fail(error)


@click.command()
@module_option
@click.argument("names", nargs=-1)
def validate(module: str, names: tuple[str, ...]) -> None:
    """EXPLAIN each pipeline's SQL against its source database."""
    from ematix_engine.batch.validate import validate_pipeline

    try:
        pipelines = _load(module, names)
        bad = False
        for pipeline in pipelines:
            try:
                plan = validate_pipeline(pipeline)
                click.echo(f"OK {pipeline.name} ({len(plan)} plan lines)")
            except EmatixError as error:
                click.echo(f"INVALID {pipeline.name}: {error}", err=True)
                bad = True
        if bad:
            sys.exit(1)
    except EmatixError as error:
        _fail(error)


@click.command(name="list")
@module_option
def list_pipelines(module: str) -> None:
    """List the pipelines a module declares: name, targets, modes, schedule."""
    try:
        pipelines = _load(module)
    except EmatixError as error:
        _fail(error)
    if not pipelines:
        click.echo(f"module {module!r} declares no pipelines")
        return
    for pipeline in pipelines:
        spec = pipeline.spec
        targets = ", ".join(f"{t.label} [{t.mode.value}]" for t in spec.targets)
        schedule = f"  schedule {spec.schedule}" if spec.schedule else ""
        click.echo(f"{spec.name}  → {targets}{schedule}")


@click.group()
def runs() -> None:
    """Inspect the run history."""


@runs.command(name="list")
@run_log_option
@click.option("--pipeline", default=None, help="Only this pipeline.")
@click.option("--limit", default=20, show_default=True)
def runs_list(run_log_url: str | None, pipeline: str | None, limit: int) -> None:
    """List recent runs, newest first.

    The line under the table says which run log was read; one that cannot be opened is an
    error (exit 1).
    """
    from rich.console import Console
    from rich.table import Table

    try:
        log = _open_run_log(run_log_url)
        records = log.runs(pipeline, limit=limit)
    except EmatixError as error:
        _fail(error)
    table = Table(
        "started",
        "pipeline",
        "status",
        "attempt",
        "ins",
        "upd",
        "unch",
        "closed",
        "del",
        "error / reason",
        caption=_run_log_caption(run_log_url),
    )
    for r in records:
        table.add_row(
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.pipeline,
            r.status.value,
            str(r.attempt) + (" (manual)" if r.metrics.get("trigger") == MANUAL else ""),
            str(r.rows_inserted),
            str(r.rows_updated),
            str(r.rows_unchanged),
            str(r.rows_closed),
            str(r.rows_deleted),
            (r.error or r.reason or "")[:80],
        )
    Console(width=180).print(table)
    log.close()
