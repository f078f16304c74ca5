"""Alert events and the rule deciding which ones a finished run produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ematix_engine.runlog.base import AttemptState, RunRecord, RunStatus, utc_now

__all__ = ["AlertEvent", "AlertKind", "events_for_run"]


class AlertKind(StrEnum):
    """What an alert is about."""

    FAILED = "failed"
    """An attempt failed and the retry policy will try again."""
    GAVE_UP = "gave_up"
    """The last allowed attempt failed; nothing more will run until the next schedule."""
    RECOVERED = "recovered"
    """A run succeeded after at least one failed attempt."""
    VIOLATION = "violation"
    """A streaming pipeline's rows violated a causal constraint (the text is in ``error``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One thing worth telling a human about.

    Attributes:
        kind: failed, gave_up, recovered or violation.
        pipeline: Pipeline name.
        attempt: Attempt number of the run the event is about (0 for a violation).
        error: Error text of a failed run (``None`` for recovered); for a violation, what was
            violated (first line: the constraint and the count; then one line per violation).
        run_id: Id of the run in the run log, if known.
        at: When it happened (aware, normalised to UTC).
        failed_attempts: For ``recovered``: how many failed attempts preceded the success.
    """

    kind: AlertKind
    pipeline: str
    attempt: int
    error: str | None = None
    run_id: str | None = None
    at: datetime = field(default_factory=utc_now)
    failed_attempts: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AlertKind(self.kind))
        if not self.pipeline:
            raise ValueError("AlertEvent.pipeline must be a non-empty string")
        if self.at.tzinfo is None:
            raise ValueError("AlertEvent.at must be timezone-aware; use datetime.now(UTC)")
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    @property
    def summary(self) -> str:
        """One plain-text line, e.g. ``pipeline 'orders' failed on attempt 2: timeout``."""
        first_line = self.error.strip().splitlines()[0] if self.error and self.error.strip() else ""
        if self.kind is AlertKind.VIOLATION:
            return f"pipeline {self.pipeline!r}: {first_line or 'causal constraint violated'}"
        if self.kind is AlertKind.RECOVERED:
            plural = "s" if self.failed_attempts != 1 else ""
            return (
                f"pipeline {self.pipeline!r} recovered: attempt {self.attempt} succeeded after "
                f"{self.failed_attempts} failed attempt{plural}"
            )
        verb = "gave up after attempt" if self.kind is AlertKind.GAVE_UP else "failed on attempt"
        text = f"pipeline {self.pipeline!r} {verb} {self.attempt}"
        if self.error:
            text += f": {first_line}"
        return text


def events_for_run(
    record: RunRecord, previous: AttemptState, *, max_attempts: int | None = None
) -> list[AlertEvent]:
    """Decide which alerts a finished run produces.

    * ``failed`` run with attempts left → ``failed``;
    * ``gave_up`` run, or ``failed`` on attempt ``>= max_attempts`` → ``gave_up``;
    * ``success`` when ``previous.consecutive_failures >= 1`` → ``recovered`` (a first-time
      success stays quiet);
    * anything else (running, skipped, a success after a success) → nothing.

    Args:
        record: The run as it finished.
        previous: The pipeline's attempt state read *before* ``record`` was written.
        max_attempts: The retry policy's limit, if any.

    Returns:
        Zero or one event.

    Example:
        >>> from ematix_engine.runlog import AttemptState, RunRecord
        >>> ok = RunRecord(pipeline="orders", status="success", attempt=3)
        >>> before = AttemptState(pipeline="orders", consecutive_failures=2, last_attempt=2)
        >>> [e.summary for e in events_for_run(ok, before)]
        ["pipeline 'orders' recovered: attempt 3 succeeded after 2 failed attempts"]
    """
    at = record.finished_at or record.started_at
    common = {
        "pipeline": record.pipeline,
        "attempt": record.attempt,
        "run_id": record.run_id,
        "at": at,
    }
    if record.status is RunStatus.GAVE_UP or (
        record.status is RunStatus.FAILED
        and max_attempts is not None
        and record.attempt >= max_attempts
    ):
        return [AlertEvent(kind=AlertKind.GAVE_UP, error=record.error, **common)]
    if record.status is RunStatus.FAILED:
        return [AlertEvent(kind=AlertKind.FAILED, error=record.error, **common)]
    if record.status is RunStatus.SUCCESS and previous.consecutive_failures >= 1:
        return [
            AlertEvent(
                kind=AlertKind.RECOVERED, failed_attempts=previous.consecutive_failures, **common
            )
        ]
    return []
