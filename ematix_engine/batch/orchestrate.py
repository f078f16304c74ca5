"""``run-due``: fire due pipelines in dependency order, with retries that survive restarts.

One call is one scheduler tick (the cron model: an external timer starts ``ematix run-due``
every few minutes). For each pipeline, upstreams first:

1. **Retry pending?** The last attempt failed (not gave up) and the policy allows more: fire
   again once the backoff (``backoff_seconds * factor**(attempt-1)``, capped, ± jitter) has
   passed since that failure; until then the pipeline is *waiting to retry*. Attempt numbers
   come from the RunLog, so a restarted worker carries on where the last one stopped.
2. **Due by schedule?** The latest cron fire time at or before ``now`` is newer than the
   pipeline's last firing (or the pipeline has never run).
3. **Upstreams ready?** Every ``depends_on`` pipeline succeeded today (UTC) and did not fail in
   this tick; otherwise a ``skipped`` record with the reason goes to the RunLog.
4. **Lease.** ``RunLog.claim`` (compare-and-set) makes sure two workers never fire the same
   pipeline at once. The lease lives ``lease_seconds`` (60 s) and a heartbeat thread renews it
   every quarter of that while the run lives (:mod:`ematix_engine.runlog.lease`), so a run
   longer than the lease is never fired twice, and a killed worker blocks its pipeline for at
   most one lease.
5. **Run** (a pipeline partitioned in time windows loads the last window complete at the cron
   fire time; static partitions are not fired here: run each with ``--partition``), then alert
   (failed / gave_up / recovered) and count metrics. An alerter that raises
   is logged and swallowed by ``AlerterGroup``.

A failure is recorded as ``failed`` (retried per policy) when
:func:`~ematix_engine.errors.is_retryable` says a retry may help, and as ``gave_up`` at once
(with the gave_up alert) when the error is terminal — a config error, schema drift, a SQL or data
error — or the policy has no attempts left.

Before all that, a pipeline whose newest record is still ``running`` is checked: if a live
worker holds its lease it is ``claimed_elsewhere``; if nobody does (the worker died without
recording the end) the run was *abandoned*: the record becomes ``failed`` (or ``gave_up``)
with an error saying so, the failure is alerted, and the retry policy fires it again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from croniter import croniter

from ematix_engine import registry
from ematix_engine.batch.result import RunResult
from ematix_engine.batch.runner import run_pipeline
from ematix_engine.errors import EmatixError, is_retryable

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline
    from ematix_engine.ops.alerters import Alerter, AlerterGroup
    from ematix_engine.ops.metrics import MetricsSink
    from ematix_engine.runlog.base import AttemptState, RunLog, RunRecord
    from ematix_engine.specs import PipelineSpec

__all__ = ["Firing", "FiringStatus", "PipelineStatus", "is_due", "pipeline_status", "run_due"]

log = logging.getLogger("ematix.orchestrate")


class FiringStatus(StrEnum):
    """What ``run_due`` did with one pipeline."""

    SUCCESS = "success"
    FAILED = "failed"
    GAVE_UP = "gave_up"
    SKIPPED = "skipped"
    NOT_DUE = "not_due"
    WAITING_RETRY = "waiting_retry"
    CLAIMED_ELSEWHERE = "claimed_elsewhere"
    ABANDONED = "abandoned"
    """Its last run was left ``running`` by a worker that died: recorded as failed, alerted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """The outcome of one pipeline in one tick."""

    pipeline: str
    status: FiringStatus
    attempt: int = 0
    reason: str | None = None
    error: str | None = None
    result: RunResult | None = None


def previous_fire_time(schedule: str, now: datetime) -> datetime:
    """The latest cron fire time at or before ``now`` (UTC)."""
    probe = now + timedelta(microseconds=1)
    return croniter(schedule, probe).get_prev(datetime).replace(tzinfo=UTC)


def next_fire_time(schedule: str, now: datetime) -> datetime:
    """The first cron fire time after ``now`` (UTC)."""
    return croniter(schedule, now).get_next(datetime).replace(tzinfo=UTC)


