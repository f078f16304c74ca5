"""Run a pipeline: for each target, render its source and write the rows through the core.

Per target: plan (:func:`~ematix_engine.write.plan_write`: same database, in-process or
staged) → the source's rows (:mod:`ematix_engine.batch.source`) → :func:`~ematix_engine.write.
apply_rows`, which stages, prepares, writes and commits the rows together with the pipeline's
watermark as its checkpoint. Any error rolls the whole target back: rows and watermark stay as
they were.

A partitioned pipeline (``partitions=``) loads one partition per run (``partition=``): the
rows of that slice, written so that a re-run replaces them (see :mod:`ematix_engine.partitions`);
such a run neither reads nor moves the watermark.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ematix_engine.batch.partition_source import partition_rows
from ematix_engine.batch.result import RunResult, TargetResult
from ematix_engine.batch.source import infer_incremental_column, source_rows
from ematix_engine.batch.watermarks import sentinel_for
from ematix_engine.errors import ConfigError, SourceError, is_retryable
from ematix_engine.partitions import Partition
from ematix_engine.specs import PipelineSpec, TargetSpec
from ematix_engine.write import ArrowRows, Checkpoint, QueryRows, WritePlan, apply_rows, plan_write
from ematix_engine.write.progress import LoadProgress, ProgressCallback, ProgressReporter
from ematix_engine.write.slices import SliceFilter

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline
    from ematix_engine.runlog.base import RunLog

__all__ = [
    "RunCancelled",
    "RunEvent",
    "RunStarted",
    "iter_run",
    "load_target",
    "plan_target",
    "run_pipeline",
]

DEFAULT_CONNECTION = "default"


def target_connection(target: TargetSpec) -> Any:
    """The connection a target is written through (``default`` when the spec names none)."""
    return target.connection or DEFAULT_CONNECTION


def source_connection(spec: PipelineSpec, target: TargetSpec) -> Any:
    """The connection a pipeline's SQL runs on for ``target`` (the target's by default)."""
    return spec.source_connection or target_connection(target)


def plan_target(spec: PipelineSpec, target: TargetSpec) -> WritePlan:
    """The write core's plan for one target of a SQL pipeline (runs and previews share it)."""
    return plan_write(target, target_connection(target), rows_in=source_connection(spec, target))


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run began: the first event of :func:`iter_run`.

    Attributes:
        pipeline: the pipeline's name.
        run_id: the run's id (``_batch_id`` of the rows it writes, the RunLog record's id).
        attempt: the attempt number recorded (None without a RunLog).
        targets: the targets it loads, in order (``schema.table``).
    """

    pipeline: str
    run_id: str
    attempt: int | None
    targets: tuple[str, ...]


#: What :func:`iter_run` yields: the start, each target's progress and result, the outcome.
RunEvent = RunStarted | LoadProgress | TargetResult | RunResult


def run_pipeline(
    pipeline: Pipeline | PipelineSpec,
    *,
    run_log: RunLog | None = None,
    dry_run: bool = False,
    batch_size: int = 100_000,
    attempt: int | None = None,
    on_target: Callable[[TargetResult], None] | None = None,
    on_progress: ProgressCallback | None = None,
    partition: str | Partition | None = None,
    as_of: datetime | None = None,
    lease_owner: str | None = None,
    lease_seconds: float | None = None,
    full_refresh: bool = False,
    trigger: str | None = None,
) -> RunResult:
    """Load every target of ``pipeline`` once.

    Args:
        pipeline: the declared pipeline (or its spec).
        run_log: records the firing (start and finish) when given.
        dry_run: run the real SQL, then roll every target back.
        batch_size: rows per Arrow batch on cross-database loads.
        attempt: attempt number to record (default: the RunLog's next attempt). A failure on
            the retry policy's last attempt, or a terminal one (see
            :func:`~ematix_engine.errors.is_retryable`), is recorded as ``gave_up``.
        on_target: called with each target's result as it completes.
        on_progress: called as each target's load enters a phase and, while a source streams
            from another database, after every batch (see :mod:`ematix_engine.write.progress`).
        partition: the partition key (or ``first..last`` range of time windows) to load;
            required exactly when the pipeline declares ``partitions=``.
        as_of: the time the source's rows stand for (dlt's ``boundary_timestamp``): SCD2
            versions open and absent keys close at it; default now.
        lease_owner: the RunLog lease owner to run as (default: a new ``host:pid:uuid``); the
            lease is held and heartbeated while the run lives (see
            :mod:`ematix_engine.runlog.lease`).
        lease_seconds: the lease's time-to-live (default 60 s, renewed every quarter of it).
        full_refresh: rebuild every target from the source: empty it and reset the watermark,
            in the same transaction as the load (see :func:`load_target`).
        trigger: what started the firing, stored as ``metrics["trigger"]``. ``"manual"``
            (:data:`~ematix_engine.runlog.base.MANUAL`, what ``ematix run`` passes) makes it a
            firing of its own: attempt 1, and a failure is recorded as ``failed`` without
            counting towards the scheduled retry policy.

    Returns:
        The counts per target and in total.

    Raises:
        LeaseHeldError: another live worker is running the pipeline (nothing was loaded).
        EmatixError: a target failed (after the RunLog records the failure). Errors that are
            not :class:`~ematix_engine.errors.EmatixError` are wrapped in a
            :class:`~ematix_engine.errors.LoadError`; every message is redacted.
    """

    def dispatch(event: RunEvent) -> None:
        if isinstance(event, LoadProgress) and on_progress is not None:
            on_progress(event)
        elif isinstance(event, TargetResult) and on_target is not None:
            on_target(event)

    return _run(
        _spec_of(pipeline),
        dispatch,
        run_log=run_log,
        dry_run=dry_run,
        batch_size=batch_size,
        attempt=attempt,
        wanted=None,
        run_metrics={"trigger": trigger} if trigger else {},
        partition=partition,
        as_of=as_of,
        lease_owner=lease_owner,
        lease_seconds=lease_seconds,
        full_refresh=full_refresh,
    )


def iter_run(
    pipeline: Pipeline | PipelineSpec,
    *,
    run_log: RunLog | None = None,
    targets: Sequence[str] | None = None,
    attempt: int | None = None,
    dry_run: bool = False,
    batch_size: int = 100_000,
    run_metrics: Mapping[str, Any] | None = None,
    partition: str | Partition | None = None,
    as_of: datetime | None = None,
    lease_owner: str | None = None,
    lease_seconds: float | None = None,
    full_refresh: bool = False,
) -> Iterator[RunEvent]:
    """Run a pipeline and yield its events as they happen.

    The load runs on a worker thread; this generator yields, in order, a :class:`RunStarted`,
    then for each target its :class:`~ematix_engine.LoadProgress` events and its
    :class:`~ematix_engine.TargetResult`, and last the :class:`~ematix_engine.RunResult`. A
    failure is raised here after the RunLog recorded it. Closing the generator early (or an
    exception thrown into it, such as an interrupt) cancels the load at its next progress
    point; its transaction rolls back and the RunLog records the failure.

    Args:
        pipeline: the declared pipeline (or its spec).
        run_log: records the firing when given (attempts, counts, errors).
        targets: load only these targets (``schema.table``), in the pipeline's order.
        attempt: attempt number to record (default: the RunLog's next attempt).
        dry_run: run the real SQL, then roll every target back.
        batch_size: rows per Arrow batch on cross-database loads.
        run_metrics: extra metrics stored in the RunLog record (e.g. an orchestrator's run id).
        partition: the partition key (or ``first..last`` range of time windows) to load;
            required exactly when the pipeline declares ``partitions=``. The RunLog records
            it in the metrics (``partition``).
        as_of: the time the source's rows stand for (SCD2 validity); default now.
        lease_owner: the RunLog lease owner to run as (see :func:`run_pipeline`).
        lease_seconds: the lease's time-to-live (default 60 s).
        full_refresh: rebuild the targets from the source (empty them, reset the watermark).

    Yields:
        :data:`RunEvent` values.

    Raises:
        EmatixError: a target failed.

    Example:
        >>> from typing import Annotated
        >>> from ematix_engine import DuckDBConnection, ematix, iter_run, pk
        >>> from ematix_engine.types import BigInt
        >>> @ematix.table(schema="doc", connection=DuckDBConnection(name="m", path=":memory:"))
        ... class Numbers:
        ...     n: Annotated[BigInt, pk()]
        >>> @ematix.pipeline(target=Numbers, mode="merge")
        ... def numbers(conn):
        ...     return "SELECT 1 AS n"
        >>> kinds = [type(event).__name__ for event in iter_run(numbers)]
        >>> kinds[0], kinds[-2:]
        ('RunStarted', ['TargetResult', 'RunResult'])
    """
    spec = _spec_of(pipeline)
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled = threading.Event()

    def emit(event: RunEvent) -> None:
        if cancelled.is_set():
            raise RunCancelled(spec.name)
        events.put(event)

    def work() -> None:
        try:
            events.put(
                _run(
                    spec,
                    emit,
                    run_log=run_log,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    attempt=attempt,
                    wanted=targets,
                    run_metrics=dict(run_metrics or {}),
                    partition=partition,
                    as_of=as_of,
                    lease_owner=lease_owner,
                    lease_seconds=lease_seconds,
                    full_refresh=full_refresh,
                )
            )
        except BaseException as error:
            events.put(_Failed(error))

    worker = threading.Thread(target=work, name=f"ematix-run-{spec.name}", daemon=True)
    worker.start()
    try:
        while True:
            event = events.get()
            if isinstance(event, _Failed):
                raise event.error
            yield event
            if isinstance(event, RunResult):
                return
    finally:
        cancelled.set()
        worker.join()


class RunCancelled(BaseException):
    """The consumer of :func:`iter_run` stopped listening: the load rolls back."""

    def __init__(self, pipeline: str) -> None:
        super().__init__(f"pipeline {pipeline!r}: the run was cancelled")


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def _spec_of(pipeline: Pipeline | PipelineSpec) -> PipelineSpec:
    return pipeline if isinstance(pipeline, PipelineSpec) else pipeline.spec


def _run(
    spec: PipelineSpec,
    emit: Callable[[RunEvent], None],
    *,
    run_log: RunLog | None,
    dry_run: bool,
    batch_size: int,
    attempt: int | None,
    wanted: Sequence[str] | None,
    run_metrics: dict[str, Any],
    partition: str | Partition | None = None,
    lease_owner: str | None = None,
    lease_seconds: float | None = None,
    as_of: datetime | None = None,
    full_refresh: bool = False,
) -> RunResult:
    """Hold the pipeline's lease (with a RunLog) while :func:`_run_leased` runs."""
    chosen_partition = resolve_partition(spec, partition)  # a bad key fails before any lease
    if full_refresh and chosen_partition is not None:
        from ematix_engine.errors import ConfigError

        raise ConfigError(
            f"pipeline {spec.name!r}: full_refresh rebuilds whole targets, but this run loads "
            f"partition {chosen_partition.key!r}; a partition's run already replaces (append, "
            f"replace) or re-merges (merge, scd2) its own slice, so drop full_refresh"
        )
    if chosen_partition is not None:
        run_metrics = {**run_metrics, "partition": chosen_partition.key}
    if run_log is None or dry_run:
        return _run_leased(
            spec,
            emit,
            None,
            dry_run,
            batch_size,
            attempt,
            wanted,
            run_metrics,
            as_of=as_of,
            full_refresh=full_refresh,
            partition=chosen_partition,
        )
    from ematix_engine.runlog.lease import LEASE_TTL_SECONDS, HeldLease

    name = lease_name(spec.name, chosen_partition.key if chosen_partition else None)
    lease = HeldLease(run_log, name, lease_owner, ttl=lease_seconds or LEASE_TTL_SECONDS)
    with lease:

        def checked(event: RunEvent) -> None:
            lease.check()
            emit(event)

        return _run_leased(
            spec,
            checked,
            run_log,
            dry_run,
            batch_size,
            attempt,
            wanted,
            run_metrics,
            lease,
            as_of=as_of,
            full_refresh=full_refresh,
            partition=chosen_partition,
        )


def _run_leased(
    spec: PipelineSpec,
    emit: Callable[[RunEvent], None],
    run_log: RunLog | None,
    dry_run: bool,
    batch_size: int,
    attempt: int | None,
    wanted: Sequence[str] | None,
    run_metrics: dict[str, Any],
    lease: Any = None,
    *,
    as_of: datetime | None = None,
    full_refresh: bool = False,
    partition: Partition | None = None,
) -> RunResult:
    """Load the chosen targets, record the firing in the RunLog, report every event."""
    from ematix_engine.runlog.base import MANUAL, RunStatus

    chosen = [t for t in spec.targets if wanted is None or t.label in wanted]
    if wanted is not None and len(chosen) != len(set(wanted)):
        from ematix_engine.errors import UnknownNameError

        missing = sorted(set(wanted) - {t.label for t in chosen})
        raise UnknownNameError("target", missing[0], [t.label for t in spec.targets])
    run_id = uuid.uuid4().hex
    started = time.perf_counter()
    labels = [t.label for t in chosen]
    metrics = {**run_metrics, "targets": labels}
    if as_of is not None:
        metrics["as_of"] = as_of.isoformat()
    if lease is not None:
        metrics["lease_owner"] = lease.owner
    if full_refresh:
        metrics["full_refresh"] = True
    record = None
    manual = run_metrics.get("trigger") == MANUAL
    if run_log is not None and not dry_run:
        if attempt is None and manual:
            attempt = 1
        if attempt is None:
            attempt = run_log.attempt_state(spec.name).next_attempt
        record = run_log.record_start(spec.name, attempt, run_id=run_id)
        record = replace(record, metrics={**record.metrics, **metrics})
        run_log.record_finish(record)
    emit(RunStarted(spec.name, run_id, attempt, tuple(labels)))
    results: list[TargetResult] = []
    current: list[TargetSpec] = chosen
    try:
        for target in chosen:
            current = [target]
            result = load_target(
                spec,
                target,
                batch_id=run_id,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=ProgressReporter(emit, spec.name, target.label),
                partition=partition,
                as_of=as_of,
                full_refresh=full_refresh,
            )
            results.append(result)
            emit(result)
        if lease is not None:
            lease.check()
    except BaseException as error:
        safe = safe_error(spec, current, error)
        if record is not None and run_log is not None:
            final = not manual and (
                record.attempt >= spec.retry.max_attempts or not is_retryable(error)
            )
            run_log.record_finish(
                record.finished(
                    RunStatus.GAVE_UP if final else RunStatus.FAILED,
                    error=str(safe).strip() or type(safe).__name__,
                    metrics={**metrics, "duration_s": time.perf_counter() - started},
                )
            )
        if safe is error:
            raise
        raise safe from None
    result = RunResult(
        pipeline=spec.name,
        run_id=run_id,
        status="success",
        duration_s=time.perf_counter() - started,
        targets=tuple(results),
        dry_run=dry_run,
    )
    if record is not None and run_log is not None:
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
                    **metrics,
                    "duration_s": result.duration_s,
                    "row_counts": {t.target: t.row_count for t in result.targets},
                },
            )
        )
    return result


