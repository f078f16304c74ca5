"""The streaming run loop: poll → Arrow batch → [transform] → every target → DLQ → commit.

One iteration:

1. **poll** every source for up to ``batch_size`` rows, waiting at most ``max_batch_ms``;
2. **bad messages** (undecodable, missing a required field, a value that does not fit) go to
   the dead-letter topic one by one with the reason; without a DLQ the batch fails and no
   offset moves;
3. **union** the sources' rows (fan-in) and run the **transform** (``transform_sql``);
4. **causal constraints** (``constraints=``): the transformed rows become events for the
   run's one processor; its violations are alerted, produced to the DLQ (and flushed) and
   counted — before any target is written, so before any position is committed, in both
   delivery modes;
5. **write** every target (fan-out). Exactly-once pipelines commit each source's positions
   inside each target's write, and skip rows a target already holds (after a crash between
   two targets' commits);
6. **flush** the DLQ, then **commit** each source's positions. Nothing moves before every write
   and every DLQ produce is durable: a crash re-delivers the batch (at-least-once) or finds the
   positions in the targets (exactly-once).

Steps 3-4 of one batch run on a writer thread while this thread polls and decodes the next
batch (the write is mostly COPY and DuckDB/DataFusion work, which release the GIL; the poll is
mostly Python), when every source reads on from what it handed out rather than from what was
committed (``READS_AHEAD``: Kafka). One batch is in flight at most: it is finished (written,
DLQ flushed, positions committed) before the next batch is handed over, before a rebalance
moves partitions (a Kafka source calls ``before_rebalance`` first, so positions are committed
by the consumer that wrote them and a new owner seeks to current offsets), and before the
loop returns.

The loop stops when asked (:meth:`StreamRunner.stop`, a signal), or — with
``exit_when_idle`` — once every source is drained, which is the end of the stream for the
causal processor: its open ``must_match`` triggers become violations, delivered before the run
returns.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ematix_engine.errors import ConfigError, SourceError, UnsupportedError
from ematix_engine.streaming.config import Source, StreamingPipelineSpec
from ematix_engine.streaming.metrics import StreamingMetrics
from ematix_engine.streaming.result import StreamProgress, StreamResult
from ematix_engine.streaming.sources.base import BadMessage, Polled, StreamSource
from ematix_engine.streaming.targets import SourceOffsets, StreamTarget, open_target

if TYPE_CHECKING:
    from ematix_engine.streaming.violations import CausalStage, ViolationSink

__all__ = ["StreamRunner", "open_source", "run_stream"]

log = logging.getLogger("ematix.streaming")


def open_source(source: Source, spec: StreamingPipelineSpec) -> StreamSource:
    """The runtime reader of one configured source.

    Raises:
        ConfigError: the connection cannot be a stream source.
    """
    connection = source.connection
    if getattr(connection, "kind", None) == "memory":
        if source.event_time_column is not None:
            connection.use_event_time_column(source.event_time_column)
        return connection
    from ematix_engine.connections import get_connection

    connection = get_connection(connection)
    if connection.kind == "kafka":
        from ematix_engine.streaming.sources.kafka import KafkaSource

        return KafkaSource(source, connection, spec)
    if connection.kind == "object_store_local":
        from ematix_engine.streaming.sources.files import FileSource

        return FileSource(source, connection, spec)
    raise ConfigError(
        f"streaming pipeline {spec.name!r}: source {source.label} is a {connection.kind!r} "
        f"connection; streaming sources are kafka, object_store_local and MemorySource"
    )


class _Transform:
    """The SQL stage, imported on first use (``ematix_engine.transform``)."""

    def __init__(self, spec: StreamingPipelineSpec) -> None:
        try:
            from ematix_engine.transform import TransformStage
        except ImportError as error:
            raise UnsupportedError(
                "this build of ematix",
                "transform_sql (the SQL transform stage is not installed)",
                f"remove transform_sql from pipeline {spec.name!r} ({error})",
            ) from None
        self.stage = TransformStage(
            spec.transform_sql,
            lookups=dict(spec.lookups),
            udfs=list(spec.udfs),
            aggregate_udfs=list(spec.aggregate_udfs),
            pipeline=spec.name,
        )

    def run(self, rows: pa.Table) -> pa.Table:
        out = self.stage.run(rows)
        return out if isinstance(out, pa.Table) else pa.table(out)

    def close(self) -> None:
        self.stage.close()


def _concat(arrays: list[pa.Array | pa.ChunkedArray]) -> pa.Array | None:
    if not arrays:
        return None
    plain = [a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays]
    if len(plain) == 1:
        return plain[0]
    # Sources may hand out dictionary-encoded keys, each with its own dictionary.
    plain = [a.cast(a.type.value_type) if pa.types.is_dictionary(a.type) else a for a in plain]
    return pa.concat_arrays(plain)


class _Batch:
    """The rows of one iteration, with their positions, across sources."""

    def __init__(self, polls: list[tuple[StreamSource, Polled]]) -> None:
        self.polls = polls
        tables, keys, offsets, sources = [], [], [], []
        for source, polled in polls:
            if polled.rows:
                tables.append(polled.table)
                keys.append(polled.keys)
                offsets.append(polled.offsets)
                sources.append(pa.repeat(pa.scalar(source.label), polled.rows))
        self.rows_in = sum(p.rows for _, p in polls)
        self.table = (
            pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else None
        ) or (tables[0] if tables else None)
        self.sources = _concat(sources)
        self.keys = _concat(keys)
        self.offsets = _concat(offsets)
        self.bad = [b for _, p in polls for b in p.bad]

    @property
    def positions(self) -> SourceOffsets:
        """The positions to commit, by source label."""
        return {s.label: dict(p.next) for s, p in self.polls if p.next}

    def not_in(self, written: SourceOffsets) -> pa.Table | None:
        """The rows a target has not stored yet (None: it lacks none of them... all new)."""
        if self.table is None or not written:
            return None
        mask = None
        for source_label, offsets in written.items():
            for key, next_offset in offsets.items():
                done = pc.and_(
                    pc.and_(pc.equal(self.sources, source_label), pc.equal(self.keys, key)),
                    pc.less(self.offsets, next_offset),
                )
                mask = done if mask is None else pc.or_(mask, done)
        if mask is None or not pc.any(mask).as_py():
            return None
        return self.table.filter(pc.invert(mask))


def _warm(targets: list[StreamTarget], pipeline: str) -> None:
    """Let each target load what its first write needs (on the writer thread, at start)."""
    for target in targets:
        warm = getattr(target, "warm", None)
        if warm is None:
            continue
        try:
            warm()
        except Exception as error:  # the first write reports it, redacted
            log.debug("%s: warming %s failed (%s)", pipeline, target.label, type(error).__name__)


def _release(targets: list[StreamTarget], pipeline: str) -> None:
    """Let each target close a kept session that locks its file (on the writer thread)."""
    for target in targets:
        release = getattr(target, "release", None)
        if release is None:
            continue
        try:
            release()
        except Exception as error:  # the rows are committed; the next write reopens
            from ematix_engine.write import redact_error

            shown = redact_error(error, getattr(target, "connection", None))
            log.warning("%s: closing %s failed: %s", pipeline, target.label, shown)


@dataclass(slots=True)
class _Parts:
    """What one run writes with: targets and the positions they hold, transform, DLQ, totals."""

    targets: list[StreamTarget]
    written: list[SourceOffsets]
    transform: _Transform | None
    dlq: Any
    result: StreamResult


@dataclass(slots=True)
class _InFlight:
    """A batch handed to the writer thread, not yet committed."""

    batch: _Batch
    batch_id: str
    dlq_rows: int
    written: Future[tuple[int, list[Any]]]


class StreamRunner:
    """Runs one streaming pipeline until it is stopped (or drained, with ``exit_when_idle``).

    Args:
        spec: the pipeline.
        metrics: where counters go (a private registry when omitted).
        on_progress: called after every committed batch.
    """

    def __init__(
        self,
        spec: StreamingPipelineSpec,
        *,
        metrics: StreamingMetrics | None = None,
        on_progress: Callable[[StreamProgress], None] | None = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics or StreamingMetrics(spec.name)
        self.on_progress = on_progress
        self._stop = threading.Event()
        self.stopped_by = ""
        #: The totals so far (read by the supervisor after a failure).
        self.result = StreamResult(pipeline=spec.name)

    def stop(self, why: str = "stopped") -> None:
        """Ask the loop to finish the batch in flight, commit and return."""
        self.stopped_by = self.stopped_by or why
        self._stop.set()

    def run(self, *, exit_when_idle: bool = False) -> StreamResult:
        """Run the loop; return the totals when it stops.

        Raises:
            EmatixError: a source, the transform, a target or the DLQ failed; positions were
                not committed past the last batch that every target wrote.
        """
        spec = self.spec
        started = time.perf_counter()
        self.result = result = StreamResult(pipeline=spec.name)
        self._causal = None
        targets: list[StreamTarget] = []
        sources: list[StreamSource] = []
        transform = dlq = causal = None
        self._in_flight = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"ematix-write-{spec.name}")
        try:
            targets = [open_target(t, spec.name) for t in spec.targets]
            exactly_once = spec.delivery == "exactly_once"
            if exactly_once:
                for target in targets:
                    if not target.STORES_POSITIONS:
                        raise ConfigError(
                            f"streaming pipeline {spec.name!r}: delivery 'exactly_once' needs "
                            f"targets that store offsets with their rows (database or Delta); "
                            f"{target.label} cannot"
                        )
            written: list[SourceOffsets] = [{} for _ in targets]
            self._writer.submit(_warm, targets, spec.name)  # while the sources join
            sources = [open_source(s, spec) for s in spec.sources]
            self._sources = sources
            self._hint_payloads(targets)
            dlq = _open_dlq(spec)
            for source in sources:
                if hasattr(source, "before_rebalance"):
                    source.before_rebalance = self._finish_in_flight
                if hasattr(source, "bounded"):
                    source.bounded = exit_when_idle
                source.open(self._seeker(source, targets, written) if exactly_once else None)
            if spec.transform_sql is not None:
                transform = _Transform(spec)
            if spec.causal is not None:
                from ematix_engine.streaming.violations import CausalStage, ViolationSink

                self._causal = causal = CausalStage(spec)
                self._sink = ViolationSink(spec, self.metrics, causal.kinds)
            self._parts = _Parts(targets, written, transform, dlq, result)
            while not self._stop.is_set():
                if self._iterate(sources, targets, written, transform, dlq, result):
                    continue
                if exit_when_idle and self._drained and not self._stop.is_set():
                    self.stopped_by = self.stopped_by or "idle"
                    if causal is not None:  # the end of the stream
                        self._finish_in_flight()
                        self._sink.deliver(causal.finish(), dlq, result)
                    break
                if self._drained or not all(getattr(s, "WAITS_IN_POLL", False) for s in sources):
                    self._stop.wait(spec.idle_pause_ms / 1000)
            self._finish_in_flight()
        except BaseException:
            self.metrics.errors.inc()
            raise
        finally:
            self._abandon_in_flight()
            for closeable in [causal, *sources, *targets, transform, dlq]:
                if closeable is not None:
                    try:
                        closeable.close()
                    except Exception:  # closing must not hide the real error
                        log.exception("%s: closing %r failed", spec.name, closeable)
            result.duration_s = time.perf_counter() - started
            result.stopped = self.stopped_by or "stopped"
        return result

    def _seeker(
        self, source: StreamSource, targets: list[StreamTarget], written: list[SourceOffsets]
    ) -> Callable[[list[str]], dict[str, int]]:
        """Where each partition starts: the lowest position any target stored for it."""

        def seek(keys: list[str]) -> dict[str, int]:
            for i, target in enumerate(targets):
                written[i] = target.stored_positions()
            starts: dict[str, int] = {}
            for key in keys:
                stored = [w.get(source.label, {}).get(key) for w in written]
                if stored and all(s is not None for s in stored):
                    starts[key] = min(s for s in stored if s is not None)
            log.info("%s: %s starts at %s", self.spec.name, source.label, starts or "committed")
            return starts

        return seek

    def _iterate(
        self,
        sources: list[StreamSource],
        targets: list[StreamTarget],
        written: list[SourceOffsets],
        transform: _Transform | None,
        dlq: Any,
        result: StreamResult,
    ) -> bool:
        """One iteration; True when it found messages."""
        spec, metrics = self.spec, self.metrics
        metrics.iterations.inc()
        result.iterations += 1
        share = max(1, spec.max_batch_ms // len(sources))
        if not all(getattr(s, "READS_AHEAD", False) for s in sources):
            self._finish_in_flight()  # such a source reads on from what was committed
            if self._stop.is_set():  # asked to stop once that batch was done
                return False
        polls = [(s, s.poll(spec.batch_size, share)) for s in sources]
        if self._stop.is_set():
            # Asked to stop while polling: this poll is not written (nor committed, so it
            # is read again on the next start); the batch in flight is finished.
            self._finish_in_flight()
            return False
        self._drained = all(p.drained for _, p in polls)
        for source in sources:
            metrics.set_lag(source.label, source.lag())
        if not any(p.messages or p.next for _, p in polls):
            metrics.idle_iterations.inc()
            self._finish_in_flight()
            self._writer.submit(_release, targets, spec.name)  # idle: unlock DuckDB files
            return False
        batch = _Batch(polls)
        batch_id = f"{spec.name}-{uuid.uuid4().hex[:12]}"
        dlq_rows = self._dead_letters(batch.bad, dlq)
        self._finish_in_flight()
        self._fix_table_types(targets, batch)
        written_rows = self._writer.submit(self._process, batch, batch_id)
        self._in_flight = _InFlight(batch, batch_id, dlq_rows, written_rows)
        if not self._hints_settled(targets):
            # The first write creates the table whose column types the next poll must
            # decode into (a value that does not fit then goes to the DLQ on its own).
            self._finish_in_flight()
            self._hint_payloads(targets)
        return True

    def _fix_table_types(self, targets: list[StreamTarget], batch: _Batch) -> None:
        """Learn the column types a first write will create its table with, before it runs.

        Without a transform the rows written are the batch's own, and a table target infers
        a new table from them: the next poll can decode into those types while this batch is
        still being written. When inferring fails, the write reports why.
        """
        if self._hints_settled(targets) or batch.table is None:
            return
        for target in targets:
            if hasattr(target, "spec_for"):
                try:
                    target.spec_for(batch.table)
                except Exception:  # the write raises it, named, in its place
                    log.debug("%s: no table types yet", self.spec.name, exc_info=True)
                    return
        self._hint_payloads(targets)

    def _process(self, batch: _Batch, batch_id: str) -> tuple[int, list[Any]]:
        """On the writer thread: constraints, then every target; rows written, violations."""
        p = self._parts
        shared: list[pa.Table | None] = []
        violations = self._constrain(batch, shared, p.transform, p.dlq, p.result)
        rows_out = self._write(
            batch, batch_id, p.targets, p.written, p.transform, p.dlq, p.result, shared
        )
        return rows_out, violations

    def _hints_settled(self, targets: list[StreamTarget]) -> bool:
        """Whether decoding no longer waits for a write to learn the target's column types."""
        return (
            self._hinted
            or self.spec.transform_sql is not None
            or not any(hasattr(t, "payload_hint") for t in targets)
        )

    def _finish_in_flight(self) -> None:
        """Wait for the batch in flight, flush the DLQ, commit its positions, count it.

        Raises:
            EmatixError: its write failed (its positions are not committed).
        """
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return
        rows_out, violations = in_flight.written.result()
        dlq, result = self._parts.dlq, self._parts.result
        spec, metrics = self.spec, self.metrics
        batch, batch_id, dlq_rows = in_flight.batch, in_flight.batch_id, in_flight.dlq_rows
        if dlq is not None:
            dlq.flush()
        positions = batch.positions
        for source, polled in batch.polls:
            if polled.next:
                source.commit(polled.next)
                result.offsets.setdefault(source.label, {}).update(polled.next)
        result.rows_in += batch.rows_in
        result.rows_out += rows_out
        result.dlq_rows += dlq_rows
        metrics.rows_consumed.inc(batch.rows_in)
        metrics.rows_written.inc(rows_out)
        if batch.rows_in:
            result.batches += 1
            metrics.batches.inc()
        log.debug("%s: batch %s: %d in, %d out", spec.name, batch_id, batch.rows_in, rows_out)
        if self.on_progress is not None:
            self.on_progress(
                StreamProgress(
                    pipeline=spec.name,
                    batch_id=batch_id,
                    rows_in=batch.rows_in,
                    rows_out=rows_out,
                    dlq_rows=dlq_rows,
                    offsets=positions,
                    totals=result,
                    violations=tuple(violations),
                )
            )

    def _abandon_in_flight(self) -> None:
        """On the way out after a failure: let a running write end, commit nothing of it."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            try:
                in_flight.written.result()
            except Exception:  # the error that ended the loop is the one reported
                log.debug("%s: the batch in flight failed too", self.spec.name, exc_info=True)
        self._writer.shutdown(wait=True)

    def _constrain(
        self,
        batch: _Batch,
        shared: list[pa.Table | None],
        transform: _Transform | None,
        dlq: Any,
        result: StreamResult,
    ) -> list[Any]:
        """Feed the batch's transformed rows to the causal processor; deliver its violations.

        The transformed rows go into ``shared`` so the targets write the same table. Runs
        before any target is written (so before any position is committed, in both delivery
        modes); a batch the transform policy dropped feeds nothing.
        """
        causal = self._causal
        if causal is None or batch.table is None or batch.table.num_rows == 0:
            return []
        rows = self._transform(transform, batch.table, batch, dlq, result)
        shared.append(rows)
        if rows is None or rows.num_rows == 0:
            return []
        events = causal.events(rows)
        violations = causal.feed(events)
        self.metrics.causal_events.inc(len(events))
        if causal.rejected:
            self.metrics.causal_rejected.inc(causal.rejected)
            causal.rejected = 0
        self._sink.deliver(violations, dlq, result)
        return violations

    def _dead_letters(self, bad: list[BadMessage], dlq: Any) -> int:
        """Send undecodable messages to the DLQ, or fail the batch without one."""
        if not bad:
            return 0
        if dlq is None:
            # A failed write of the batch in flight is the error to report, not this one
            # (its types may be what these messages do not fit).
            self._finish_in_flight()
            first = bad[0]
            where = _where(first)
            raise SourceError(
                self.spec.name,
                f"{len(bad)} message(s) could not be read, first {where}: {first.error}; set "
                f"dead_letter_topic to route them aside (no offset was committed)",
            )
        for message in bad:
            dlq.produce(message)
        self.metrics.dlq_writes.inc(len(bad))
        return len(bad)

    def _write(
        self,
        batch: _Batch,
        batch_id: str,
        targets: list[StreamTarget],
        written: list[SourceOffsets],
        transform: _Transform | None,
        dlq: Any,
        result: StreamResult,
        shared: list[pa.Table | None],
    ) -> int:
        """Transform and write the batch into every target; rows written in all.

        ``shared`` holds the transformed batch when the causal stage made it already.
        """
        if batch.table is None or batch.table.num_rows == 0:
            return 0
        if shared and shared[0] is None:  # the transform policy dropped the batch
            return 0
        exactly_once = self.spec.delivery == "exactly_once"
        positions = batch.positions if exactly_once else None
        total = 0
        for i, target in enumerate(targets):
            remaining = batch.not_in(written[i]) if exactly_once else None
            if remaining is None:
                if not shared:
                    shared.append(self._transform(transform, batch.table, batch, dlq, result))
                rows = shared[0]
            else:
                rows = self._transform(transform, remaining, batch, dlq, result)
            if rows is None:  # dropped by the transform policy
                return 0
            total += target.write(rows, batch_id=batch_id, positions=positions)
            if positions is not None:
                for source, offsets in positions.items():
                    mine = written[i].setdefault(source, {})
                    for key, offset in offsets.items():
                        mine[key] = max(offset, mine.get(key, offset))
        return total

    def _hint_payloads(self, targets: list[StreamTarget]) -> None:
        """Without a transform, payload fields must fit the first table target's columns."""
        if self._hinted or self.spec.transform_sql is not None:
            return
        for target in targets:
            hint = getattr(target, "payload_hint", lambda: None)()
            if hint is not None:
                for source in self._sources:
                    if hasattr(source, "expected"):
                        source.expected, source.required = hint
                self._hinted = True
                return

    def _transform(
        self,
        transform: _Transform | None,
        rows: pa.Table,
        batch: _Batch,
        dlq: Any,
        result: StreamResult,
    ) -> pa.Table | None:
        if transform is None:
            return rows
        try:
            return transform.run(rows)
        except Exception as error:
            policy = self.spec.transform_on_error
            if policy == "fail":
                raise
            self.metrics.errors.inc()
            if policy == "drop":
                log.warning("%s: transform failed, batch dropped: %s", self.spec.name, error)
                result.dropped_batches += 1
                self.metrics.dropped_batches.inc()
                return None
            originals = [m for s, p in batch.polls for m in _originals(s, p, str(error))]
            for message in originals:
                dlq.produce(message)
            self.metrics.dlq_writes.inc(len(originals))
            result.dlq_rows += len(originals)
            return None

    _drained = False
    _hinted = False
    _sources: list[StreamSource] = []
    _in_flight: _InFlight | None = None
    _parts: _Parts
    _causal: CausalStage | None = None
    _sink: ViolationSink


