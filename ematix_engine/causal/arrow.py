"""Arrow rows to events: the bridge a streaming pipeline will use to feed the processor.

:func:`events_from_batch` turns each row of a :class:`pyarrow.RecordBatch` into an
:class:`~ematix_engine.causal.events.Event`, as :class:`CausalSpec` says which columns hold the
id, the causes and the name. Columns are read once each (``to_pylist`` per column, timestamps
converted by one vectorised cast), never as one dict per row of the whole batch; only the
``data`` dict of each event is built per row, from the data columns alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.causal.events import Event

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CausalSpec", "events_from_batch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CausalSpec:
    """Which columns of a record batch make an event.

    Args:
        id_column: The event id (string; a null gets a generated id).
        caused_by_column: The causes: a list of ids, a single id, or null for none.
        name_column: The event name (e.g. ``"Sensor.reading"``).
        data_columns: The columns copied into ``data``; ``None`` = every column not named above.
        timestamp_column: Event time (a timestamp, or numbers in seconds); ``None`` = now.
        source: The ``source`` given to every event.

    Examples:
        >>> spec = CausalSpec(id_column="id", caused_by_column="causes", name_column="kind")
    """

    id_column: str
    caused_by_column: str
    name_column: str
    data_columns: tuple[str, ...] | None = None
    timestamp_column: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        for label in ("id_column", "caused_by_column", "name_column"):
            value = getattr(self, label)
            if not isinstance(value, str) or not value:
                raise CausalConfigError(f"CausalSpec: {label} must be a column name, got {value!r}")
        if self.data_columns is not None:
            object.__setattr__(self, "data_columns", tuple(self.data_columns))


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise CausalConfigError(
            f"CausalSpec: column {name!r} is not in the batch; columns: {', '.join(batch.schema.names)}"
        )
    return batch.column(index)


def _seconds(column: pa.Array) -> list[float | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):
        micros = pc.cast(column.cast(pa.timestamp("us", tz=column.type.tz)), pa.int64())
        return pc.divide(pc.cast(micros, pa.float64()), 1_000_000.0).to_pylist()
    return pc.cast(column, pa.float64()).to_pylist()


def events_from_batch(batch: pa.RecordBatch, spec: CausalSpec) -> list[Event]:
    """Turn every row of ``batch`` into an :class:`Event`.

    Args:
        batch: The rows.
        spec: Which columns hold the id, the causes, the name, the data and the time.

    Returns:
        One event per row, in row order.

    Raises:
        CausalConfigError: When a named column is missing or a row has no name.
    """
    ids = _column(batch, spec.id_column).to_pylist()
    names = _column(batch, spec.name_column).to_pylist()
    causes: Sequence[Any] = _column(batch, spec.caused_by_column).to_pylist()
    stamps: Sequence[float | None]
    if spec.timestamp_column is not None:
        stamps = _seconds(_column(batch, spec.timestamp_column))
    else:
        stamps = [None] * batch.num_rows
    used = {spec.id_column, spec.caused_by_column, spec.name_column, spec.timestamp_column}
    if spec.data_columns is None:
        data_names = [n for n in batch.schema.names if n not in used]
    else:
        data_names = list(spec.data_columns)
    data_values = [_column(batch, n).to_pylist() for n in data_names]
    rows = zip(*data_values, strict=True) if data_values else ((),) * batch.num_rows
    source = spec.source
    events = []
    for i, (eid, name, cause, stamp, values) in enumerate(
        zip(ids, names, causes, stamps, rows, strict=True)
    ):
        if not name:
            raise CausalConfigError(
                f"CausalSpec: row {i} has no event name in column {spec.name_column!r}"
            )
        if cause is None:
            cause = ()
        elif isinstance(cause, str):
            cause = (cause,)
        events.append(
            Event(name, dict(zip(data_names, values, strict=True)), cause, eid, source, stamp)
        )
    return events