def scheduled_partition(spec: PipelineSpec, now: datetime) -> str | None:
    """The partition a scheduled firing loads: the last time window complete at the fire time.

    None for unpartitioned pipelines and static partitions (their run then says which
    partition to pass).
    """
    from ematix_engine.partitions import TimeWindowPartitions

    if not isinstance(spec.partitions, TimeWindowPartitions):
        return None
    fired = previous_fire_time(spec.schedule, now) if spec.schedule else now
    keys = spec.partitions.keys(until=fired)
    return keys[-1] if keys else None


def is_due(pipeline: Pipeline, run_log: RunLog, now: datetime) -> bool:
    """Whether the pipeline's schedule fired since its last firing (unscheduled: never due).

    Manual firings (``ematix run``) do not count: a run started by hand after the cron fired
    does not take the scheduled firing's place.
    """
    from ematix_engine.runlog.base import MANUAL

    schedule = pipeline.spec.schedule
    if schedule is None:
        return False
    last = run_log.last_run(pipeline.name)
    if last is not None and last.metrics.get("trigger") == MANUAL:
        scheduled = (
            r for r in run_log.runs(pipeline.name, limit=100) if r.metrics.get("trigger") != MANUAL
        )
        last = next(scheduled, None)
    fired = previous_fire_time(schedule, now)
    return last is None or last.started_at < fired


def _retry_at(pipeline: Pipeline, state: AttemptState) -> datetime | None:
    """When the pending retry may fire, or None when no retry is pending."""
    policy = pipeline.spec.retry
    if state.consecutive_failures == 0 or state.gave_up or state.last_failure_at is None:
        return None
    if state.last_attempt >= policy.max_attempts:
        return None
    # Jitter is derived from the pipeline and attempt so a restarted worker computes the same time.
    fraction = random.Random(f"{pipeline.name}:{state.last_attempt}").random()
    delay = policy.delay_seconds(state.last_attempt, fraction)
    return state.last_failure_at + timedelta(seconds=delay)


def _upstream_block(
    pipeline: Pipeline, run_log: RunLog, now: datetime, failed: set[str]
) -> str | None:
    today = now.astimezone(UTC).date()
    for upstream in pipeline.spec.depends_on:
        if upstream in failed:
            return f"waiting on upstream {upstream!r}: it failed in this run"
        success = run_log.last_success(upstream)
        finished = success and (success.finished_at or success.started_at)
        if not finished or finished.astimezone(UTC).date() != today:
            return f"waiting on upstream {upstream!r}: no success today"
    return None


