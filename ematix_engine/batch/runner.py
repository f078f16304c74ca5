"""Run a pipeline: for each target, one transaction that stages, plans, writes and commits.

Per target: open the target session → begin → batch constants → raw rows (same database:
``CREATE TEMP TABLE … AS SELECT`` inside the target; else Arrow batches staged into it) →
``ensure_table`` → prepared source → mode plan → watermark → commit. Any error rolls the whole
target back: rows and watermark stay as they were.

Cross-database loads into a backend with ``PREPARES_IN_PROCESS`` (PostgreSQL) stage and prepare
the batch in an in-memory DuckDB session instead, then COPY the prepared rows into the target (a
first load straight into the new table).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ematix_engine.backends import open_backend, same_database
from ematix_engine.backends.base import SqlBackend
from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.batch.append import load_append
from ematix_engine.batch.context import BATCH, RAW, SOURCE, Counts, LoadContext
from ematix_engine.batch.in_process import (
    CompareUnavailable,
    batch_constant_columns,
    compares_in_process,
    copy_into_empty_target,
    load_in_process,
)
from ematix_engine.batch.merge import load_merge
from ematix_engine.batch.prepare import (
    create_batch_table,
    infer_incremental_column,
    managed_columns,
    prepare_source,
    raw_schema,
    resolve_columns,
    stage_cross_database,
    stage_same_database,
    target_primary_key,
)
from ematix_engine.batch.progress import (
    COMMITTED,
    PREPARING,
    READING,
    ROLLED_BACK,
    WRITING,
    ProgressCallback,
    ProgressReporter,
)
from ematix_engine.batch.replace import load_replace
from ematix_engine.batch.result import RunResult, TargetResult
from ematix_engine.batch.scd2 import load_scd2
from ematix_engine.batch.watermarks import read_watermark, sentinel_for, write_watermark
from ematix_engine.errors import EmatixError, SourceError, is_retryable, load_error
from ematix_engine.schema.ddl import ensure_table
from ematix_engine.specs import LoadMode, PipelineSpec, TargetSpec

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline
    from ematix_engine.runlog.base import RunLog

__all__ = ["load_target", "run_pipeline", "run_sql_target"]

log = logging.getLogger("ematix.batch")

_MODES = {
    LoadMode.APPEND: load_append,
    LoadMode.MERGE: load_merge,
    LoadMode.SCD2: load_scd2,
    LoadMode.REPLACE: load_replace,
}
DEFAULT_CONNECTION = "default"


def _target_connection(target: TargetSpec) -> Any:
    return target.connection or DEFAULT_CONNECTION


def _source_connection(spec: PipelineSpec, target: TargetSpec) -> Any:
    return spec.source_connection or _target_connection(target)


def run_pipeline(
    pipeline: Pipeline,
    *,
    run_log: RunLog | None = None,
    dry_run: bool = False,
    batch_size: int = 100_000,
    attempt: int | None = None,
    on_target: Callable[[TargetResult], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunResult:
    """Load every target of ``pipeline`` once.

    Args:
        pipeline: the declared pipeline.
        run_log: records the firing (start and finish) when given.
        dry_run: run the real SQL, then roll every target back.
        batch_size: rows per Arrow batch on cross-database loads.
        attempt: attempt number to record (default: the RunLog's next attempt). A failure on
            the retry policy's last attempt, or a terminal one (see
            :func:`~ematix_engine.errors.is_retryable`), is recorded as ``gave_up``.
        on_target: called with each target's result as it completes.
        on_progress: called as each target's load enters a phase and, while a source streams
            from another database, after every batch (see :mod:`ematix_engine.batch.progress`).

    Returns:
        The counts per target and in total.

    Raises:
        EmatixError: a target failed (after the RunLog records the failure).
    """
    from ematix_engine.runlog.base import RunStatus

    spec = pipeline.spec
    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    record = None
    if run_log is not None and not dry_run:
        if attempt is None:
            attempt = run_log.attempt_state(spec.name).next_attempt
        record = run_log.record_start(spec.name, attempt, run_id=run_id)
    results: list[TargetResult] = []
    try:
        for target in spec.targets:
            results.append(
                load_target(
                    spec,
                    target,
                    batch_id=run_id,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    progress=ProgressReporter(on_progress, spec.name, target.label),
                )
            )
            if on_target is not None:
                on_target(results[-1])
    except BaseException as error:
        if record is not None:
            final = record.attempt >= spec.retry.max_attempts or not is_retryable(error)
            run_log.record_finish(
                record.finished(
                    RunStatus.GAVE_UP if final else RunStatus.FAILED,
                    error=str(error) or type(error).__name__,
                    metrics={"duration_s": time.perf_counter() - started},
                )
            )
        raise
    result = RunResult(
        pipeline=spec.name,
        run_id=run_id,
        status="success",
        duration_s=time.perf_counter() - started,
        targets=tuple(results),
        dry_run=dry_run,
    )
    if record is not None:
        run_log.record_finish(
            record.finished(
                RunStatus.SUCCESS,
                rows_inserted=result.rows_inserted,
                rows_updated=result.rows_updated,
                rows_unchanged=result.rows_unchanged,
                rows_closed=result.rows_closed,
                rows_deleted=result.rows_deleted,
                watermark=result.watermark,
                metrics={
                    "duration_s": result.duration_s,
                    "targets": [
                        {"target": t.target, "backend": t.backend, "row_count": t.row_count}
                        for t in result.targets
                    ],
                },
            )
        )
    return result


def load_target(
    spec: PipelineSpec,
    target: TargetSpec,
    *,
    batch_id: str,
    dry_run: bool = False,
    batch_size: int = 100_000,
    progress: ProgressReporter | None = None,
) -> TargetResult:
    """Load one target in one transaction (see the module docstring)."""
    started = time.perf_counter()
    progress = progress or ProgressReporter(None, spec.name, target.label)
    backend = open_backend(_target_connection(target))
    try:
        result = _load_with(backend, spec, target, batch_id, dry_run, batch_size, progress)
    finally:
        backend.close()
    progress.phase(ROLLED_BACK if dry_run else COMMITTED)
    return replace(result, duration_s=time.perf_counter() - started)


def _load_with(
    backend: Any,
    spec: PipelineSpec,
    target: TargetSpec,
    batch_id: str,
    dry_run: bool,
    batch_size: int,
    progress: ProgressReporter,
) -> TargetResult:
    options = {
        "batch_id": batch_id,
        "dry_run": dry_run,
        "batch_size": batch_size,
        "progress": progress,
    }
    if backend.name == "delta":
        return backend.load(spec, target, **options)
    return run_sql_target(backend, spec, target, **options)


def _incremental_type(spec: PipelineSpec, target: TargetSpec):
    if spec.incremental_column is None:
        return None
    return target.table.column(spec.incremental_column).type


def run_sql_target(
    backend: SqlBackend,
    spec: PipelineSpec,
    target: TargetSpec,
    *,
    batch_id: str,
    dry_run: bool = False,
    batch_size: int = 100_000,
    same_db: bool | None = None,
    source_connection: Any = None,
    progress: ProgressReporter | None = None,
) -> TargetResult:
    """Load one target through a SQL session (also the compute step of Delta loads).

    Args:
        backend: the target session.
        spec: the pipeline.
        target: the target.
        batch_id: the run's id.
        dry_run: roll back at the end.
        batch_size: rows per Arrow batch when staging across databases.
        same_db: force the same-database (or staged) path; default: compare connections.
        source_connection: the connection the SQL runs on; default: the pipeline's.
        progress: receives the phases and the rows read (default: nobody).
    """
    progress = progress or ProgressReporter(None, spec.name, target.label)
    batch_ts = datetime.now(UTC)
    source_conn = source_connection or _source_connection(spec, target)
    from ematix_engine.connections import get_connection

    user_sql = spec.source(get_connection(source_conn))
    if not isinstance(user_sql, str) or not user_sql.strip():
        raise SourceError(spec.name, "the pipeline function must return a SQL string")
    if spec.incremental_column is None:
        inferred = infer_incremental_column(spec.name, target, user_sql)
        if inferred is not None:
            spec = replace(spec, incremental_column=inferred)
    if same_db is None:
        same_db = same_database(source_conn, _target_connection(target))
    wm_type = _incremental_type(spec, target)
    # Where the batch is prepared (normalized, cast, de-duplicated): in the target itself, or,
    # for cross-database loads into a backend that hashes slowly, in-process in DuckDB.
    in_process = not same_db and backend.PREPARES_IN_PROCESS
    prep: SqlBackend = DuckDBBackend(":memory:") if in_process else backend
    backend.prepare_load_session()
    try:
        with backend.transaction(rollback=dry_run):
            stored = read_watermark(backend, spec.name, target.label) if wm_type else None
            watermark = (
                stored
                if stored is not None
                else (sentinel_for(wm_type.hash_family) if wm_type else None)
            )
            sessions = [backend] if prep is backend else [backend, prep]
            if prep is not backend:
                prep.prepare_load_session()
            for session in sessions:
                _batch_constants(session, batch_id, batch_ts, watermark, wm_type, target)
            progress.phase(READING)
            _stage_raw(
                prep, spec, user_sql, source_conn, same_db, watermark, wm_type, batch_size, progress
            )
            progress.phase(PREPARING)
            columns, mapping = resolve_columns(spec.name, target, raw_schema(prep))
            physical = columns + managed_columns(target)
            schema_arg = target.table.schema if backend.SUPPORTS_SCHEMAS else None
            created = backend.table_columns(schema_arg, target.table.name) is None
            table_sql = backend.table_sql(target.table.schema, target.table.name)
            target_empty = created or not backend.query(f"SELECT 1 FROM {table_sql} LIMIT 1")
            # Hash in-process only when every prepared row goes straight into an empty target;
            # otherwise the target hashes just the versions it inserts (a tenth, typically).
            straight_in = in_process and target_empty and _copies_straight_in(target)
            # A table this load creates and fills straight in gets its one-value-per-batch
            # columns after the rows (PostgreSQL then stores each value once, in the catalog),
            # and its primary key after the data, which builds faster than it updates.
            late = batch_constant_columns(target, physical) if straight_in and created else ()
            primary_key = target_primary_key(target)
            defer_key = created and bool(primary_key) and backend.name == "postgres"
            ddl = ensure_table(
                backend,
                target.table.schema,
                target.table.name,
                [c for c in physical if c not in late],
                primary_key=() if defer_key else primary_key,
                update_heavy=target.mode in (LoadMode.MERGE, LoadMode.SCD2),
            )

            def context(session: SqlBackend) -> LoadContext:
                return LoadContext(
                    backend=session,
                    pipeline=spec.name,
                    target=target,
                    columns=columns,
                    physical_columns=physical,
                    batch_id=batch_id,
                    batch_ts=batch_ts,
                    target_empty=target_empty,
                )

            ctx = context(backend)
            ctx.statements.extend(ddl)
            try:
                prep_ctx = context(prep)
                prepare_source(prep_ctx, mapping)
                if progress.active and not progress.rows_read:  # not streamed: count them
                    progress.rows_read = prep_ctx.scalar(
                        f"SELECT COUNT(*) FROM {prep.quote(SOURCE)}"
                    )
                progress.phase(WRITING)
                if straight_in:
                    counts = Counts(inserted=copy_into_empty_target(prep_ctx, ctx, late=late))
                elif in_process and compares_in_process(ctx, ddl):
                    try:
                        counts = load_in_process(prep_ctx, ctx)
                    except CompareUnavailable as why:
                        log.info("%s: comparing in PostgreSQL instead (%s)", spec.name, why)
                        counts = _load_staged(prep, ctx)
                elif in_process:
                    counts = _load_staged(prep, ctx)
                else:
                    counts = _MODES[target.mode](ctx)
                if defer_key:
                    ctx.run(
                        f"ALTER TABLE {table_sql} ADD PRIMARY KEY "
                        f"({', '.join(backend.quote(k) for k in primary_key)})"
                    )
            except EmatixError:
                raise
            except Exception as error:
                raise load_error(
                    spec.name, target.label, error, _redact(error, _target_connection(target))
                ) from error
            new_watermark = None
            if spec.incremental_column:
                rows = prep.query(
                    f"SELECT CAST(MAX({prep.quote(spec.incremental_column)}) AS TEXT) "
                    f"FROM {prep.quote(SOURCE)}"
                )
                new_watermark = rows[0][0] if rows and rows[0][0] is not None else stored
                if new_watermark is not None and new_watermark != stored:
                    write_watermark(backend, spec.name, target.label, new_watermark)
            row_count = int(backend.query(f"SELECT COUNT(*) FROM {ctx.table}")[0][0])
            if same_db:  # the view reads _ematix_batch: drop it first
                prep.execute(f"DROP VIEW IF EXISTS {prep.quote(RAW)}")
            else:
                prep.drop_temp(RAW)
            for session in sessions:
                for temp in (SOURCE, BATCH):
                    session.drop_temp(temp)
    finally:
        if prep is not backend:
            prep.close()
    log.info(
        "%s → %s: %d inserted, %d updated, %d unchanged, %d closed, %d deleted%s",
        spec.name,
        target.label,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.closed,
        counts.deleted,
        " (dry run, rolled back)" if dry_run else "",
    )
    return TargetResult(
        target=target.label,
        mode=target.mode.value,
        backend=backend.name,
        rows_inserted=counts.inserted,
        rows_updated=counts.updated,
        rows_unchanged=counts.unchanged,
        rows_closed=counts.closed,
        rows_deleted=counts.deleted,
        watermark=new_watermark,
        row_count=row_count,
    )


def _load_staged(prep: SqlBackend, ctx: LoadContext) -> Counts:
    """COPY the prepared rows into a temp table of the target, then run the mode's SQL plan."""
    ctx.backend.stage_arrow(
        SOURCE,
        prep.read_arrow(f"SELECT * FROM {prep.quote(SOURCE)}"),
        column_types={c.name: c.type for c in ctx.physical_columns},
    )
    ctx.backend.analyze(SOURCE)
    return _MODES[ctx.target.mode](ctx)


