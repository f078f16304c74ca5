"""The state one target load carries: backend, columns, batch constants, statement log.

Batch constants (``batch_id``, ``batch_ts``, the watermark, the TTL cut-off) live in a one-row
temporary table ``_ematix_batch`` written with bound parameters; every generated statement reads
them from there. Generated SQL therefore carries no values at all, and identifiers are always
quoted by sqlglot (``SqlBackend.quote``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ematix_engine.backends.base import SqlBackend
from ematix_engine.schema.ddl import TableColumn
from ematix_engine.schema.types import TimestampTZ
from ematix_engine.specs import LoadMode, TargetSpec
from ematix_engine.write.slices import SliceFilter, slice_condition

__all__ = ["BATCH", "CHANGES", "RAW", "SOURCE", "Counts", "LoadContext"]

log = logging.getLogger("ematix.batch")

RAW = "_ematix_raw"
SOURCE = "_ematix_src"
BATCH = "_ematix_batch"
CHANGES = "_ematix_chg"


@dataclass(slots=True, kw_only=True)
class LoadContext:
    """Everything a mode planner needs to write one target.

    Attributes:
        backend: the target session, inside the load transaction.
        pipeline: pipeline name (for messages).
        target: the target spec.
        columns: data columns the load writes (declared, then extra source columns).
        physical_columns: every column of the target table (data + managed columns).
        batch_id: this load's id (stored in ``_batch_id``).
        batch_ts: the time this load stands for (snapshot ``valid_from``, closes): now, or
            the run's ``as_of``.
        loaded_at: the wall-clock time it ran (``_loaded_at``).
        execute_writes: False for preview: statements are recorded, not run.
        target_empty: the target held no rows when the load began (fast paths apply).
        statements: every statement, in order (for preview and debugging).
        slice: the partition this write owns, if any (:mod:`ematix_engine.write.slices`).
    """

    backend: SqlBackend
    pipeline: str
    target: TargetSpec
    columns: tuple[TableColumn, ...]
    physical_columns: tuple[TableColumn, ...]
    batch_id: str
    batch_ts: datetime
    loaded_at: datetime
    execute_writes: bool = True
    target_empty: bool = False
    statements: list[str] = field(default_factory=list)
    slice: SliceFilter | None = None

    # ---------------------------------------------------------------- running SQL
    def run(self, sql: str) -> int:
        """Record and (unless previewing) execute ``sql``; return its row count."""
        self.statements.append(sql)
        if not self.execute_writes:
            return 0
        log.debug("%s: %s", self.pipeline, sql)
        return self.backend.execute(sql)

    def scalar(self, sql: str) -> int:
        """Run a counting query and return its single integer (0 in preview)."""
        if not self.execute_writes:
            return 0
        rows = self.backend.query(sql)
        return int(rows[0][0] or 0) if rows else 0

    def rows(self, sql: str) -> list[tuple]:
        """Run a query and return its rows (none in preview)."""
        if not self.execute_writes:
            return []
        return self.backend.query(sql)

    # ---------------------------------------------------------------- naming helpers
    def q(self, name: str) -> str:
        """Quote one identifier."""
        return self.backend.quote(name)

    def managed(self, name: str) -> str:
        """Quoted name in the target of managed column ``name`` (``validity_columns=``)."""
        return self.q(self.target.column_name(name))

    def open_end(self, end: str = "NULL") -> str:
        """The ``valid_to`` to store for ``end``, an SQL end time that is NULL while current.

        NULL stays NULL unless the target keeps a ``current_valid_to`` sentinel, which then
        takes its place (read from ``_ematix_batch``).
        """
        if self.target.current_valid_to is None:
            if end == "NULL":
                return f"CAST(NULL AS {self.backend.column_type_sql(TimestampTZ)})"
            return end
        sentinel = self.const("current_valid_to")
        return sentinel if end == "NULL" else f"COALESCE({end}, {sentinel})"

    def stored_end(self, valid_to: str) -> str:
        """A stored ``valid_to`` as an end time: NULL while current (the sentinel read back)."""
        if self.target.current_valid_to is None:
            return valid_to
        return f"NULLIF({valid_to}, {self.const('current_valid_to')})"

    @property
    def table(self) -> str:
        """Quoted target table."""
        return self.backend.table_sql(self.target.table.schema, self.target.table.name)

    def const(self, name: str) -> str:
        """Scalar subquery reading batch constant ``name`` from ``_ematix_batch``."""
        return f"(SELECT {self.q(name)} FROM {self.q(BATCH)})"

    def cols(self, names: Sequence[str], alias: str | None = None) -> str:
        """Comma-separated quoted columns, optionally qualified by ``alias``."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(f"{prefix}{self.q(n)}" for n in names)

    def match(self, left: str, right: str, names: Sequence[str] | None = None) -> str:
        """``left.k = right.k AND …`` over the keys (or ``names``)."""
        keys = names if names is not None else self.target.keys
        return " AND ".join(f"{left}.{self.q(k)} = {right}.{self.q(k)}" for k in keys)

    def distinct(self, left: str, right: str, names: Sequence[str]) -> str:
        """True when any of ``names`` differs between ``left`` and ``right`` (NULL-safe)."""
        op = self.backend.NULL_SAFE_DISTINCT
        if not names:
            return "FALSE"
        return (
            "(" + " OR ".join(f"{left}.{self.q(n)} {op} {right}.{self.q(n)}" for n in names) + ")"
        )

    def retirable(self, alias: str, source: str) -> str:
        """Condition: ``alias``'s row lies within what the batch covers (``retire_within``).

        TRUE without ``retire_within`` and without a partition; otherwise the source holds a
        row with the same values (NULL-safe) in those columns, so the batch may retire
        ``alias``'s key, and (in a partition's write) ``alias``'s row lies in the partition.
        """
        conditions = []
        if self.slice is not None:
            conditions.append(slice_condition(self.backend, alias, self.slice))
        scope = self.target.retire_within
        if scope:
            op = self.backend.NULL_SAFE_DISTINCT
            same = " AND ".join(f"NOT (p.{self.q(c)} {op} {alias}.{self.q(c)})" for c in scope)
            conditions.append(f"EXISTS (SELECT 1 FROM {source} AS p WHERE {same})")
        return " AND ".join(conditions) or "TRUE"

    def row_hash_sql(self, alias: str, names: Sequence[str] | None = None) -> str:
        """SQL computing ``row_hash`` over ``alias``'s compare columns (or ``names``)."""
        by_name = {c.name: c for c in self.columns}
        parts = []
        for name in self.compare_columns if names is None else names:
            column_type = by_name[name].type
            scale = column_type.params[1] if column_type.hash_family == "decimal" else 0
            parts.append((f"{alias}.{self.q(name)}", column_type.hash_family, scale))
        return self.backend.row_hash_sql(parts)

    def analyze(self, table: str) -> None:
        """Refresh planner statistics of a temp table the plan is about to join."""
        if self.execute_writes:
            self.backend.analyze(table)

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Names of the data columns."""
        return tuple(c.name for c in self.columns)

    @property
    def non_key_columns(self) -> tuple[str, ...]:
        """Data columns that are not keys."""
        keys = set(self.target.keys)
        return tuple(n for n in self.data_columns if n not in keys)

    @property
    def compare_columns(self) -> tuple[str, ...]:
        """Columns whose change counts.

        The declared ``compare_columns`` when given. Otherwise, for SCD2, every *declared*
        non-key column except the event time: a column the source adds later is carried along
        but does not re-version history. For merge, every non-key column, so a new column gets
        filled in.
        """
        if self.target.compare_columns:
            return self.target.compare_columns
        candidates = self.non_key_columns
        if self.target.mode is LoadMode.SCD2:
            declared = set(self.target.table.column_names)
            candidates = tuple(n for n in candidates if n in declared)
        return tuple(n for n in candidates if n != self.target.event_timestamp_column)


@dataclass(slots=True)
class Counts:
    """Row counts a mode planner reports."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    deleted: int = 0