def run_due(
    pipelines: Iterable[Pipeline] | None = None,
    *,
    run_log: RunLog,
    alerters: Sequence[Alerter] | Alerter | None = None,
    metrics: MetricsSink | None = None,
    now: datetime | None = None,
    owner: str | None = None,
    lease_seconds: float = 60,
    force: Sequence[str] = (),
    alert_flush_seconds: float = 30.0,
) -> list[Firing]:
    """Fire every due pipeline once, upstreams first (see the module docstring).

    Args:
        pipelines: the pipelines to consider (default: every registered one).
        run_log: history, attempt state and leases.
        alerters: where failed / gave_up / recovered events go.
        metrics: where per-run counters go.
        now: the tick's time (default: now, UTC).
        owner: lease owner name (default: ``host:pid:uuid``, unique to this call).
        lease_seconds: the lease's time-to-live; a live run renews it every quarter of this,
            so it is also how long a killed worker blocks its pipeline.
        force: names to fire even when not due by schedule.
        alert_flush_seconds: how long the tick waits at its end for alerts still being sent
            (alerters send from background threads, so a slow one never stalls a pipeline).

    Returns:
        One :class:`Firing` per pipeline considered, in the order they were handled.
    """
    from ematix_engine.ops.alerters import AlerterGroup
    from ematix_engine.ops.events import events_for_run
    from ematix_engine.runlog.base import RunStatus
    from ematix_engine.runlog.lease import new_owner
    from ematix_engine.runlog.memory import MemoryRunLog

    now = now or datetime.now(UTC)
    owner = owner or new_owner()
    if isinstance(run_log, MemoryRunLog):
        log.warning(
            "run_due on an in-memory run log: its leases keep out only this process's threads; "
            "use a shared run log (sqlite://, postgres://) when several workers run"
        )
    if alerters is None:
        group = AlerterGroup([])
    elif isinstance(alerters, AlerterGroup):
        group = alerters
    elif isinstance(alerters, Sequence):
        group = AlerterGroup(list(alerters), background=True)
    else:
        group = AlerterGroup([alerters], background=True)
    ordered = registry.topological_order(
        pipelines if pipelines is not None else registry.pipelines()
    )
    failed: set[str] = set()
    firings: list[Firing] = []
    for pipeline in ordered:
        name = pipeline.name
        verdict = _check_running(pipeline, run_log, owner, lease_seconds, group, metrics)
        if verdict is not None:
            if verdict.status is FiringStatus.ABANDONED:
                failed.add(name)
            firings.append(verdict)
            continue
        state = run_log.attempt_state(name)
        retry_at = _retry_at(pipeline, state)
        if retry_at is not None:
            if now < retry_at:
                firings.append(
                    Firing(
                        pipeline=name,
                        status=FiringStatus.WAITING_RETRY,
                        attempt=state.last_attempt,
                        reason=f"attempt {state.next_attempt} due at {retry_at.isoformat()}",
                    )
                )
                failed.add(name)
                continue
        elif name not in force and not is_due(pipeline, run_log, now):
            firings.append(Firing(pipeline=name, status=FiringStatus.NOT_DUE))
            continue
        blocked = _upstream_block(pipeline, run_log, now, failed)
        if blocked:
            run_log.record_skip(name, blocked)
            log.info("%s skipped: %s", name, blocked)
            failed.add(name)
            firings.append(Firing(pipeline=name, status=FiringStatus.SKIPPED, reason=blocked))
            if metrics is not None:
                metrics.record_run(name, RunStatus.SKIPPED, 0.0, {}, 0)
            continue
        if not run_log.claim(name, owner, lease_seconds):
            firings.append(
                Firing(pipeline=name, status=FiringStatus.CLAIMED_ELSEWHERE, reason="lease held")
            )
            continue
        attempt = state.next_attempt
        try:
            result = run_pipeline(
                pipeline,
                run_log=run_log,
                attempt=attempt,
                partition=scheduled_partition(pipeline.spec, now),
                lease_owner=owner,
                lease_seconds=lease_seconds,
            )
            status, error = FiringStatus.SUCCESS, None
        except (EmatixError, Exception) as exc:  # every failure is recorded, alerted, contained
            result = None
            error = str(exc) or type(exc).__name__
            gave_up = attempt >= pipeline.spec.retry.max_attempts or not is_retryable(exc)
            status = FiringStatus.GAVE_UP if gave_up else FiringStatus.FAILED
            failed.add(name)
            log.error("%s attempt %d %s: %s", name, attempt, status.value, error)
        finally:
            run_log.release(name, owner)
        record = run_log.last_run(name)
        if record is not None:
            for event in events_for_run(
                record, state, max_attempts=pipeline.spec.retry.max_attempts
            ):
                group.send(event)
            if metrics is not None:
                metrics.record_run(
                    name, record.status, record.duration_s or 0.0, record.rows, record.attempt
                )
        firings.append(
            Firing(pipeline=name, status=status, attempt=attempt, error=error, result=result)
        )
    if metrics is not None:
        metrics.flush()
    group.flush(alert_flush_seconds)
    return firings


def _record_lease(record: RunRecord) -> str:
    """The lease the run of ``record`` holds (one per partition for partitioned runs)."""
    from ematix_engine.batch.runner import lease_name

    partition = record.metrics.get("partition")
    return lease_name(record.pipeline, str(partition) if partition is not None else None)


ABANDONED_ERROR = (
    "abandoned: the worker running attempt {attempt} (lease owner {owner}) stopped renewing "
    "its lease without recording an end (it was killed, crashed or lost its host); nothing it "
    "loaded was committed unless its transaction had finished"
)


