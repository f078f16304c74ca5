"""Kafka source (confluent-kafka): consumer groups, bulk JSON decode, rebalances, exactly-once seek.

* Offsets are committed by the runner only (``enable.auto.commit`` and the automatic offset
  store are off), synchronously, for partitions this consumer still owns.
* "Caught up" is decided from end-of-partition events (``enable.partition.eof``), never from
  high watermarks, which some brokers (Tansu) report wrongly.
* Before partitions move, the runner finishes the batch it is writing (``before_rebalance``):
  its positions are committed while this consumer still owns them (lost partitions excepted:
  they are someone else's already). A rebalance that revokes partitions mid-poll drops their
  messages from the poll in flight and forgets their positions: the new owner re-reads them
  from the committed offset, and this consumer never commits a partition it lost.
* Exactly-once pipelines seek every newly assigned partition to the offset stored in the
  targets (asked of the runner at assignment time, so a partition handed over by another
  consumer resumes where that consumer's last write left it).

Every row gets ``_event_ts`` (the message timestamp, or ``event_time_column``) and, when asked,
``_topic``, ``_partition``, ``_offset`` and ``_key``. ``payload_format="raw_bytes"`` gives one
binary ``value`` column.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import operator
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message

from ematix_engine.errors import ConfigError, SourceError, UnsupportedError
from ematix_engine.streaming.sources.base import EVENT_TS, BadMessage, Polled, SeekProvider
from ematix_engine.streaming.sources.decode import decode_json, missing_required

__all__ = ["KafkaSource"]

log = logging.getLogger("ematix.streaming.kafka")

_TS = pa.timestamp("us", tz="UTC")
_second = operator.itemgetter(1)
#: Longest single wait inside a poll (seconds).
_WAIT_S = 0.05
#: Settings the runtime owns: offsets move only when the runner commits.
_OWNED = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}
#: How long the broker may hold an empty fetch in a run that ends once drained: a partition's
#: end is only reported by a fetch that finds nothing, which otherwise waits librdkafka's
#: default 500 ms (the ``exit_when_idle`` run then idles that long after its last message).
_BOUNDED_FETCH_WAIT_MS = 50


def _key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class KafkaSource:
    """One consumer in a consumer group, reading one or more topics.

    Args:
        source: the configured source (``query`` = topic, or comma-separated topics).
        connection: its ``KafkaConnection``.
        spec: the pipeline (name, for messages).
    """

    #: The consumer's position moves on as messages are handed out, so the runner may poll
    #: the next batch while the last one is still being written.
    READS_AHEAD = True
    #: ``poll`` waits for messages itself (in librdkafka, up to ``max_ms``): the runner need
    #: not pause between empty polls, and must not while the group is being joined, since
    #: the assignment is only taken up inside a poll.
    WAITS_IN_POLL = True

    def __init__(self, source: Any, connection: Any, spec: Any) -> None:
        self.label = source.label
        self.pipeline = spec.name
        self.topics = [t.strip() for t in source.query.split(",") if t.strip()]
        self.event_time_column = source.event_time_column
        self._keeps_originals = spec.transform_sql is not None and spec.transform_on_error == "dlq"
        self.metadata_columns = source.metadata_columns
        resolved = connection.resolved()
        if resolved.payload_format not in ("json", "raw_bytes"):
            raise UnsupportedError(
                "the streaming runtime",
                f"payload_format {resolved.payload_format!r} yet",
                "use json or raw_bytes",
            )
        self.payload_format = resolved.payload_format
        config = connection.client_config("consumer")
        for setting in _OWNED:
            if setting in config and config[setting] != _OWNED[setting]:
                raise ConfigError(
                    f"KafkaConnection {connection.name!r}: {setting} is managed by the streaming "
                    f"runtime (offsets move only after the targets are written); remove it"
                )
        config.update(_OWNED)
        config.setdefault("auto.offset.reset", "earliest")
        self._config = config
        self._consumer: Any = None
        self._parsing: ThreadPoolExecutor | None = None
        self._seek: SeekProvider | None = None
        self._assigned: set[tuple[str, int]] = set()
        self._eof: set[tuple[str, int]] = set()
        #: Ends and ranges of ``_pending`` in arrival order, not yet applied to ``_eof``.
        self._log: list[tuple[str, int] | range] = []
        #: Partitions whose end is in ``_log``.
        self._ended: set[tuple[str, int]] = set()
        self._pending: list[Any] = []
        self._rebalanced = False
        #: The topic, when this source reads exactly one (named, not a pattern).
        self._one_topic = (
            self.topics[0] if len(self.topics) == 1 and not self.topics[0].startswith("^") else None
        )
        #: Called before partitions move (set by the runner: finish the batch in flight).
        self.before_rebalance: Callable[[], None] = lambda: None
        #: Types the payload fields must have, and fields every message must carry.
        self.expected: pa.Schema | None = None
        self.required: tuple[str, ...] = ()
        #: Set by the runner before ``open`` when the run ends once drained (``exit_when_idle``).
        self.bounded = False

    # ------------------------------------------------------------------ lifecycle
    def open(self, seek: SeekProvider | None) -> None:
        """Join the group and subscribe."""
        from confluent_kafka import Consumer

        self._seek = seek
        self._consumer = Consumer(self.consumer_config(), logger=log)
        self._consumer.subscribe(
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def consumer_config(self) -> dict[str, Any]:
        """The librdkafka settings of the consumer ``open`` creates (may hold secrets)."""
        config = dict(self._config)
        if self.bounded:  # the end is what such a run waits for: learn it soon
            config.setdefault("fetch.wait.max.ms", _BOUNDED_FETCH_WAIT_MS)
        return config

    def close(self) -> None:
        """Leave the group."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._parsing is not None:
            self._parsing.shutdown(wait=True)
            self._parsing = None

    def _parser(self) -> ThreadPoolExecutor:
        """The thread JSON payloads are parsed on (started with the first batch)."""
        if self._parsing is None:
            self._parsing = ThreadPoolExecutor(1, thread_name_prefix=f"ematix-parse-{self.label}")
        return self._parsing

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.before_rebalance()  # the targets' stored positions are current before a seek
        keys = [_key(p.topic, p.partition) for p in partitions]
        starts = self._seek(keys) if self._seek is not None else {}
        for p in partitions:
            start = starts.get(_key(p.topic, p.partition))
            if start is not None:
                p.offset = start
            self._assigned.add((p.topic, p.partition))
            self._eof.discard((p.topic, p.partition))
        consumer.assign(partitions)
        log.info("%s: assigned %s", self.pipeline, ", ".join(keys) or "nothing")

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.before_rebalance()  # commit what was written while the partitions are ours
        self._drop(consumer, partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Lost partitions are already someone else's: commit only what this consumer keeps.
        self._assigned -= {(p.topic, p.partition) for p in partitions}
        self.before_rebalance()
        self._drop(consumer, partitions)

    def _drop(self, consumer: Any, partitions: list[Any]) -> None:
        self._rebalanced = True
        self._settle(self._pending)  # before the logged ranges' messages are filtered
        lost = {(p.topic, p.partition) for p in partitions}
        self._assigned -= lost
        self._eof -= lost
        if self._pending:
            self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in lost]
        log.info("%s: revoked %d partition(s)", self.pipeline, len(lost))
        consumer.unassign()

    # ------------------------------------------------------------------ reading
    def poll(self, max_rows: int, max_ms: int) -> Polled:
        """Up to ``max_rows`` messages within ``max_ms``, decoded into one Arrow table.

        The messages are handled a whole ``consume()`` result at a time: a Python call per
        message only to read what the Arrow columns need. The result is walked message by
        message only when it holds an event (a partition's end, an error), whose place among
        the messages matters. Python's cycle collector is paused meanwhile: tens of thousands
        of message objects would otherwise trigger collections that walk them all, again and
        again (a quarter of the time, measured); they hold no cycles and are freed the usual
        way once the batch is decoded.
        """
        with _cycle_collector_paused():
            return self._poll(max_rows, max_ms)

    def _poll(self, max_rows: int, max_ms: int) -> Polled:
        deadline = time.monotonic() + max_ms / 1000
        self._pending = []
        while len(self._pending) < max_rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Short waits, so a batch ends as soon as every partition is at its end instead
            # of idling out max_batch_ms (librdkafka waits for the whole count otherwise).
            self._rebalanced = False
            messages = self._consumer.consume(
                num_messages=min(max_rows - len(self._pending), 100_000),
                timeout=min(remaining, _WAIT_S),
            )
            if messages:
                self._take(messages)
            if self._caught_up():
                break
        pending, self._pending = self._pending, []
        if not pending:
            self._settle(pending)
            return Polled(drained=self._caught_up())
        partitions = np.fromiter(map(Message.partition, pending), np.int32, len(pending))
        self._settle(pending, partitions)
        return self._decode(pending, partitions)

    def _take(self, messages: list[Any]) -> None:
        """Keep one ``consume()`` result's messages; note partition ends; raise on errors.

        Events (a partition's end, an error) are placed among the messages: a partition is at
        its end only when no message of it follows its end event.
        """
        errors = list(map(Message.error, messages))  # map over the C method: no per-call lookup
        if not any(map(operator.is_not, errors, itertools.repeat(None))):
            self._keep(messages)
            return
        events = [i for i, e in enumerate(errors) if e is not None]
        start = 0
        for i in events:
            self._keep(messages[start:i])
            self._event(messages[i])
            start = i + 1
        self._keep(messages[start:] if start else messages)

    def _keep(self, messages: list[Any]) -> None:
        if not messages:
            return
        if self._rebalanced:  # never a partition revoked during this consume()
            owned = self._assigned
            messages = [m for m in messages if (m.topic(), m.partition()) in owned]
        if self._eof or self._ended:  # ended partitions with new messages: see _settle
            start = len(self._pending)
            self._log.append(range(start, start + len(messages)))
        self._pending.extend(messages)

    def _event(self, message: Any) -> None:
        from confluent_kafka import KafkaError

        error = message.error()
        if error.code() == KafkaError._PARTITION_EOF:
            where = (message.topic(), message.partition())
            self._log.append(where)
            self._ended.add(where)
        elif error.fatal() or not error.retriable():
            raise SourceError(self.pipeline, f"Kafka consumer ({self.label}): {error}")
        else:
            log.warning("%s: %s", self.pipeline, error)

    def _caught_up(self) -> bool:
        """Whether every owned partition is at its end (exact; cheap unless it may be so)."""
        if not self._assigned or not self._assigned <= self._eof | self._ended:
            return False
        self._settle(self._pending)
        return self._assigned <= self._eof

    def _settle(self, pending: list[Any], partitions: np.ndarray | None = None) -> None:
        """Replay the ends and message ranges logged since the last settle onto ``_eof``.

        A partition is at its end after its end event unless a message of it follows. Which
        partitions a range of messages holds is only asked when some partition is at its end,
        from ``partitions`` (per message of ``pending``) when the caller has them.
        """
        for entry in self._log:
            if not isinstance(entry, range):
                self._eof.add(entry)
            elif self._eof:
                if partitions is not None and self._one_topic is not None:
                    found = {
                        (self._one_topic, p)
                        for p in np.unique(partitions[entry.start : entry.stop]).tolist()
                    }
                else:
                    found = {(m.topic(), m.partition()) for m in pending[entry.start : entry.stop]}
                self._eof -= found
        self._log.clear()
        self._ended.clear()

    def _decode(self, messages: list[Any], partitions: np.ndarray) -> Polled:
        drained = False  # messages came: the next poll tells whether more wait
        count = len(messages)
        values = list(map(Message.value, messages))
        # Arrow parses the JSON outside the GIL: on a thread of its own, it overlaps with
        # reading the messages' other fields below (which holds the GIL). Those are read
        # straight into NumPy arrays (no list of Python ints, no per-row conversion).
        parsing = (
            self._parser().submit(decode_json, values, self.expected)
            if self.payload_format != "raw_bytes"
            else None
        )
        offsets = np.fromiter(map(Message.offset, messages), np.int64, count)
        if self._one_topic is not None:
            topics = None  # one topic: a column of it is made only when asked for
            positions = {
                _key(self._one_topic, p): o + 1 for p, o in _last_offsets(partitions, offsets)
            }
        else:
            names = [m.topic() for m in messages]
            topics = pa.array(names, pa.string())
            pairs = dict(
                zip(zip(names, partitions.tolist(), strict=True), offsets.tolist(), strict=True)
            )
            positions = {_key(t, p): o + 1 for (t, p), o in pairs.items()}
        if self.event_time_column is None:
            stamps = map(_second, map(Message.timestamp, messages))
            timestamps = pa.array(np.fromiter(stamps, np.int64, count))
        else:  # read from the payload instead
            timestamps = pa.nulls(count, pa.int64())
        bad: list[BadMessage] = []
        if parsing is None:
            table = pa.table({"value": pa.array(values, pa.binary())})
            good = None
        else:
            decoded = parsing.result()
            table, good = decoded.table, decoded.good
            bad += [self._bad(messages[i], reason) for i, reason in decoded.bad]
        index = pa.array(good, pa.int64()) if good is not None else None
        meta = {
            EVENT_TS: timestamps,
            "_partition": pa.array(partitions),
            "_offset": pa.array(offsets),
        }
        if topics is not None:
            meta["_topic"] = topics
        if good is not None:
            meta = {name: column.take(index) for name, column in meta.items()}
        table = self._with_metadata(table, meta, messages, index)
        if self.required and table.num_rows:
            mask, field = missing_required(table, self.required)
            if mask is not None:
                rows = pc.indices_nonzero(mask).to_pylist()
                originals = index.to_pylist() if index is not None else range(count)
                bad += [
                    self._bad(messages[originals[r]], f"missing required field {field!r}")
                    for r in rows
                ]
                keep = pc.invert(mask)
                table, meta = table.filter(keep), {k: v.filter(keep) for k, v in meta.items()}
        return Polled(
            table=table,
            keys=_partition_keys(self._one_topic, meta.get("_topic"), meta["_partition"]),
            offsets=meta["_offset"],
            next=positions,
            bad=bad,
            messages=len(messages),
            drained=drained,
            # Kept only for a transform that may send a whole batch to the DLQ: message
            # objects that die here are never walked by the cycle collector.
            raw=messages if self._keeps_originals else None,
        )

    def _with_metadata(
        self,
        table: pa.Table,
        meta: dict[str, pa.Array],
        messages: list[Any],
        index: pa.Array | None,
    ) -> pa.Table:
        if self.event_time_column is not None:
            if self.event_time_column not in table.column_names:
                raise SourceError(
                    self.pipeline,
                    f"event_time_column {self.event_time_column!r} is not a field of the "
                    f"messages of {self.label} (fields: {', '.join(table.column_names)})",
                )
            event_ts = _as_timestamp(table.column(self.event_time_column))
        else:
            event_ts = meta[EVENT_TS].cast(pa.timestamp("ms", tz="UTC")).cast(_TS)
        columns = {EVENT_TS: event_ts}
        for name in self.metadata_columns:
            if name == "_key":
                keys = pa.array([m.key() for m in messages], pa.binary())
                columns[name] = keys.take(index) if index is not None else keys
            elif name == "_topic" and name not in meta:  # one topic
                columns[name] = pa.repeat(pa.scalar(self._one_topic, pa.string()), table.num_rows)
            else:
                columns[name] = meta[name]
        for name, column in columns.items():
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, column)
        return table

    def _bad(self, message: Any, reason: str) -> BadMessage:
        return BadMessage(
            source=self.label,
            error=reason,
            value=message.value(),
            key=message.key(),
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
            headers=list(message.headers() or []),
        )

    def originals(self, polled: Polled, reason: str) -> list[BadMessage]:
        """Every message of a poll, as dead letters (a whole batch the transform refused)."""
        return [self._bad(m, reason) for m in polled.raw or []]

    # ------------------------------------------------------------------ committing
    def commit(self, positions: Mapping[str, int]) -> None:
        """Commit ``positions`` synchronously, for the partitions this consumer still owns."""
        from confluent_kafka import KafkaException, TopicPartition

        owned = []
        for key, offset in positions.items():
            topic, _, partition = key.rpartition(":")
            if (topic, int(partition)) in self._assigned:
                owned.append(TopicPartition(topic, int(partition), offset))
        if not owned:
            return
        try:
            self._consumer.commit(offsets=owned, asynchronous=False)
        except KafkaException as error:
            raise SourceError(
                self.pipeline, f"committing offsets of {self.label} failed: {error}"
            ) from error

    def lag(self) -> Mapping[str, int]:
        """Messages behind the high watermark per owned partition (indicative; see module)."""
        from confluent_kafka import TopicPartition

        if self._consumer is None or not self._assigned:
            return {}
        lag = {}
        owned = [TopicPartition(t, p) for t, p in self._assigned]
        try:
            for tp in self._consumer.position(owned):
                if tp.offset < 0:
                    continue
                _, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high is not None and high >= 0:
                    lag[_key(tp.topic, tp.partition)] = max(0, high - tp.offset)
        except Exception:  # lag is a metric: never fail the pipeline over it
            return {}
        return lag