def safe_error(
    spec: PipelineSpec, targets: Sequence[TargetSpec], error: BaseException
) -> BaseException:
    """``error`` made safe to show, store and alert on: an ``EmatixError``, redacted.

    Engine errors are redacted in place (their message and text attributes) against every
    connection the run touched, prefixed with the pipeline and target when their message does
    not name them (a connection that failed to open), and a raw driver exception chained to
    them is replaced by its redacted text, so no traceback prints it. Any other exception (a
    raw driver error that escaped) becomes a :class:`~ematix_engine.errors.LoadError` naming
    the pipeline and its targets. Interrupts and cancellations pass through unchanged.
    """
    from ematix_engine.errors import EmatixError, LoadError, is_retryable
    from ematix_engine.write.apply import redact_error

    if not isinstance(error, Exception):
        return error
    # The retry verdict is read before the driver exception behind it is replaced.
    verdict = is_retryable(error)
    connections = [c for t in targets for c in (source_connection(spec, t), target_connection(t))]
    labels = ", ".join(t.label for t in targets) or "(no target)"
    if not isinstance(error, EmatixError):
        detail = f"{type(error).__name__}: {redact_error(error, connections)}"
        wrapped = LoadError(spec.name, labels, detail)
        wrapped.__dict__["_cause_retryable"] = verdict
        return wrapped
    for name, value in list(vars(error).items()):
        if isinstance(value, str) and value:
            setattr(error, name, redact_error(Exception(value), connections))
    if f"{spec.name!r}" not in error.message:
        error.message = f"pipeline {spec.name!r}, target {labels}: {error.message}"
    error.args = (error.message,)
    error.__dict__.setdefault("_cause_retryable", verdict)
    for link in ("__cause__", "__context__"):
        cause = getattr(error, link)
        if cause is not None and not isinstance(cause, EmatixError):
            text = f"{type(cause).__name__}: {redact_error(cause, connections)}"
            setattr(error, link, RedactedCause(text))
    return error