def _check_running(
    pipeline: Pipeline,
    run_log: RunLog,
    owner: str,
    lease_seconds: float,
    group: AlerterGroup,
    metrics: MetricsSink | None,
) -> Firing | None:
    """Handle a pipeline whose newest record is ``running``; None when it is not.

    A live owner holds the lease: ``claimed_elsewhere``. Nobody does: the run was abandoned.
    Its record is finished as ``failed`` (``gave_up`` on the policy's last attempt), alerted,
    and the lease dropped again so the retry policy decides when it fires next.
    """
    from ematix_engine.ops.events import events_for_run
    from ematix_engine.runlog.base import RunStatus

    name = pipeline.name
    last = run_log.last_run(name)
    if last is None or last.status is not RunStatus.RUNNING:
        return None
    lease = _record_lease(last)
    if not run_log.claim(lease, owner, lease_seconds):
        return Firing(
            pipeline=name,
            status=FiringStatus.CLAIMED_ELSEWHERE,
            attempt=last.attempt,
            reason=f"running since {last.started_at.isoformat()} (lease held by a live worker)",
        )
    try:
        state = run_log.attempt_state(name)
        final = last.attempt >= pipeline.spec.retry.max_attempts
        error = ABANDONED_ERROR.format(
            attempt=last.attempt, owner=last.metrics.get("lease_owner", "unknown")
        ) + ("; the retry policy allows no more attempts" if final else "; it will be retried")
        record = last.finished(RunStatus.GAVE_UP if final else RunStatus.FAILED, error=error)
        run_log.record_finish(record)
    finally:
        run_log.release(lease, owner)
    log.error("%s attempt %d %s", name, last.attempt, error)
    for event in events_for_run(record, state, max_attempts=pipeline.spec.retry.max_attempts):
        group.send(event)
    if metrics is not None:
        metrics.record_run(name, record.status, record.duration_s or 0.0, {}, record.attempt)
    return Firing(pipeline=name, status=FiringStatus.ABANDONED, attempt=last.attempt, error=error)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineStatus:
    """One row of ``ematix status``."""

    pipeline: str
    schedule: str | None
    last_status: str | None
    last_started_at: datetime | None
    last_error: str | None
    attempts: int
    next_due: datetime | None
    waiting_on: str | None


def _shown_status(last: RunRecord | None, run_log: RunLog) -> str | None:
    """The last record's status; a ``running`` one says whether a live worker holds its lease.

    The probe is a claim by a throw-away owner with a 5 s lease, released at once: it can only
    win a lease nobody holds, so it never disturbs a live run.
    """
    from ematix_engine.runlog.base import RunStatus
    from ematix_engine.runlog.lease import new_owner

    if last is None:
        return None
    if last.status is not RunStatus.RUNNING:
        return last.status.value
    probe = f"status-probe:{new_owner()}"
    if not run_log.claim(_record_lease(last), probe, 5):
        return "running (lease held)"
    run_log.release(_record_lease(last), probe)
    return "running (abandoned: no live worker; the next run-due records it as failed)"


def pipeline_status(
    pipelines: Iterable[Pipeline], run_log: RunLog, now: datetime | None = None
) -> list[PipelineStatus]:
    """Per-pipeline status: last run, attempts since the last success, next due, upstream wait."""
    now = now or datetime.now(UTC)
    rows = []
    for pipeline in pipelines:
        last = run_log.last_run(pipeline.name)
        state = run_log.attempt_state(pipeline.name)
        retry_at = _retry_at(pipeline, state)
        if retry_at is not None:
            next_due = retry_at
        elif pipeline.spec.schedule:
            next_due = (
                previous_fire_time(pipeline.spec.schedule, now)
                if is_due(pipeline, run_log, now)
                else next_fire_time(pipeline.spec.schedule, now)
            )
        else:
            next_due = None
        rows.append(
            PipelineStatus(
                pipeline=pipeline.name,
                schedule=pipeline.spec.schedule,
                last_status=_shown_status(last, run_log),
                last_started_at=last.started_at if last else None,
                last_error=last.error if last else None,
                attempts=state.consecutive_failures,
                next_due=next_due,
                waiting_on=_upstream_block(pipeline, run_log, now, set()),
            )
        )
    return rows
