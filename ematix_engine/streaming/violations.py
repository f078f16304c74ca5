"""The causal stage of a streaming pipeline: rows → events → one processor → violations.

:class:`CausalStage` owns one :class:`~ematix_engine.causal.StreamProcessor` for the whole run,
so its window (and every open ``must_match`` trigger) carries across batches. The processor is
asyncio-native; it runs on a private event loop in a daemon thread, fed through an
:class:`~ematix_engine.causal.InMemoryEventSource` that stays open for the run: :meth:`feed`
hands over a whole batch of events at once and returns once the processor has taken all of
them, with the violations they caused. The runner's thread never runs an event loop itself, so
a pipeline started from code that already has one (a notebook, an async app) works the same.

:meth:`finish` is the end of the stream (``exit_when_idle`` drained every source): open triggers
become ``end_of_stream`` violations. :meth:`close` without it (a signal, ``stop()``, an error)
leaves them open: the stream goes on when the pipeline is started again.

:func:`violation_record` and :func:`violation_alerts` turn violations into a DLQ record and
alert events; :class:`ViolationSink` delivers them (alerters, DLQ, metrics, the result).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ematix_engine.causal import (
    CausalSpec,
    Event,
    InMemoryEventSource,
    MustMatch,
    StreamProcessor,
    Violation,
    events_from_batch,
)
from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from ematix_engine.streaming.config import StreamingPipelineSpec
    from ematix_engine.streaming.metrics import StreamingMetrics
    from ematix_engine.streaming.result import StreamResult

__all__ = [
    "ALERT_LINES",
    "CausalStage",
    "ViolationSink",
    "violation_alerts",
    "violation_record",
]

log = logging.getLogger("ematix.streaming.causal")

ALERT_LINES = 10
"""Violations listed in one alert; the rest are counted (the DLQ has every one)."""
_ROUND = 1024
"""Events the processor takes from the batch before it yields (see StreamProcessor(batch=))."""


def constraint_kind(constraint: Any) -> str:
    """``must_match`` or ``never``."""
    return "must_match" if isinstance(constraint, MustMatch) else "never"


class CausalStage:
    """One processor for a pipeline run, fed a batch of rows at a time.

    Args:
        spec: the pipeline (its ``causal`` and ``constraints``).
    """

    def __init__(self, spec: StreamingPipelineSpec) -> None:
        assert spec.causal is not None
        self.pipeline = spec.name
        self.causal: CausalSpec = spec.causal
        self.kinds = {c.name: constraint_kind(c) for c in spec.constraints}
        processor = StreamProcessor(batch=_ROUND)
        for constraint in spec.constraints:
            processor.enforce(constraint)
        for link in self.causal.links:
            processor.link(effect=link.effect, cause=link.cause, on=link.on)
        self._fired: list[Violation] = []
        processor.on_violation(self._fired.append)
        self.processor = processor
        self._source = InMemoryEventSource(spec.name)
        processor.add_source(spec.name, self._source)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"ematix-causal-{spec.name}", daemon=True
        )
        self._thread.start()
        self._run = asyncio.run_coroutine_threadsafe(
            processor.run(window_size=self.causal.window_size), self._loop
        )
        self.rejected = 0

    def events(self, rows: pa.Table) -> list[Event]:
        """The batch's rows as events (the columns are checked first).

        Raises:
            ConfigError: a column the causal spec names is not among the rows' columns, or a
                row has no event name; nothing of the batch was written.
        """
        have = set(rows.column_names)
        for key, column in self.causal.columns.items():
            if column not in have:
                raise ConfigError(
                    f"streaming pipeline {self.pipeline!r}: causal {key} {column!r} is not a "
                    f"column of the rows the pipeline writes (after transform_sql); columns: "
                    f"{', '.join(rows.column_names)}"
                )
        try:
            return events_from_batch(rows, self.causal)
        except CausalConfigError as error:
            raise ConfigError(
                f"streaming pipeline {self.pipeline!r}: causal: "
                f"{str(error).removeprefix('CausalSpec: ')}"
            ) from None

    def feed(self, events: Sequence[Event]) -> list[Violation]:
        """Process ``events`` in order; return the violations they caused."""
        if not events:
            return []
        return self._call(self._feed(list(events)))

    async def _feed(self, events: list[Event]) -> list[Violation]:
        source, run = self._source, self._run
        source.extend(events)
        while len(source):  # the processor takes whole rounds of the buffer between yields
            if run.done():
                break
            await asyncio.sleep(0)
        return self._take()

    def _take(self) -> list[Violation]:
        """The violations fired since the last call (and forget them in the processor)."""
        fired = list(self._fired)
        self._fired.clear()
        self.processor.violations.clear()
        errors = self.processor.errors
        if errors:
            self.rejected += len(errors)
            errors.clear()
        return fired

    def finish(self) -> list[Violation]:
        """End of the stream: open ``must_match`` triggers become violations, which it returns."""

        async def end() -> list[Violation]:
            self._source.close()
            await asyncio.wrap_future(self._run)
            return self._take()

        try:
            return self._call(end())
        finally:
            self.close()

    def _call(self, coroutine: Any) -> Any:
        result = asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
        if self._run.done() and self._run.exception() is not None:
            raise self._run.exception()  # type: ignore[misc]
        return result

    def open_triggers(self) -> int:
        """``must_match`` triggers still waiting for their response."""
        return sum(len(v) for v in self.processor.open_triggers().values())

    def close(self) -> None:
        """Stop the processor (open triggers stay open: this is not the end of the stream)."""
        if self._loop.is_closed():
            return
        try:
            if not self._run.done():
                left = self._call(self._stop())
                if left:
                    log.info(
                        "%s: stopped with %d must_match trigger(s) still open (not the end of "
                        "the stream, so not violations)",
                        self.pipeline,
                        left,
                    )
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _stop(self) -> int:
        left = self.open_triggers()
        await self.processor.stop()
        # An idle run() only looks at the stop flag when events arrive; closing the source
        # ends it, and the flag keeps the end-of-stream checks from running.
        self._source.close()
        await asyncio.wrap_future(self._run)
        return left


def violation_record(
    pipeline: str, kind: str, violation: Violation
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The DLQ record of one violation: ``(key, value, headers)``.

    The value is JSON: ``pipeline``, ``constraint``, ``constraint_kind`` (must_match / never),
    ``kind`` (never / timeout / evicted / end_of_stream), ``event_ids``, ``events`` (id and
    name of each), ``seq`` and ``detected_at`` (ISO, UTC). Event data is not copied. The key is
    the constraint's name; the headers name the pipeline, the constraint and the kind.
    """
    detected = datetime.fromtimestamp(violation.detected_at, UTC).isoformat()
    value = {
        "pipeline": pipeline,
        "constraint": violation.constraint,
        "constraint_kind": kind,
        "kind": violation.kind,
        "event_ids": [e.id for e in violation.events],
        "events": [{"id": e.id, "name": e.name} for e in violation.events],
        "seq": violation.seq,
        "detected_at": detected,
    }
    headers = [
        ("ematix.error", f"causal constraint violated: {violation.description}".encode()),
        ("ematix.pipeline", pipeline.encode()),
        ("ematix.constraint", violation.constraint.encode()),
        ("ematix.violation", violation.kind.encode()),
    ]
    return violation.constraint.encode(), json.dumps(value).encode(), headers