class RedactedCause(Exception):
    """Stands in for a driver exception whose own text may hold a secret."""


def load_target(
    spec: PipelineSpec,
    target: TargetSpec,
    *,
    batch_id: str,
    dry_run: bool = False,
    batch_size: int = 100_000,
    progress: ProgressReporter | None = None,
    partition: Partition | None = None,
    as_of: datetime | None = None,
    full_refresh: bool = False,
) -> TargetResult:
    """Load one target in one transaction (see the module docstring).

    With ``full_refresh`` the target is rebuilt from the source: emptied (every row, an SCD2
    table's history too; its columns stay), loaded from the pipeline's SQL with the watermark
    reset to its initial value, and committed with the new watermark in one transaction.

    ``as_of`` is the time the source's rows stand for (SCD2 validity), default now.
    """
    started = time.perf_counter()
    progress = progress or ProgressReporter(None, spec.name, target.label)
    plan = plan_target(spec, target)
    slice_ = slice_of(target, partition) if partition is not None else None

    def rows() -> tuple[ArrowRows | QueryRows, Checkpoint | None]:
        # Rendered once the write has begun (the target locked or snapshotted), as the
        # pipeline function may read state that the write must see.
        return _rows_and_watermark(spec, target, plan, batch_size, slice_)

    written = apply_rows(
        target_connection(target),
        target,
        rows,
        writer=spec.name,
        batch_id=batch_id,
        dry_run=dry_run,
        batch_size=batch_size,
        progress=progress,
        plan=plan,
        slice_=slice_,
        valid_at=as_of,
        rebuild=full_refresh,
    )
    counts = written.counts
    return TargetResult(
        target=target.label,
        mode=target.mode.value,
        backend=written.store,
        rows_inserted=counts.inserted,
        rows_updated=counts.updated,
        rows_unchanged=counts.unchanged,
        rows_closed=counts.closed,
        rows_deleted=counts.deleted,
        watermark=written.checkpoint,
        row_count=written.row_count,
        duration_s=time.perf_counter() - started,
        path=plan.path.value,
    )