def _batch_constants(
    session: SqlBackend,
    batch_id: str,
    batch_ts: datetime,
    watermark: str | None,
    wm_type: Any,
    target: TargetSpec,
) -> None:
    ttl_cutoff = batch_ts - timedelta(seconds=target.ttl_seconds or 0)
    text = session.dialect == "sqlite"  # SQLite keeps timestamps as canonical text
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    create_batch_table(
        session,
        batch_id=batch_id,
        batch_ts_value=batch_ts.strftime(fmt) if text else batch_ts,
        watermark=watermark,
        watermark_type=wm_type,
        ttl_cutoff_value=ttl_cutoff.strftime(fmt) if text else ttl_cutoff,
    )


def _stage_raw(
    prep: SqlBackend,
    spec: PipelineSpec,
    user_sql: str,
    source_conn: Any,
    same_db: bool,
    watermark: str | None,
    wm_type: Any,
    batch_size: int,
    progress: ProgressReporter,
) -> None:
    """Land the source rows in ``_ematix_raw`` on the preparing session."""
    try:
        if same_db:
            stage_same_database(prep, user_sql, spec.incremental_column)
            return
        source = open_backend(source_conn)
        try:
            stage_cross_database(
                source,
                prep,
                user_sql,
                spec.incremental_column,
                watermark,
                batch_size,
                watermark_type=wm_type,
                progress=progress,
            )
        finally:
            source.close()
    except EmatixError:
        raise
    except Exception as error:
        raise SourceError(spec.name, _redact(error, source_conn)) from error


def _copies_straight_in(target: TargetSpec) -> bool:
    """Whether a first load can COPY prepared rows straight into the (empty) target."""
    if target.mode is LoadMode.SCD2:
        return target.event_timestamp_column is None  # event time needs the timeline plan
    return target.mode in (LoadMode.APPEND, LoadMode.MERGE)


def _redact(error: BaseException, connection: Any) -> str:
    text = str(error).strip() or type(error).__name__
    try:
        from ematix_engine.connections import get_connection, redact

        return redact(text, get_connection(connection))
    except Exception:  # redaction must never hide the original failure
        return text