def _partition_keys(topic: str | None, topics: pa.Array | None, partitions: pa.Array) -> pa.Array:
    """``topic:partition`` per row, as a dictionary array (one string per partition).

    ``topic``: the one topic every row is of (``topics`` is then None).
    """
    one = topic is None and len(topics) and topics.null_count == 0
    if one and pc.all(pc.equal(topics, topics[0])).as_py():
        topic = topics[0].as_py()
    if topic is not None:
        highest = pc.max(partitions).as_py() if len(partitions) else -1
        names = pa.array([f"{topic}:{p}" for p in range(highest + 1)], pa.string())
        return pa.DictionaryArray.from_arrays(partitions, names)
    return pc.binary_join_element_wise(topics, partitions.cast(pa.string()), ":")


def _last_offsets(partitions: np.ndarray, offsets: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(partition, offset)`` of each partition's last message in ``partitions``' order."""
    found, first_from_end = np.unique(partitions[::-1], return_index=True)
    last = offsets[len(offsets) - 1 - first_from_end]
    return zip(found.tolist(), last.tolist(), strict=True)


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (if it runs) for the block."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _as_timestamp(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A payload's event-time field as UTC microseconds (epoch ms integers, ISO text)."""
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", tz=column.type.tz or "UTC")).cast(_TS)
    if pa.types.is_integer(column.type):
        return pc.multiply(column.cast(pa.int64()), 1000).cast(_TS)
    return pc.cast(column, _TS)
