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
   pipeline at once.
5. **Run** (a pipeline partitioned in time windows loads the last window complete at the
   cron fire time; static partitions are not fired here: run each with ``--partition``), then alert (failed / gave_up / recovered) and count metrics. An alerter that raises
   is logged and swallowed by ``AlerterGroup``.

A failure is recorded as ``failed`` (retried per policy) when
:func:`~ematix_engine.errors.is_retryable` says a retry may help, and as ``gave_up`` at once
(with the gave_up alert) when the error is terminal — a config error, schema drift, a SQL or data
error — or the policy has no attempts left.
"""

from __future__ import annotations

import logging
import os
import random
import socket
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
    from ematix_engine.ops.alerters import Alerter
    from ematix_engine.ops.metrics import MetricsSink
    from ematix_engine.runlog.base import AttemptState, RunLog
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
    """Whether the pipeline's schedule fired since its last firing (unscheduled: never due)."""
    schedule = pipeline.spec.schedule
    if schedule is None:
        return False
    last = run_log.last_run(pipeline.name)
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
    lease_seconds: float = 3600,
    force: Sequence[str] = (),
) -> list[Firing]:
    """Fire every due pipeline once, upstreams first (see the module docstring).

    Args:
        pipelines: the pipelines to consider (default: every registered one).
        run_log: history, attempt state and leases.
        alerters: where failed / gave_up / recovered events go.
        metrics: where per-run counters go.
        now: the tick's time (default: now, UTC).
        owner: lease owner name (default: host:pid).
        lease_seconds: how long a claim holds if the worker dies mid-run.
        force: names to fire even when not due by schedule.

    Returns:
        One :class:`Firing` per pipeline considered, in the order they were handled.
    """
    from ematix_engine.ops.alerters import AlerterGroup
    from ematix_engine.ops.events import events_for_run
    from ematix_engine.runlog.base import RunStatus

    now = now or datetime.now(UTC)
    owner = owner or f"{socket.gethostname()}:{os.getpid()}"
    if alerters is None:
        group = AlerterGroup([])
    elif isinstance(alerters, AlerterGroup):
        group = alerters
    elif isinstance(alerters, Sequence):
        group = AlerterGroup(list(alerters))
    else:
        group = AlerterGroup([alerters])
    ordered = registry.topological_order(
        pipelines if pipelines is not None else registry.pipelines()
    )
    failed: set[str] = set()
    firings: list[Firing] = []
    for pipeline in ordered:
        name = pipeline.name
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
    return firings


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
                last_status=last.status.value if last else None,
                last_started_at=last.started_at if last else None,
                last_error=last.error if last else None,
                attempts=state.consecutive_failures,
                next_due=next_due,
                waiting_on=_upstream_block(pipeline, run_log, now, set()),
            )
        )
    return rows
