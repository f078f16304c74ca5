"""Map a pipeline's ``partitions=`` onto Dagster partitions, backfill policies and schedules.

* ``ematix.hourly`` / ``daily`` / ``monthly`` → ``HourlyPartitionsDefinition`` /
  ``DailyPartitionsDefinition`` / ``MonthlyPartitionsDefinition`` in UTC with the same start,
  end and key format, and ``BackfillPolicy.single_run()``: a backfill over a range is one run
  that loads ``[first window's start, last window's end)`` in one write per target
  (``first..last`` to the engine).
* ``ematix.static(column, values)`` → ``StaticPartitionsDefinition(values)`` and
  ``BackfillPolicy.multi_run(1)``: one run per value.

A partitioned pipeline's schedule loads one partition per tick: the last window complete at
the tick, or every static value.
"""

from __future__ import annotations

import dagster as dg

from ematix_engine import PipelineSpec, StaticPartitions, TimeWindowPartitions

__all__ = ["backfill_policy_for", "partition_of", "partitioned_schedule", "partitions_def_for"]

_TIME_WINDOWS = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


def partitions_def_for(spec: PipelineSpec) -> dg.PartitionsDefinition | None:
    """The Dagster partitions of a pipeline (None when it declares none).

    Example:
        >>> from ematix_engine import daily
        >>> from ematix_engine.specs import PipelineSpec, SqlSource
        >>> spec = PipelineSpec(name="p", targets=(), source=SqlSource(query=str),
        ...     partitions=daily("day", start="2024-01-01"))
        >>> type(partitions_def_for(spec)).__name__
        'DailyPartitionsDefinition'
    """
    partitions = spec.partitions
    if isinstance(partitions, StaticPartitions):
        return dg.StaticPartitionsDefinition(list(partitions.values))
    if isinstance(partitions, TimeWindowPartitions):
        kind = _TIME_WINDOWS[partitions.cadence.value]
        return kind(
            start_date=partitions.start.strftime(partitions.key_format),
            end_date=partitions.end.strftime(partitions.key_format) if partitions.end else None,
            timezone="UTC",
            fmt=partitions.key_format,
        )
    return None


def backfill_policy_for(spec: PipelineSpec) -> dg.BackfillPolicy | None:
    """One run per backfill for time windows (a range is one write), one per static value."""
    if isinstance(spec.partitions, TimeWindowPartitions):
        return dg.BackfillPolicy.single_run()
    if isinstance(spec.partitions, StaticPartitions):
        return dg.BackfillPolicy.multi_run(1)
    return None


def partition_of(context: dg.AssetExecutionContext, spec: PipelineSpec) -> str | None:
    """The partition a step loads, as the engine takes it (``key`` or ``first..last``).

    Raises:
        dg.Failure: a partitioned pipeline's step has no partition (materialize a partition,
            or launch a backfill), or a static range spans several values.
    """
    if spec.partitions is None:
        return None
    if context.has_partition_key and not context.has_partition_key_range:
        return context.partition_key
    if not context.has_partition_key_range:
        raise dg.Failure(
            f"ematix: pipeline {spec.name!r} is partitioned on {spec.partitions.column!r}; "
            f"materialize one partition (or a range in a backfill), not the whole asset",
            allow_retries=False,
        )
    first, last = context.partition_key_range.start, context.partition_key_range.end
    if first == last:
        return first
    if isinstance(spec.partitions, StaticPartitions):
        raise dg.Failure(
            f"ematix: pipeline {spec.name!r}: static partitions load one value per run, got "
            f"{first!r} to {last!r}",
            allow_retries=False,
        )
    return f"{first}..{last}"


def partitioned_schedule(
    name: str,
    spec: PipelineSpec,
    keys: list[dg.AssetKey],
    tags: dict[str, str],
) -> dg.ScheduleDefinition:
    """A schedule on the pipeline's cron (UTC) that loads one partition per tick.

    Time windows: each tick requests the last window complete at the tick's time (a daily
    pipeline on ``0 1 * * *`` loads yesterday at 01:00), with that key as ``run_key``, so a
    window is launched once. Static values: each tick requests every value.
    """
    assert spec.partitions is not None and spec.schedule is not None
    partitions = spec.partitions
    job = dg.define_asset_job(f"{name}_job", selection=dg.AssetSelection.assets(*keys))

    @dg.schedule(
        name=f"{name}_schedule",
        cron_schedule=spec.schedule,
        job=job,
        execution_timezone="UTC",
        description=f"ematix: {spec.name} on cron {spec.schedule!r}, one partition per run",
        tags=tags,
    )
    def _partitions(context: dg.ScheduleEvaluationContext):
        if isinstance(partitions, StaticPartitions):
            stamp = context.scheduled_execution_time.isoformat()
            return [
                dg.RunRequest(run_key=f"{v}@{stamp}", partition_key=v) for v in partitions.values
            ]
        complete = partitions.keys(until=context.scheduled_execution_time)
        if not complete:
            return dg.SkipReason(f"no complete {partitions.cadence.value} window yet")
        return [dg.RunRequest(run_key=complete[-1], partition_key=complete[-1])]

    return _partitions
