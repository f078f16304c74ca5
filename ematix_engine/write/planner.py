"""The one planner that picks how rows reach a target; ``preview()`` asks it too.

Three paths, chosen from where the rows are and from the target store's capability flags:

* **same database** — the rows are a query the target's own SQL session can run (a source on
  the same database, or a Delta table under the same root as a Delta target): a temporary view
  over it feeds the plan, nothing is copied.
* **in-process** — Arrow rows into a store with ``PREPARES_IN_PROCESS`` (PostgreSQL): DuckDB
  prepares them in-process, a first load copies them straight in, later loads compare there and
  send only what changes (:mod:`ematix_engine.write.in_process`).
* **staged** — Arrow rows into any other store: staged into a temporary table of the store's
  SQL session (Delta: its DuckDB compute session), then the mode's set-based plan.

Because a run takes exactly the :class:`WritePlan` this returns and a preview describes the
same object, the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ematix_engine.backends import backend_class, same_database
from ematix_engine.modes import mode_of
from ematix_engine.write.context import RAW, SOURCE

if TYPE_CHECKING:
    from ematix_engine.specs import TargetSpec

__all__ = ["WritePath", "WritePlan", "plan_write"]


class WritePath(StrEnum):
    """How rows reach a target."""

    SAME_DATABASE = "same database"
    IN_PROCESS = "in-process"
    STAGED = "staged"


@dataclass(frozen=True, slots=True, kw_only=True)
class WritePlan:
    """The planner's choice for one target.

    Attributes:
        target: the target.
        path: how the rows reach it.
        store: the target store's system name (postgres, duckdb, sqlite, delta).
        runs_sql: whether the store runs the plan's SQL itself (False: in a DuckDB compute
            session over its files, as for Delta).
    """

    target: TargetSpec
    path: WritePath
    store: str
    runs_sql: bool

    @property
    def same_database(self) -> bool:
        """Whether the rows never leave the target's database."""
        return self.path is WritePath.SAME_DATABASE

    def steps(self) -> tuple[str, ...]:
        """What the write will do, in order, for ``preview()``."""
        target, mode = self.target, mode_of(self.target)
        where = "" if self.runs_sql else " (in a DuckDB session over the Delta files)"
        if self.path is WritePath.SAME_DATABASE:
            stage = f"stage source into {RAW} (CREATE TEMP VIEW AS SELECT){where}"
        elif self.path is WritePath.IN_PROCESS:
            stage = f"stage source into {RAW} (Arrow batches into an in-memory DuckDB session)"
        else:
            stage = f"stage source into {RAW} (Arrow batches){where}"
        steps = [stage, "ensure_table (create / add columns)", *_validity_steps(target)]
        if self.path is not WritePath.IN_PROCESS:
            steps += [
                f"prepare {SOURCE}: normalize, cast, row_hash, dedupe",
                f"{target.mode.value} into {target.label}",
            ]
            if not self.runs_sql:
                steps.append(f"commit the difference to {target.label} in one Delta commit")
            return tuple(steps)
        steps.append(f"prepare {SOURCE} in DuckDB: normalize, cast, dedupe")
        if mode.copies_straight_in(target):
            steps.append(
                f"empty target: COPY the rows (hashed on the way) straight into {target.label}"
            )
        if mode.compares_off_target(target):
            steps.append(
                "otherwise: lock the target against writers, read its current keys and compare "
                "columns into DuckDB, compare there, send only the keys to close or delete and "
                "the new rows"
            )
        else:
            steps.append(f"otherwise: COPY {SOURCE} into a temp table, then {target.mode.value}")
        return tuple(steps)


def _validity_steps(target: TargetSpec) -> list[str]:
    """How an SCD2 target spells its history, when it differs from the defaults."""
    steps = []
    columns = target.validity_columns
    if columns.renamed:
        renamed = [
            f"{n} as {columns.physical(n)}" for n in columns.LOGICAL if columns.physical(n) != n
        ]
        steps.append(f"history columns: {', '.join(renamed)}")
    if target.current_valid_to is not None:
        steps.append(
            f"current versions hold {target.column_name('valid_to')} = "
            f"{target.current_valid_to.isoformat()} (refused if the table holds another marker)"
        )
    return steps


def plan_write(target: TargetSpec, target_connection: Any, *, rows_in: Any = None) -> WritePlan:
    """Choose the path for writing rows into ``target``.

    Args:
        target: the target.
        target_connection: its connection (name or typed connection).
        rows_in: the connection the rows can be queried on, when they are a query (a batch
            pipeline's SQL); None for rows that arrive as Arrow batches.

    Returns:
        The plan every write and every preview of this target follows.
    """
    store = backend_class(target_connection)
    if rows_in is not None and same_database(rows_in, target_connection):
        path = WritePath.SAME_DATABASE
    elif store.PREPARES_IN_PROCESS:
        path = WritePath.IN_PROCESS
    else:
        path = WritePath.STAGED
    return WritePlan(target=target, path=path, store=store.name, runs_sql=store.RUNS_SQL)
