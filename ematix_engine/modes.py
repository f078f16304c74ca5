"""Load modes as data: one :class:`ModeDescription` per :class:`~ematix_engine.specs.LoadMode`.

Everything that differs between append, merge, SCD2 and replace is an attribute of the mode's
entry in :data:`MODES`: the columns ematix manages on the target, the options the declaration
must or may carry, the target's primary key, whether the batch is de-duplicated, and which
plan writes it. The declaration layer validates against this table, the write core builds DDL
and picks plans from it, and the Dagster layer reads the managed columns from it, so a new mode
is one new entry here (plus its plan module).

Example:
    >>> from ematix_engine.modes import MODES
    >>> from ematix_engine.specs import LoadMode
    >>> [c.name for c in MODES[LoadMode.SCD2].managed_columns]
    ['row_hash', 'valid_from', 'valid_to', 'is_current', 'is_deleted', '_loaded_at', '_batch_id']
    >>> MODES[LoadMode.MERGE].needs_keys
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ematix_engine.schema.types import Boolean, ColumnType, String, Text, TimestampTZ
from ematix_engine.specs import Deletes, LoadMode

if TYPE_CHECKING:
    from ematix_engine.specs import TargetSpec

__all__ = ["MODES", "ManagedColumn", "ModeDescription", "all_managed_names", "mode_of"]


@dataclass(frozen=True, slots=True)
class ManagedColumn:
    """A column ematix adds to a target and fills itself.

    Attributes:
        name: the column's name.
        type: its column type.
        nullable: whether it may hold NULL.
        per_batch: it holds one value for every row a single load inserts (``_loaded_at``,
            ``valid_from`` of a snapshot version, …), so a first load may add it after the rows.
    """

    name: str
    type: type[ColumnType]
    nullable: bool = False
    per_batch: bool = True


_LOAD_COLUMNS = (
    ManagedColumn("_loaded_at", TimestampTZ),
    ManagedColumn("_batch_id", Text),
)
# row_hash first: the other history columns hold one value per batch on a first load, and a
# table created by that load receives them after its rows (see write/in_process.py).
_HISTORY_COLUMNS = (
    ManagedColumn("row_hash", String[32], per_batch=False),  # MD5 hex (schema/hashing.py)
    ManagedColumn("valid_from", TimestampTZ),
    ManagedColumn("valid_to", TimestampTZ, nullable=True),
    ManagedColumn("is_current", Boolean),
    ManagedColumn("is_deleted", Boolean),
)


@dataclass(frozen=True, slots=True)
class ModeDescription:
    """What one load mode is, as data.

    Attributes:
        mode: the mode.
        managed_columns: columns ematix adds, in table order.
        needs_keys: the target must have business keys (``pk()`` or ``keys=``).
        deletes: the ``deletes=`` values the mode accepts.
        takes_ttl: ``ttl_seconds=`` applies.
        version_key_extra: columns that, after the business keys, make a row's primary key
            (SCD2: ``valid_from``); None when the target gets no primary key at all.
        dedupes: the batch is de-duplicated per key before it is written.
        update_heavy: loads update rows in place (storage options may favour that).
        plan: ``module:function`` of the plan that writes a prepared batch with SQL.
        first_load_copies: a first load into an empty target may copy the prepared rows
            straight in (``event_time`` SCD2 excepted: its timeline needs the plan).
        compares_in_process: later loads may compare in the preparing session and send only
            the changes (snapshot SCD2 without TTL, merge).
        only_inserts: a load never touches the rows already there (append), so prepared
            rows may be copied straight into a target that is not empty as well.
    """

    mode: LoadMode
    managed_columns: tuple[ManagedColumn, ...]
    needs_keys: bool
    deletes: frozenset[Deletes]
    takes_ttl: bool
    version_key_extra: tuple[str, ...] | None
    dedupes: bool
    update_heavy: bool
    plan: str
    first_load_copies: bool
    compares_in_process: bool
    only_inserts: bool = False

    @property
    def managed_names(self) -> tuple[str, ...]:
        """Default names of the managed columns, in table order."""
        return tuple(c.name for c in self.managed_columns)

    def managed_columns_of(self, target: TargetSpec) -> tuple[ManagedColumn, ...]:
        """The managed columns of ``target``, under the names it gives them.

        SCD2's validity columns may be renamed (``validity_columns=``); the others keep their
        names.
        """
        return tuple(replace(c, name=target.column_name(c.name)) for c in self.managed_columns)

    def primary_key(self, target: TargetSpec) -> tuple[str, ...]:
        """PRIMARY KEY of a newly created target (empty: no constraint)."""
        if self.version_key_extra is None:
            return ()
        return (*target.keys, *(target.column_name(c) for c in self.version_key_extra))

    def copies_straight_in(self, target: TargetSpec) -> bool:
        """Whether a first load can copy prepared rows straight into the empty target."""
        return self.first_load_copies and not (
            self.mode is LoadMode.SCD2 and target.event_timestamp_column is not None
        )

    def compares_off_target(self, target: TargetSpec) -> bool:
        """Whether later loads may be compared in-process (no event time, no TTL)."""
        return (
            self.compares_in_process
            and target.event_timestamp_column is None
            and target.ttl_seconds is None
        )

    def plan_function(self) -> Callable[[Any], Any]:
        """The plan: a function taking a ``LoadContext`` and returning its ``Counts``."""
        return _load_plan(self.plan)


@cache
def _load_plan(path: str) -> Callable[[Any], Any]:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


_PLANS = "ematix_engine.write.plans"

MODES: Mapping[LoadMode, ModeDescription] = MappingProxyType(
    {
        LoadMode.APPEND: ModeDescription(
            mode=LoadMode.APPEND,
            managed_columns=_LOAD_COLUMNS,
            needs_keys=False,
            deletes=frozenset({Deletes.IGNORE}),
            takes_ttl=False,
            version_key_extra=None,  # append keeps whatever the source has
            dedupes=False,
            update_heavy=False,
            plan=f"{_PLANS}.append:load_append",
            first_load_copies=True,
            compares_in_process=False,
            only_inserts=True,
        ),
        LoadMode.MERGE: ModeDescription(
            mode=LoadMode.MERGE,
            managed_columns=_LOAD_COLUMNS,
            needs_keys=True,
            deletes=frozenset({Deletes.IGNORE, Deletes.CLOSE}),
            takes_ttl=False,
            version_key_extra=(),
            dedupes=True,
            update_heavy=True,
            plan=f"{_PLANS}.merge:load_merge",
            first_load_copies=True,
            compares_in_process=True,
        ),
        LoadMode.SCD2: ModeDescription(
            mode=LoadMode.SCD2,
            managed_columns=_HISTORY_COLUMNS + _LOAD_COLUMNS,
            needs_keys=True,
            deletes=frozenset(Deletes),
            takes_ttl=True,
            version_key_extra=("valid_from",),
            dedupes=True,
            update_heavy=True,
            plan=f"{_PLANS}.scd2:load_scd2",
            first_load_copies=True,
            compares_in_process=True,
        ),
        LoadMode.REPLACE: ModeDescription(
            mode=LoadMode.REPLACE,
            managed_columns=_LOAD_COLUMNS,
            needs_keys=False,
            deletes=frozenset({Deletes.IGNORE}),
            takes_ttl=False,
            version_key_extra=None,
            dedupes=False,
            update_heavy=False,
            plan=f"{_PLANS}.replace:load_replace",
            first_load_copies=False,
            compares_in_process=False,
        ),
    }
)


def mode_of(target: TargetSpec) -> ModeDescription:
    """The description of ``target``'s mode."""
    return MODES[target.mode]


def all_managed_names() -> frozenset[str]:
    """Every column name some mode manages (a source column by such a name is not data)."""
    return frozenset(c.name for d in MODES.values() for c in d.managed_columns)
