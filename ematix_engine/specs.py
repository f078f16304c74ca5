"""Frozen records every layer passes around.

Declarations (``@ematix.table``, ``@ematix.pipeline``) become these specs once, at import time,
validated in ``__post_init__``. The batch runner, the CLI and the Dagster layer read them and
never look at the decorated Python objects again. Change a spec with ``dataclasses.replace``.

Specs are deeply immutable and hashable: sequences are tuples and mappings are
:class:`FrozenMapping`, so a spec can key a cache or a set. A pipeline's ``source`` is one of
the :data:`Source` union — a :class:`SqlSource` today; streams, change streams and DataFrames
join it as new members, and the write core takes rows from any of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from ematix_engine.errors import ConfigError, closest_match

if TYPE_CHECKING:
    from ematix_engine.partitions import Partitions
    from ematix_engine.schema.normalize import Normalizer
    from ematix_engine.schema.types import ColumnType

__all__ = [
    "ColumnSpec",
    "Deletes",
    "FrozenMapping",
    "LoadMode",
    "PipelineSpec",
    "RetryPolicy",
    "Source",
    "SqlSource",
    "TableSpec",
    "TargetSpec",
    "ValidityColumns",
]

_NAME = re.compile(r"\S")


class FrozenMapping(Mapping[str, str]):
    """A read-only, hashable mapping (a spec's ``tags``).

    Example:
        >>> tags = FrozenMapping({"team": "data"})
        >>> tags["team"], hash(tags) == hash(FrozenMapping(team="data"))
        ('data', True)
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | None = None, **items: str) -> None:
        self._data = dict(data or {}, **items)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


class LoadMode(StrEnum):
    """How a batch load writes into its target."""

    APPEND = "append"
    MERGE = "merge"
    SCD2 = "scd2"
    REPLACE = "replace"