def _rows_and_watermark(
    spec: PipelineSpec,
    target: TargetSpec,
    plan: WritePlan,
    batch_size: int,
    slice_: SliceFilter | None = None,
) -> tuple[ArrowRows | QueryRows, Checkpoint | None]:
    """Render the pipeline's SQL: its rows, and its watermark as the write's checkpoint."""
    from ematix_engine.connections import get_connection

    source_conn = source_connection(spec, target)
    user_sql = spec.source.render(get_connection(source_conn))
    if not isinstance(user_sql, str) or not user_sql.strip():
        raise SourceError(spec.name, "the pipeline function must return a SQL string")
    if slice_ is not None:
        if infer_incremental_column(spec.name, target, user_sql) is not None:
            raise ConfigError(
                f"pipeline {spec.name!r}: its SQL uses $watermark, but a partitioned run loads "
                f"one partition and keeps no watermark; use $partition_start / $partition_end"
            )
        rows = partition_rows(
            user_sql, source_conn, plan.same_database, slice_, batch_size, pipeline=spec.name
        )
        return rows, None
    incremental = spec.incremental_column or infer_incremental_column(spec.name, target, user_sql)
    wm_type = target.table.column(incremental).type if incremental else None
    rows = source_rows(
        user_sql,
        source_conn,
        same_database=plan.same_database,
        incremental_column=incremental,
        watermark_type=wm_type,
        batch_size=batch_size,
    )
    if incremental is None or wm_type is None:
        return rows, None
    return rows, Checkpoint(
        name=spec.name,
        scope=target.label,
        column=incremental,
        value_type=wm_type,
        initial=sentinel_for(wm_type.hash_family),
    )