def violation_alerts(pipeline: str, violations: Sequence[Violation]) -> list[Any]:
    """One alert event per constraint: the count, then up to :data:`ALERT_LINES` violations."""
    from ematix_engine.ops.events import AlertEvent, AlertKind

    by_constraint: dict[str, list[Violation]] = {}
    for violation in violations:
        by_constraint.setdefault(violation.constraint, []).append(violation)
    alerts = []
    for constraint, fired in by_constraint.items():
        times = "1 time" if len(fired) == 1 else f"{len(fired)} times"
        lines = [f"causal constraint {constraint!r} violated {times}"]
        lines += [v.description for v in fired[:ALERT_LINES]]
        if len(fired) > ALERT_LINES:
            lines.append(f"… and {len(fired) - ALERT_LINES} more")
        alerts.append(
            AlertEvent(
                kind=AlertKind.VIOLATION, pipeline=pipeline, attempt=0, error="\n".join(lines)
            )
        )
    return alerts


class ViolationSink:
    """Delivers violations: alerters, the DLQ (one record each), metrics and the result.

    Args:
        spec: the pipeline (its alerters).
        metrics: the pipeline's metrics.
        kinds: constraint name → ``must_match`` / ``never``.
        keep: most violations kept in ``StreamResult.violations`` (the newest).
    """

    def __init__(
        self,
        spec: StreamingPipelineSpec,
        metrics: StreamingMetrics,
        kinds: dict[str, str],
        keep: int = 10_000,
    ) -> None:
        from ematix_engine.ops.alerters import AlerterGroup

        self.pipeline = spec.name
        self.alerters = AlerterGroup(spec.alerters)
        self.metrics = metrics
        self.kinds = kinds
        self.keep = keep

    def deliver(self, violations: Sequence[Violation], dlq: Any, result: StreamResult) -> None:
        """Send, produce (and flush), count and record ``violations``.

        Alerters are best-effort (one that raises is logged and skipped); the DLQ is durable:
        :meth:`DeadLetterQueue.flush` raises when a record was not acknowledged, and the batch's
        offsets then stay where they are.
        """
        if not violations:
            return
        for violation in violations:
            self.metrics.violation(violation.constraint)
        result.violation_count += len(violations)
        result.violations.extend(violations)
        if len(result.violations) > self.keep:
            del result.violations[: len(result.violations) - self.keep]
        log.warning(
            "%s: %d causal violation(s): %s",
            self.pipeline,
            len(violations),
            violations[0].description + (" …" if len(violations) > 1 else ""),
        )
        self.alerters.send_all(violation_alerts(self.pipeline, violations))
        if dlq is not None:
            for violation in violations:
                key, value, headers = violation_record(
                    self.pipeline, self.kinds[violation.constraint], violation
                )
                dlq.produce_record(value=value, key=key, headers=headers)
            dlq.flush()
            self.metrics.dlq_writes.inc(len(violations))
            result.dlq_rows += len(violations)