class Deletes(StrEnum):
    """What happens to target keys that a full snapshot no longer contains."""

    IGNORE = "ignore"
    CLOSE = "close"
    NEW_RECORD = "new_record"


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnSpec:
    """One declared column.

    Attributes:
        name: column name in the database (any text; always quoted).
        type: the column type class, e.g. ``BigInt`` or ``String[256]``.
        nullable: ``True`` for ``T | None`` annotations.
        primary_key: part of the table's primary key (``pk()``).
        natural_key_group: name of the natural-key group (``natural_key(group)``), if any.
        normalizers: clean-up steps applied left to right.
    """

    name: str
    type: type[ColumnType]
    nullable: bool = False
    primary_key: bool = False
    natural_key_group: str | None = None
    normalizers: tuple[Normalizer, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not _NAME.search(self.name):
            raise ConfigError("a column name must not be empty or blank")


@dataclass(frozen=True, slots=True, kw_only=True)
class TableSpec:
    """A declared table.

    Attributes:
        schema: database schema (PostgreSQL/DuckDB schema, a folder for Delta; SQLite ignores it).
        name: table name.
        columns: declared columns in order.
        connection: default connection name or typed connection for this table.
        python_name: the decorated class's qualified name, for messages.
    """

    schema: str
    name: str
    columns: tuple[ColumnSpec, ...]
    connection: Any = None
    python_name: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ConfigError(
                    f"table {self.qualified_name}: column {column.name!r} declared twice"
                )
            seen.add(column.name)
        if not self.columns:
            raise ConfigError(f"table {self.qualified_name}: declares no columns")

    @property
    def qualified_name(self) -> str:
        """``schema.name`` for messages (not for SQL: SQL always quotes)."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Declared column names in order."""
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        """Columns marked ``pk()``."""
        return tuple(c.name for c in self.columns if c.primary_key)

    def natural_key(self, group: str | None = None) -> tuple[str, ...]:
        """Columns of a natural-key group (the first group declared when ``group`` is None)."""
        groups = [c.natural_key_group for c in self.columns if c.natural_key_group]
        if not groups:
            return ()
        wanted = group or groups[0]
        return tuple(c.name for c in self.columns if c.natural_key_group == wanted)

    def column(self, name: str) -> ColumnSpec:
        """Return the declared column ``name``.

        Raises:
            ConfigError: naming the column, with the closest declared name.
        """
        for column in self.columns:
            if column.name == name:
                return column
        hint = closest_match(name, self.column_names)
        raise ConfigError(
            f"table {self.qualified_name} has no column {name!r}"
            + (
                f"; did you mean {hint!r}?"
                if hint
                else f"; columns: {', '.join(self.column_names)}"
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retry with exponential backoff: delay = min(backoff * factor**(attempt-1), cap) ± jitter.

    Attributes:
        max_attempts: attempts in all, the first included (1 = no retry).
        backoff_seconds: delay before the second attempt.
        backoff_factor: growth of the delay per attempt.
        max_backoff_seconds: cap on the delay.
        jitter: fraction of the delay added or removed at random (0 = none).
    """

    max_attempts: int = 1
    backoff_seconds: float = 30.0
    backoff_factor: float = 2.0
    max_backoff_seconds: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry.max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ConfigError("retry backoff seconds must be >= 0")
        if self.backoff_factor < 1:
            raise ConfigError(f"retry.backoff_factor must be >= 1, got {self.backoff_factor}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"retry.jitter must be between 0 and 1, got {self.jitter}")

    @classmethod
    def from_value(cls, value: RetryPolicy | dict | None, pipeline: str) -> RetryPolicy:
        """Build from the decorator's ``retry=`` value (a dict or a policy).

        Raises:
            ConfigError: naming the pipeline and the unknown key.
        """
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if not isinstance(value, dict):
            raise ConfigError(
                f"pipeline {pipeline!r}: retry must be a dict, got {type(value).__name__}"
            )
        known = {f for f in cls.__dataclass_fields__}
        for key in value:
            if key not in known:
                hint = closest_match(key, known)
                raise ConfigError(
                    f"pipeline {pipeline!r}: unknown retry key {key!r}"
                    + (f"; did you mean {hint!r}?" if hint else "")
                )
        return cls(**value)

    def delay_seconds(self, attempt: int, random_fraction: float = 0.5) -> float:
        """Delay to wait after failed attempt ``attempt`` (1-based) before the next one.

        Args:
            attempt: the attempt that just failed.
            random_fraction: a number in [0, 1) that picks the jitter (0.5 = no jitter).
        """
        base = min(
            self.backoff_seconds * self.backoff_factor ** max(attempt - 1, 0),
            self.max_backoff_seconds,
        )
        return max(0.0, base * (1 + self.jitter * (2 * random_fraction - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidityColumns:
    """Names of the columns that say when an SCD2 version is valid.

    dlt calls them ``validity_column_names``, dbt ``snapshot_meta_column_names``.

    Attributes:
        valid_from: start of the version's validity (inclusive); with the keys, its identity.
        valid_to: end of its validity (exclusive); the ``current_valid_to`` sentinel (NULL by
            default) while current.
        is_current: TRUE on the key's current version.
        is_deleted: TRUE on a tombstone (``deletes="new_record"``).

    Example:
        >>> ValidityColumns(valid_from="start_at", valid_to="end_at").physical("valid_to")
        'end_at'
    """

    valid_from: str = "valid_from"
    valid_to: str = "valid_to"
    is_current: str = "is_current"
    is_deleted: str = "is_deleted"

    #: The logical names, which are also the defaults.
    LOGICAL: ClassVar[tuple[str, ...]] = ("valid_from", "valid_to", "is_current", "is_deleted")

    def physical(self, logical: str) -> str:
        """The column's name in the table: renamed validity columns, anything else as is."""
        return getattr(self, logical) if logical in self.LOGICAL else logical

    @property
    def renamed(self) -> bool:
        """Whether any column has a name other than its default."""
        return any(getattr(self, n) != n for n in self.LOGICAL)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """One target of a pipeline and how it is loaded.

    Attributes:
        table: the declared target table.
        mode: append, merge, scd2 or replace.
        keys: business key columns (merge/scd2); defaults to the table's primary key.
        compare_columns: columns whose change makes a new version (scd2) or an update (merge);
            defaults to every non-key, non-event-time column.
        event_timestamp_column: source column giving each row's event time.
        deletes: what to do with keys absent from a full snapshot.
        ttl_seconds: scd2 only: close current versions older than this that the batch lacks.
        retire_within: with ``deletes``: a key the snapshot lacks retires only when the
            snapshot holds rows with the same values in these columns (dlt's ``merge_key``):
            a batch of one region or day never retires another's keys.
        validity_columns: scd2 only: the names of the validity columns.
        current_valid_to: scd2 only: the ``valid_to`` a current version holds (a UTC
            instant such as 9999-12-31, dlt's ``active_record_timestamp``, dbt's
            ``dbt_valid_to_current``); None: NULL.
        connection: target connection (name or typed connection); defaults to the table's.
        asset_key: optional override of the Dagster asset key path.
    """

    table: TableSpec
    mode: LoadMode = LoadMode.APPEND
    keys: tuple[str, ...] = ()
    compare_columns: tuple[str, ...] = ()
    event_timestamp_column: str | None = None
    deletes: Deletes = Deletes.IGNORE
    ttl_seconds: int | None = None
    retire_within: tuple[str, ...] = ()
    validity_columns: ValidityColumns = ValidityColumns()
    current_valid_to: datetime | None = None
    connection: Any = None
    asset_key: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """Human name for messages: ``schema.table``."""
        return self.table.qualified_name

    def column_name(self, managed: str) -> str:
        """The name in the table of managed column ``managed`` (``valid_from``, …)."""
        return self.validity_columns.physical(managed)


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlSource:
    """Rows a SQL query returns: a batch pipeline's source.

    Attributes:
        query: callable taking the source connection and returning SQL (may use
            ``$watermark``).
        connection: name or typed connection the SQL runs on; None: the target's.
        incremental_column: source column whose maximum becomes the next watermark.
    """

    query: Callable[[Any], str]
    connection: Any = None
    incremental_column: str | None = None

    def render(self, connection: Any) -> str:
        """The SQL for ``connection`` (calls :attr:`query`)."""
        return self.query(connection)


#: What a pipeline reads: SQL today; a stream, a change stream and a DataFrame later.
Source: TypeAlias = SqlSource


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """A declared batch pipeline.

    Attributes:
        name: unique pipeline name (the function name unless given).
        targets: one or more targets (fan-out).
        source: where the rows come from (:data:`Source`).
        schedule: cron expression, or None for on-demand pipelines.
        depends_on: names of upstream pipelines.
        retry: the retry policy.
        description: docstring of the decorated function.
        module: module that declared the pipeline.
        source_file: file of the declaring function, for code references.
        source_line: first line of the declaring function.
        group: Dagster asset group (optional).
        owners: Dagster owners.
        tags: free-form tags (Dagster tags too), frozen.
        checks: user-declared data checks (mapped to asset checks by the Dagster layer).
        partitions: time windows or static values a run loads one of
            (:mod:`ematix_engine.partitions`); None: every run loads everything.
    """

    name: str
    targets: tuple[TargetSpec, ...]
    source: Source
    schedule: str | None = None
    depends_on: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    description: str = ""
    module: str = ""
    source_file: str = ""
    source_line: int = 0
    group: str | None = None
    owners: tuple[str, ...] = ()
    tags: FrozenMapping = field(default_factory=FrozenMapping)
    checks: tuple[Any, ...] = ()
    partitions: Partitions | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tags, FrozenMapping):
            object.__setattr__(self, "tags", FrozenMapping(self.tags))
        for name in ("targets", "depends_on", "owners", "checks"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def incremental_column(self) -> str | None:
        """The source's incremental column (SQL sources), if any."""
        return getattr(self.source, "incremental_column", None)

    @property
    def source_connection(self) -> Any:
        """The connection the source reads from; None: the target's."""
        return getattr(self.source, "connection", None)
