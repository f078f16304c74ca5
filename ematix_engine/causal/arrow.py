"""Arrow rows to events: the bridge streaming pipelines use to feed the processor.

:func:`events_from_batch` turns each row of a :class:`pyarrow.RecordBatch` (or a
:class:`pyarrow.Table`) into an :class:`~ematix_engine.causal.events.Event`, as
:class:`CausalSpec` says which columns hold the id, the causes and the name. Columns are read
once each (``to_pylist`` per column, timestamps converted by one vectorised cast), never as one
dict per row of the whole batch; only the ``data`` dict of each event is built per row, from the
data columns alone.

A streaming pipeline with ``causal=CausalSpec(...)`` also reads the processor's settings from
the spec: ``window_size`` and the ``links`` rules (see ``docs/streaming.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.causal.events import Event

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DEFAULT_WINDOW", "CausalLink", "CausalSpec", "events_from_batch"]

DEFAULT_WINDOW = 100_000
"""Events a streaming pipeline's processor holds by default (``CausalSpec.window_size``)."""


@dataclass(frozen=True, slots=True)
class CausalLink:
    """A link rule for a pipeline's processor (see :meth:`StreamProcessor.link`).

    Args:
        effect: Pattern of the effects (e.g. ``"Alerter.alert"``).
        cause: Pattern of the causes (e.g. ``"Sensor.*"``).
        on: The data field whose equal values link an effect to its retained causes.
    """

    effect: Any
    cause: Any
    on: str


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
        window_size: Streaming pipelines: most events the pipeline's processor holds
            (``None``: keep every event, memory grows with the stream).
        links: Streaming pipelines: link rules, as :class:`CausalLink` records,
            ``(effect, cause, on)`` triples or mappings with those keys.

    Examples:
        >>> spec = CausalSpec(id_column="id", caused_by_column="causes", name_column="kind")
    """

    id_column: str
    caused_by_column: str
    name_column: str
    data_columns: tuple[str, ...] | None = None
    timestamp_column: str | None = None
    source: str | None = None
    window_size: int | None = DEFAULT_WINDOW
    links: tuple[CausalLink, ...] = field(default=(), hash=False)

    def __post_init__(self) -> None:
        for label in ("id_column", "caused_by_column", "name_column"):
            value = getattr(self, label)
            if not isinstance(value, str) or not value:
                raise CausalConfigError(f"CausalSpec: {label} must be a column name, got {value!r}")
        if self.timestamp_column is not None and (
            not isinstance(self.timestamp_column, str) or not self.timestamp_column
        ):
            raise CausalConfigError(
                f"CausalSpec: timestamp_column must be a column name, got {self.timestamp_column!r}"
            )
        if self.data_columns is not None:
            if isinstance(self.data_columns, str):
                raise CausalConfigError(
                    f"CausalSpec: data_columns is a list of column names, got {self.data_columns!r}"
                )
            object.__setattr__(self, "data_columns", tuple(self.data_columns))
        size = self.window_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise CausalConfigError(f"CausalSpec: window_size must be None or >= 1, got {size!r}")
        object.__setattr__(self, "links", tuple(_link(link) for link in self.links))

    @property
    def columns(self) -> dict[str, str]:
        """The columns the spec names, by the option naming them (``data_columns[i]`` too)."""
        named = {
            "id_column": self.id_column,
            "caused_by_column": self.caused_by_column,
            "name_column": self.name_column,
        }
        if self.timestamp_column is not None:
            named["timestamp_column"] = self.timestamp_column
        for i, column in enumerate(self.data_columns or ()):
            named[f"data_columns[{i}]"] = column
        return named


def _link(value: Any) -> CausalLink:
    if isinstance(value, CausalLink):
        link = value
    elif isinstance(value, Mapping):
        unknown = set(value) - {"effect", "cause", "on"}
        if unknown or len(value) != 3:
            raise CausalConfigError(
                f"CausalSpec: a link takes effect, cause and on, got keys {sorted(value)}"
            )
        link = CausalLink(value["effect"], value["cause"], value["on"])
    elif isinstance(value, tuple | list) and len(value) == 3:
        link = CausalLink(*value)
    else:
        raise CausalConfigError(
            f"CausalSpec: a link is CausalLink(effect, cause, on) or an (effect, cause, on) "
            f"triple, got {value!r}"
        )
    if not isinstance(link.on, str) or not link.on:
        raise CausalConfigError(f"CausalSpec: a link's on= must name a data field, got {link.on!r}")
    return link


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array | pa.ChunkedArray:
    index = batch.schema.get_field_index(name)
    if index < 0:
        raise CausalConfigError(
            f"CausalSpec: column {name!r} is not in the batch; columns: {', '.join(batch.schema.names)}"
        )
    return batch.column(index)


def _seconds(column: pa.Array | pa.ChunkedArray) -> list[float | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type):
        micros = pc.cast(column.cast(pa.timestamp("us", tz=column.type.tz)), pa.int64())
        return pc.divide(pc.cast(micros, pa.float64()), 1_000_000.0).to_pylist()
    return pc.cast(column, pa.float64()).to_pylist()


def events_from_batch(batch: pa.RecordBatch | pa.Table, spec: CausalSpec) -> list[Event]:
    """Turn every row of ``batch`` into an :class:`Event`.

    A cause given as a single value (a string or a number) is one cause; a list gives several;
    null gives none. Ids and causes that are numbers become their text, as event ids are strings.

    Args:
        batch: The rows (a record batch or a table).
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
        elif not isinstance(cause, list | tuple):
            cause = (cause,)
        events.append(
            Event(name, dict(zip(data_names, values, strict=True)), cause, eid, source, stamp)
        )
    return events
