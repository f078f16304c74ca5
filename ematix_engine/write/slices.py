"""The slice of a target one write owns: a partition's rows, replaced or re-merged as a unit.

A :class:`SliceFilter` is a column and either a window ``[start, end)`` or one value. Its bounds
become columns of the one-row batch-constants table ``_ematix_batch`` (``partition_start``,
``partition_end``, ``partition_key``), written with bound parameters and typed as the column,
so the generated SQL that filters on them (:func:`slice_condition`) carries no values.

The write core uses it so that re-running a partition is idempotent:

* append and replace: the slice's target rows are deleted, then the batch is inserted, in the
  one transaction (or Delta commit) of the write;
* merge and SCD2: the batch is merged as usual, and with ``deletes=`` a key the batch lacks is
  retired only when its row lies inside the slice (:meth:`LoadContext.retirable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ematix_engine.backends.base import SqlBackend
    from ematix_engine.schema.types import ColumnType

__all__ = ["SLICE_COLUMNS", "SliceFilter", "bound_text", "is_time_type", "slice_condition"]

#: Batch-constant columns holding the slice's bounds.
SLICE_COLUMNS = ("partition_start", "partition_end", "partition_key")

_TIME_FAMILIES = frozenset({"date", "timestamp", "timestamptz"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceFilter:
    """The rows of a target that one write replaces (append, replace) or retires within.

    Attributes:
        column: the target column the slice is cut on.
        column_type: that column's declared type (bounds are cast to it).
        key: the partition key (stored as ``partition_key`` for a window).
        start: first instant of a window (aware); None for a value slice.
        end: first instant after a window (exclusive); None for a value slice.
        value: the column value of a value slice (text, cast to the column's type).
    """

    column: str
    column_type: type[ColumnType]
    key: str
    start: datetime | None = None
    end: datetime | None = None
    value: str | None = None

    @property
    def is_window(self) -> bool:
        """Whether the slice is a window (else one value)."""
        return self.start is not None

    def bound_types(self) -> dict[str, type[ColumnType] | None]:
        """Type of each :data:`SLICE_COLUMNS` column (None: text)."""
        return {
            "partition_start": self.column_type,
            "partition_end": self.column_type,
            "partition_key": None if self.is_window else self.column_type,
        }

    def bound_values(self, backend: SqlBackend) -> dict[str, str | None]:
        """Each :data:`SLICE_COLUMNS` column's value as text for ``backend`` to cast."""
        if not self.is_window:
            return {"partition_start": None, "partition_end": None, "partition_key": self.value}
        assert self.start is not None and self.end is not None
        return {
            "partition_start": bound_text(backend, self.column_type, self.start),
            "partition_end": bound_text(backend, self.column_type, self.end),
            "partition_key": self.key,
        }


def is_time_type(column_type: type[ColumnType]) -> bool:
    """Whether a time window can be cut on a column of this type."""
    return column_type.hash_family in _TIME_FAMILIES


def bound_text(backend: SqlBackend, column_type: type[ColumnType], moment: datetime) -> str:
    """``moment`` as text that ``CAST(... AS <column type>)`` reads back on ``backend``.

    A date column gets the UTC date, a timestamp without time zone the UTC wall clock, a
    timestamp with time zone the instant with its offset (or, where timestamps are stored as
    text, the UTC wall clock in the stored format).
    """
    utc = moment.astimezone(UTC)
    family = column_type.hash_family
    if family == "date":
        return utc.date().isoformat()
    if backend.TIMESTAMPS_AS_TEXT:
        return str(backend.timestamp_param(utc.replace(tzinfo=None)))
    if family == "timestamp":
        return utc.replace(tzinfo=None).isoformat(sep=" ")
    return utc.isoformat(sep=" ")


def slice_condition(backend: SqlBackend, alias: str, slice_: SliceFilter) -> str:
    """SQL condition: ``alias``'s row lies in the slice (reads ``_ematix_batch``)."""
    from ematix_engine.write.context import BATCH

    q = backend.quote
    column = f"{alias}.{q(slice_.column)}"

    def const(name: str) -> str:
        return f"(SELECT {q(name)} FROM {q(BATCH)})"

    if slice_.is_window:
        return f"({column} >= {const('partition_start')} AND {column} < {const('partition_end')})"
    return f"({column} = {const('partition_key')})"
