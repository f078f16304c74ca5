"""What a streaming run did: :class:`StreamResult`, and the per-batch :class:`StreamProgress`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["StreamProgress", "StreamResult"]


@dataclass(slots=True, kw_only=True)
class StreamResult:
    """Totals of one streaming run (returned when it stops).

    Attributes:
        pipeline: the pipeline's name.
        rows_in: rows read from the sources (before the transform).
        rows_out: rows written, summed over targets.
        batches: non-empty batches written.
        iterations: loop iterations, idle ones included.
        dlq_rows: messages sent to the dead-letter topic.
        dropped_batches: batches skipped by ``transform_on_error="drop"``.
        offsets: committed positions: source label → partition key → next offset.
        duration_s: wall-clock seconds.
        stopped: why the run ended: ``idle`` (exit_when_idle), ``signal`` or ``stopped``.
        violation_count: causal constraint violations (``constraints=``).
        violations: the violations (:class:`ematix_engine.causal.Violation`), oldest first;
            a long run keeps the newest 10,000.
    """

    pipeline: str
    rows_in: int = 0
    rows_out: int = 0
    batches: int = 0
    iterations: int = 0
    dlq_rows: int = 0
    dropped_batches: int = 0
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    duration_s: float = 0.0
    stopped: str = ""
    violation_count: int = 0
    violations: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamProgress:
    """Sent to ``on_progress`` after every committed batch.

    Attributes:
        pipeline: the pipeline's name.
        batch_id: the batch's id.
        rows_in: rows read in this batch.
        rows_out: rows written in this batch (summed over targets).
        dlq_rows: messages of this batch sent to the DLQ.
        offsets: positions committed by this batch, by source label.
        totals: the run's totals so far.
        violations: causal constraint violations this batch caused.
    """

    pipeline: str
    batch_id: str
    rows_in: int
    rows_out: int
    dlq_rows: int
    offsets: dict[str, dict[str, int]]
    totals: StreamResult
    violations: tuple[Any, ...] = ()
