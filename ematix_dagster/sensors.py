"""Failure and recovery alerts for Dagster runs, sent through the engine's alerters.

Two sensors watch the code location's runs. When a run fails, the failure sensor reads the
ematix records that run wrote in :class:`~ematix_dagster.runlog.DagsterRunLog` and sends
``failed`` / ``gave_up`` events exactly as ``ematix run-due`` would
(``ematix_engine.ops.events_for_run``); a run that failed before ematix recorded anything
still alerts, as a failure of the pipelines it selected. When a run succeeds, the recovery
sensor sends ``recovered`` for each pipeline that had failed attempts before it.
"""

# No `from __future__ import annotations`: Dagster reads the sensor context annotations.
from collections.abc import Iterable, Sequence

import dagster as dg

from ematix_dagster.constants import RUN_TAG_PIPELINE
from ematix_dagster.refs import lookup_ref
from ematix_dagster.runlog import DagsterRunLog
from ematix_engine import registry
from ematix_engine.ops import (
    Alerter,
    AlerterGroup,
    AlertEvent,
    AlertKind,
    events_for_run,
    open_alerter,
)
from ematix_engine.runlog import AttemptState, RunRecord, attempt_state_from

__all__ = ["build_alert_sensors", "failure_events", "open_alerter_group", "recovery_events"]

_HISTORY = 10_000


def open_alerter_group(alerters: Iterable[str | Alerter]) -> AlerterGroup:
    """Open alerter URLs (``stdout://``, ``slack://…``) and keep alerter objects as given.

    Raises:
        ConfigError: A URL is invalid (checked when the definitions are built).
    """
    return AlerterGroup(a if hasattr(a, "send") else open_alerter(a) for a in alerters)


def _max_attempts(pipeline: str) -> int | None:
    try:
        return registry.get_pipeline(pipeline).spec.retry.max_attempts
    except Exception:
        return None


def _latest_per_pipeline(records: Sequence[RunRecord]) -> list[RunRecord]:
    latest: dict[str, RunRecord] = {}
    for record in records:
        latest[record.pipeline] = record
    return list(latest.values())


def _state_before(log: DagsterRunLog, record: RunRecord) -> AttemptState:
    history = log.runs(record.pipeline, limit=_HISTORY)
    older = []
    seen = False
    for other in history:
        if seen:
            older.append(other)
        elif other.run_id == record.run_id:
            seen = True
    return attempt_state_from(record.pipeline, older)


def _selected_pipelines(run: dg.DagsterRun) -> list[str]:
    names = [n for n in run.tags.get(RUN_TAG_PIPELINE, "").split(",") if n]
    for key in run.asset_selection or ():
        ref = lookup_ref(key)
        if ref is not None and ref.pipeline.name not in names:
            names.append(ref.pipeline.name)
    return names


def failure_events(
    instance: dg.DagsterInstance, run: dg.DagsterRun, message: str | None
) -> list[AlertEvent]:
    """The alerts a failed Dagster run produces.

    Args:
        instance: The Dagster instance.
        run: The failed run.
        message: Dagster's failure message, used when ematix recorded nothing.

    Returns:
        ``failed`` or ``gave_up`` per pipeline of the run.
    """
    log = DagsterRunLog(instance)
    latest = _latest_per_pipeline(log.records_for_dagster_run(run.run_id))
    events: list[AlertEvent] = []
    for record in latest:
        if record.status.is_failure:
            events += events_for_run(
                record, _state_before(log, record), max_attempts=_max_attempts(record.pipeline)
            )
    recorded = {r.pipeline for r in latest}
    for pipeline in _selected_pipelines(run):
        if pipeline not in recorded:
            events.append(
                AlertEvent(
                    kind=AlertKind.FAILED,
                    pipeline=pipeline,
                    attempt=1,
                    error=message or f"Dagster run {run.run_id} failed",
                    run_id=run.run_id,
                )
            )
    return events


def recovery_events(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[AlertEvent]:
    """The ``recovered`` alerts a successful Dagster run produces.

    Args:
        instance: The Dagster instance.
        run: The successful run.

    Returns:
        One event per pipeline that succeeded after failed attempts.
    """
    log = DagsterRunLog(instance)
    events: list[AlertEvent] = []
    for record in _latest_per_pipeline(log.records_for_dagster_run(run.run_id)):
        events += events_for_run(record, _state_before(log, record))
    return [e for e in events if e.kind is AlertKind.RECOVERED]


def build_alert_sensors(
    alerters: Iterable[str | Alerter], *, name_prefix: str = "ematix"
) -> list[dg.SensorDefinition]:
    """A run-failure sensor and a run-success (recovery) sensor that send engine alerts.

    Args:
        alerters: Alerter URLs (``stdout://``, ``slack://hooks.slack.com/…``) or objects.
        name_prefix: Prefix of the sensor names.

    Returns:
        ``[<prefix>_failure_alerts, <prefix>_recovery_alerts]``, running by default.

    Raises:
        ConfigError: An alerter URL is invalid.
    """
    group = open_alerter_group(alerters)

    @dg.run_failure_sensor(
        name=f"{name_prefix}_failure_alerts",
        description="Send ematix failure alerts (engine alerters) for failed runs.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def failure_alerts(context: dg.RunFailureSensorContext) -> None:
        message = context.failure_event.message if context.failure_event else None
        group.send_all(failure_events(context.instance, context.dagster_run, message))

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=f"{name_prefix}_recovery_alerts",
        description="Send ematix recovery alerts when a pipeline succeeds after failures.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def recovery_alerts(context: dg.RunStatusSensorContext) -> None:
        group.send_all(recovery_events(context.instance, context.dagster_run))

    return [failure_alerts, recovery_alerts]
