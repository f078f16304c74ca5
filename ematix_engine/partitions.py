"""Partitions of a batch pipeline: time windows on a column, or a static list of values.

A pipeline declared with ``partitions=`` loads one *slice* per run: ``ematix.daily("order_date",
start="2024-01-01")`` cuts time into UTC days ``[start, end)``; ``ematix.hourly`` and
``ematix.monthly`` into hours and months; ``ematix.static("region", ["eu", "us"])`` into one
value each. Keys are spelled as Dagster spells them (``2024-01-02``, ``2024-01-02-13:00``,
``2024-01-01`` for a month), so a key means the same to ``ematix run --partition`` and to a
Dagster partition.

A run receives a :class:`Partition`. Its SQL may use ``$partition_start`` / ``$partition_end``
(time windows) and ``$partition_key`` as bound values; without them the rows are filtered on
the declared column. A partition's load is idempotent: append and replace targets lose that
slice's rows before the new ones go in (same transaction), merge and SCD2 targets re-merge it
and retire absent keys only within it. A partitioned run neither reads nor moves the
pipeline's watermark.

Example:
    >>> from ematix_engine.partitions import daily
    >>> days = daily("order_date", start="2024-01-01")
    >>> part = days.partition("2024-01-02")
    >>> part.key, part.start.isoformat(), part.end.isoformat()
    ('2024-01-02', '2024-01-02T00:00:00+00:00', '2024-01-03T00:00:00+00:00')
    >>> days.partition("2024-01-02..2024-01-04").end.date().isoformat()
    '2024-01-05'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from ematix_engine.errors import ConfigError

__all__ = [
    "Cadence",
    "Partition",
    "Partitions",
    "StaticPartitions",
    "TimeWindowPartitions",
    "daily",
    "hourly",
    "monthly",
    "static",
]

#: Separates the first and last key of a range (``2024-01-01..2024-01-07``).
RANGE = ".."


class Cadence(StrEnum):
    """The length of one time window."""

    HOURLY = "hourly"
    DAILY = "daily"
    MONTHLY = "monthly"


#: Key format per cadence: Dagster's defaults for its hourly/daily/monthly definitions.
_FORMATS = {
    Cadence.HOURLY: "%Y-%m-%d-%H:%M",
    Cadence.DAILY: "%Y-%m-%d",
    Cadence.MONTHLY: "%Y-%m-%d",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """The slice one run loads.

    Attributes:
        key: the partition key (``first..last`` for a range of time windows).
        column: the declared column the slice is cut on.
        start: first instant of the window (aware, UTC); None for a static partition.
        end: first instant after the window (exclusive); None for a static partition.
        value: the static value; None for a time window.
    """

    key: str
    column: str
    start: datetime | None = None
    end: datetime | None = None
    value: str | None = None

    @property
    def is_window(self) -> bool:
        """Whether this is a time window ``[start, end)`` (else one static value)."""
        return self.start is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeWindowPartitions:
    """Hourly, daily or monthly UTC windows on a date or timestamp column.

    Attributes:
        column: the target column the windows are cut on.
        cadence: hourly, daily or monthly.
        start: the first window's start (aware, UTC).
        end: no window starts at or after this (None: up to now).
    """

    column: str
    cadence: Cadence
    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        if not self.column:
            raise ConfigError("partitions: the column must not be empty")
        if self.start != self._floor(self.start):
            raise ConfigError(
                f"partitions: {self.cadence.value} windows on {self.column!r} must start on a "
                f"window boundary; {self.start.isoformat()} is not one"
            )
        if self.end is not None and self.end <= self.start:
            raise ConfigError(f"partitions on {self.column!r}: end must be after start")

    @property
    def key_format(self) -> str:
        """The ``strftime`` format of this cadence's keys."""
        return _FORMATS[self.cadence]

    def _floor(self, moment: datetime) -> datetime:
        moment = moment.astimezone(UTC)
        if self.cadence is Cadence.HOURLY:
            return moment.replace(minute=0, second=0, microsecond=0)
        if self.cadence is Cadence.DAILY:
            return moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    def _next(self, moment: datetime) -> datetime:
        if self.cadence is Cadence.HOURLY:
            return moment + timedelta(hours=1)
        if self.cadence is Cadence.DAILY:
            return moment + timedelta(days=1)
        year, month = divmod(moment.month, 12)
        return moment.replace(year=moment.year + year, month=month + 1)

    def _window_start(self, key: str, pipeline: str) -> datetime:
        try:
            moment = datetime.strptime(key, self.key_format).replace(tzinfo=UTC)
        except ValueError:
            moment = None
        if (
            moment is None
            or moment != self._floor(moment)
            or moment.strftime(self.key_format) != key
        ):
            raise ConfigError(
                f"pipeline {pipeline!r}: partition key {key!r} is not a {self.cadence.value} "
                f"key (format {self.key_format!r}, e.g. "
                f"{self.start.strftime(self.key_format)!r})"
            )
        if moment < self.start or (self.end is not None and moment >= self.end):
            raise ConfigError(
                f"pipeline {pipeline!r}: partition {key!r} lies outside the declared windows "
                f"(from {self.start.strftime(self.key_format)!r}"
                + (f" to before {self.end.strftime(self.key_format)!r})" if self.end else ")")
            )
        return moment

    def partition(self, key: str, pipeline: str = "") -> Partition:
        """The window of ``key``, or of the range ``first..last`` (both included).

        Raises:
            ConfigError: the key is malformed or outside the declared windows.
        """
        first, _, last = key.partition(RANGE)
        start = self._window_start(first.strip(), pipeline)
        last_start = self._window_start(last.strip(), pipeline) if last else start
        if last_start < start:
            raise ConfigError(
                f"pipeline {pipeline!r}: partition range {key!r} ends before it starts"
            )
        label = first.strip() if last_start == start else f"{first.strip()}{RANGE}{last.strip()}"
        return Partition(key=label, column=self.column, start=start, end=self._next(last_start))

    def keys(self, until: datetime | None = None) -> list[str]:
        """Keys of every complete window up to ``until`` (default: now), oldest first."""
        limit = until or datetime.now(UTC)
        if self.end is not None:
            limit = min(limit, self.end)
        keys, moment = [], self.start
        while self._next(moment) <= limit:
            keys.append(moment.strftime(self.key_format))
            moment = self._next(moment)
        return keys


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticPartitions:
    """One partition per listed value of a column.

    Attributes:
        column: the target column holding the value.
        values: the partition keys, which are the column's values (as text).
    """

    column: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.column:
            raise ConfigError("partitions: the column must not be empty")
        if not self.values:
            raise ConfigError(f"static partitions on {self.column!r}: list at least one value")
        for value in self.values:
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"static partitions on {self.column!r}: values must be non-empty strings, "
                    f"got {value!r}"
                )
        seen = {v for v in self.values if self.values.count(v) > 1}
        if seen:
            raise ConfigError(
                f"static partitions on {self.column!r}: {sorted(seen)[0]!r} is listed twice"
            )

    def partition(self, key: str, pipeline: str = "") -> Partition:
        """The partition of one value.

        Raises:
            ConfigError: the key is not a declared value (ranges are for time windows).
        """
        if RANGE in key and key not in self.values:
            raise ConfigError(
                f"pipeline {pipeline!r}: static partitions load one value per run; {key!r} is "
                f"a range (run each of {', '.join(self.values)} on its own)"
            )
        if key not in self.values:
            from ematix_engine.errors import closest_match

            hint = closest_match(key, self.values)
            raise ConfigError(
                f"pipeline {pipeline!r}: {key!r} is not one of the static partitions of "
                f"{self.column!r} ({', '.join(self.values)})"
                + (f"; did you mean {hint!r}?" if hint else "")
            )
        return Partition(key=key, column=self.column, value=key)

    def keys(self, until: datetime | None = None) -> list[str]:
        """The declared values, in order."""
        return list(self.values)


