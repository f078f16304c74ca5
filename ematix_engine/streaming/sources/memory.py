"""A bounded in-memory source: rows in a list, an Arrow table or record batches.

For tests, examples and backfills. The source keeps its committed position itself, so a
pipeline that fails and runs again resumes after the last committed batch, exactly as a Kafka
consumer group would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from ematix_engine.errors import ConfigError
from ematix_engine.streaming.sources.base import EVENT_TS, Polled, SeekProvider

__all__ = ["MemorySource"]

_KEY = "0"


class MemorySource:
    """Rows held in memory, read in order, in batches.

    Args:
        name: the source's name (metrics, messages, checkpoints).
        data: a list of dicts, a ``pyarrow.Table``, or record batches.
        event_time_column: the column giving each row's event time; ``_event_ts`` is copied
            from it (otherwise ``_event_ts`` is the time the row was read).
        batch_size: most rows per poll (default: the pipeline's ``batch_size``).

    Example:
        >>> source = MemorySource("orders", [{"id": 1}, {"id": 2}, {"id": 3}], batch_size=2)
        >>> source.open(None)
        >>> [source.poll(10, 0).rows for _ in range(3)]
        [2, 1, 0]
    """

    kind: ClassVar[str] = "memory"

    def __init__(
        self,
        name: str,
        data: Sequence[Mapping[str, Any]] | pa.Table | Iterable[pa.RecordBatch],
        *,
        event_time_column: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("MemorySource: name is required")
        self.name = name
        self.table = _as_table(name, data)
        if event_time_column is not None and event_time_column not in self.table.column_names:
            raise ConfigError(
                f"MemorySource {name!r}: event_time_column {event_time_column!r} is not a column "
                f"(columns: {', '.join(self.table.column_names)})"
            )
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"MemorySource {name!r}: batch_size must be >= 1")
        self.event_time_column = event_time_column
        self.batch_size = batch_size
        self.label = name
        self.committed = 0
        self._next = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemorySource({self.name!r}, rows={self.table.num_rows})"

    def use_event_time_column(self, column: str) -> None:
        """Take ``_event_ts`` from ``column`` (a pipeline's ``event_time_column``).

        Raises:
            ConfigError: the rows have no such column.
        """
        if column not in self.table.column_names:
            raise ConfigError(
                f"MemorySource {self.name!r}: event_time_column {column!r} is not a column "
                f"(columns: {', '.join(self.table.column_names)})"
            )
        self.event_time_column = column

    def open(self, seek: SeekProvider | None) -> None:
        """Start at the committed row (or where ``seek`` says)."""
        with self._lock:
            start = self.committed
            if seek is not None:
                start = seek([_KEY]).get(_KEY, start)
            self._next = start

    def poll(self, max_rows: int, max_ms: int) -> Polled:
        """The next rows, up to ``max_rows`` (and the source's own ``batch_size``)."""
        with self._lock:
            size = min(max_rows, self.batch_size or max_rows)
            start = self._next
            rows = self.table.slice(start, size)
            self._next = start + rows.num_rows
            end = self._next
        drained = end >= self.table.num_rows
        if rows.num_rows == 0:
            return Polled(drained=drained)
        rows = _with_event_ts(rows, self.event_time_column)
        return Polled(
            table=rows,
            keys=pa.repeat(pa.scalar(_KEY, pa.string()), rows.num_rows),
            offsets=pa.array(range(start, end), pa.int64()),
            next={_KEY: end},
            messages=rows.num_rows,
            drained=drained,
        )

    def commit(self, positions: Mapping[str, int]) -> None:
        """Remember the committed row."""
        with self._lock:
            self.committed = max(self.committed, positions.get(_KEY, self.committed))

    def lag(self) -> Mapping[str, int]:
        """Rows not yet committed."""
        return {_KEY: self.table.num_rows - self.committed}

    def close(self) -> None:
        """Nothing to release."""

    @property
    def connection(self) -> MemorySource:
        """The source is its own connection."""
        return self


def _as_table(name: str, data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, list | tuple) and (not data or isinstance(data[0], Mapping)):
        if not data:
            return pa.table({})
        try:
            return pa.Table.from_pylist(list(data))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ConfigError(f"MemorySource {name!r}: rows do not form a table: {error}") from None
    try:
        batches = list(data)
    except TypeError:
        batches = None
    if batches and all(isinstance(b, pa.RecordBatch) for b in batches):
        return pa.Table.from_batches(batches)
    raise ConfigError(
        f"MemorySource {name!r}: data must be a list of dicts, a pyarrow Table or record "
        f"batches, got {type(data).__name__}"
    )


def _with_event_ts(rows: pa.Table, column: str | None) -> pa.Table:
    """Add (or replace) ``_event_ts``: the event-time column cast to UTC microseconds, or now."""
    ts_type = pa.timestamp("us", tz="UTC")
    if column is not None:
        values = rows.column(column)
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.timestamp("us", tz=values.type.tz or "UTC"))
            values = values.cast(ts_type)
        elif pa.types.is_integer(values.type):  # epoch milliseconds, as Kafka timestamps
            values = pc.multiply(values.cast(pa.int64()), 1000).cast(ts_type)
        else:
            values = pc.cast(values, ts_type)
    else:
        values = pa.repeat(pa.scalar(datetime.now(UTC), ts_type), rows.num_rows)
    if EVENT_TS in rows.column_names:
        rows = rows.drop_columns([EVENT_TS])
    return rows.append_column(pa.field(EVENT_TS, ts_type), values)