def _originals(source: StreamSource, polled: Polled, error: str) -> list[BadMessage]:
    originals = getattr(source, "originals", None)
    if originals is None:
        raise UnsupportedError(
            source.label, "sending a whole batch to the DLQ", "use a Kafka source"
        )
    return originals(polled, f"transform failed: {error}")


def _where(message: BadMessage) -> str:
    if message.topic is not None:
        return (
            f"topic {message.topic!r} partition {message.partition} offset {message.offset} "
            f"(source {message.source})"
        )
    return f"in source {message.source}"


def _open_dlq(spec: StreamingPipelineSpec) -> Any:
    """The DLQ producer, when the pipeline has a dead-letter topic."""
    topic = spec.dead_letter_topic
    kafka = None
    from ematix_engine.connections import get_connection

    for source in spec.sources:
        if getattr(source.connection, "kind", None) == "memory":
            continue
        connection = get_connection(source.connection)
        if connection.kind == "kafka":
            kafka = kafka or connection
            topic = topic or connection.resolved().dead_letter_topic
    if topic is None:
        return None
    if kafka is None:
        raise ConfigError(
            f"streaming pipeline {spec.name!r}: dead_letter_topic {topic!r} needs a Kafka source"
        )
    from ematix_engine.streaming.dlq import DeadLetterQueue

    return DeadLetterQueue(kafka, topic, spec.name)


def run_stream(
    spec: StreamingPipelineSpec,
    *,
    exit_when_idle: bool = False,
    on_progress: Callable[[StreamProgress], None] | None = None,
    metrics: StreamingMetrics | None = None,
) -> StreamResult:
    """Run ``spec`` in this thread (see :class:`StreamRunner`)."""
    return StreamRunner(spec, metrics=metrics, on_progress=on_progress).run(
        exit_when_idle=exit_when_idle
    )