#: What ``partitions=`` takes.
Partitions: TypeAlias = TimeWindowPartitions | StaticPartitions


def _start(column: str, start: str | datetime, cadence: Cadence) -> datetime:
    if isinstance(start, datetime):
        moment = start
    else:
        try:
            moment = datetime.fromisoformat(str(start))
        except ValueError:
            raise ConfigError(
                f"{cadence.value} partitions on {column!r}: start {start!r} is not an ISO date "
                f"or timestamp (e.g. '2024-01-01')"
            ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _windows(
    cadence: Cadence, column: str, start: str | datetime, end: str | datetime | None
) -> TimeWindowPartitions:
    return TimeWindowPartitions(
        column=column,
        cadence=cadence,
        start=_start(column, start, cadence),
        end=_start(column, end, cadence) if end is not None else None,
    )


def hourly(
    column: str, *, start: str | datetime, end: str | datetime | None = None
) -> TimeWindowPartitions:
    """Hourly UTC windows on a timestamp column (keys ``2024-01-02-13:00``).

    Args:
        column: the target column (timestamp) each window filters on.
        start: the first hour (ISO text or datetime; naive means UTC).
        end: no window starts at or after this (default: open-ended).

    Returns:
        A :class:`TimeWindowPartitions` for ``@ematix.pipeline(partitions=...)``.
    """
    return _windows(Cadence.HOURLY, column, start, end)


def daily(
    column: str, *, start: str | datetime, end: str | datetime | None = None
) -> TimeWindowPartitions:
    """Daily UTC windows on a date or timestamp column (keys ``2024-01-02``).

    Args:
        column: the target column (date or timestamp) each window filters on.
        start: the first day (ISO text or datetime; naive means UTC).
        end: no window starts at or after this (default: open-ended).

    Returns:
        A :class:`TimeWindowPartitions` for ``@ematix.pipeline(partitions=...)``.
    """
    return _windows(Cadence.DAILY, column, start, end)


def monthly(
    column: str, *, start: str | datetime, end: str | datetime | None = None
) -> TimeWindowPartitions:
    """Monthly UTC windows on a date or timestamp column (keys ``2024-01-01``).

    Args:
        column: the target column (date or timestamp) each window filters on.
        start: the first month's first day (ISO text or datetime; naive means UTC).
        end: no window starts at or after this (default: open-ended).

    Returns:
        A :class:`TimeWindowPartitions` for ``@ematix.pipeline(partitions=...)``.
    """
    return _windows(Cadence.MONTHLY, column, start, end)


def static(column: str, values: list[str] | tuple[str, ...]) -> StaticPartitions:
    """One partition per value of ``column`` (keys are the values).

    Args:
        column: the target column whose value selects the slice.
        values: the values, non-empty and unique (text; compared after a cast to the
            column's type).

    Returns:
        A :class:`StaticPartitions` for ``@ematix.pipeline(partitions=...)``.
    """
    if isinstance(values, str):
        raise ConfigError(f"static partitions on {column!r}: values must be a list, not a string")
    return StaticPartitions(column=column, values=tuple(values))