def lease_name(pipeline: str, partition_key: str | None) -> str:
    """The RunLog lease a run holds: the pipeline's, or one per partition.

    Partitions of one pipeline are independent slices, so their runs (a Dagster backfill of
    static values, two days materialized at once) may load side by side; their writes to one
    target still take turns (the target's lock).
    """
    return pipeline if partition_key is None else f"{pipeline}[{partition_key}]"


def resolve_partition(spec: PipelineSpec, partition: str | Partition | None) -> Partition | None:
    """The partition a run of ``spec`` loads, checked against its declaration.

    Args:
        spec: the pipeline.
        partition: a key, a ``first..last`` range of time windows, or a :class:`Partition`.

    Raises:
        ConfigError: a partitioned pipeline got no partition, an unpartitioned one got one,
            or the key is not one of the declared partitions.
    """
    if spec.partitions is None:
        if partition is not None:
            raise ConfigError(
                f"pipeline {spec.name!r} declares no partitions= but the run was given "
                f"partition {getattr(partition, 'key', partition)!r}"
            )
        return None
    if partition is None:
        raise ConfigError(
            f"pipeline {spec.name!r} is partitioned on {spec.partitions.column!r}: pass the "
            f"partition to load (run(partition=...), ematix run --partition KEY)"
        )
    key = partition.key if isinstance(partition, Partition) else str(partition)
    return spec.partitions.partition(key, spec.name)


def slice_of(target: TargetSpec, partition: Partition) -> SliceFilter:
    """The slice of ``target`` that ``partition`` owns (the write core's view of it)."""
    return SliceFilter(
        column=partition.column,
        column_type=target.table.column(partition.column).type,
        key=partition.key,
        start=partition.start,
        end=partition.end,
        value=partition.value,
    )
