"""Metadata sets: the standard ``dagster/…`` table keys and the ``ematix/…`` load facts.

Dagster 1.13 keeps ``TableMetadataSet`` and ``NamespacedMetadataSet`` in ``dagster._core``,
which ematix_dagster does not import. :class:`TableMetadata` writes exactly the keys
``TableMetadataSet`` reads (``dagster/row_count``, ``dagster/table_name``,
``dagster/column_schema``, ``dagster/column_lineage``, ``dagster/storage_kind``; a unit test
parses our output with Dagster's class), and :class:`EmatixMetadata` is the ``ematix``
namespace. Both are frozen records that splat into a metadata dict:
``MaterializeResult(metadata={**TableMetadata(...), **EmatixMetadata(...)})``. Each field's key
comes from :mod:`ematix_dagster.constants` (the one place that spells them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import dagster as dg

from ematix_dagster import constants as c
from ematix_engine import LoadMode, TargetSpec
from ematix_engine.types import Boolean, Text, TimestampTZ

__all__ = ["EmatixMetadata", "TableMetadata", "declared_table_schema", "table_schema_from"]


class _NamespacedMetadata(Mapping[str, Any]):
    """A frozen record whose non-None fields read as metadata entries.

    ``field_keys`` maps each field to its key, ``{namespace}/{field}``, taken from the constants.
    """

    __slots__ = ()
    namespace: ClassVar[str] = ""
    field_keys: ClassVar[Mapping[str, str]] = {}

    def _entries(self) -> dict[str, Any]:
        return {
            self.field_keys[f.name]: getattr(self, f.name)
            for f in fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not None
        }

    def __getitem__(self, key: str) -> Any:
        return self._entries()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())


@dataclass(frozen=True, slots=True, kw_only=True)
class TableMetadata(_NamespacedMetadata):
    """The standard table entries Dagster shows for an asset (namespace ``dagster``).

    Attributes:
        row_count: Rows in the table.
        table_name: ``schema.table`` as the database names it.
        column_schema: Column names and types.
        column_lineage: Source columns of each column, where sqlglot could derive them.
        storage_kind: The system that stores the table.
    """

    namespace: ClassVar[str] = c.DAGSTER_NAMESPACE
    field_keys: ClassVar[Mapping[str, str]] = {
        "row_count": c.DAGSTER_KEY_ROW_COUNT,
        "table_name": c.DAGSTER_KEY_TABLE_NAME,
        "column_schema": c.DAGSTER_KEY_COLUMN_SCHEMA,
        "column_lineage": c.DAGSTER_KEY_COLUMN_LINEAGE,
        "storage_kind": c.DAGSTER_KEY_STORAGE_KIND,
    }
    row_count: int | None = None
    table_name: str | None = None
    column_schema: dg.TableSchema | None = None
    column_lineage: dg.TableColumnLineage | None = None
    storage_kind: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmatixMetadata(_NamespacedMetadata):
    """What an ematix load did (namespace ``ematix``).

    Attributes:
        pipeline: Pipeline name.
        target: ``schema.table``.
        mode: Load mode.
        backend: Target system.
        key_columns: Business key columns, comma-separated.
        connection: Target connection name.
        schedule: The pipeline's cron expression.
        rows_inserted: Rows (or SCD2 versions) inserted.
        rows_updated: Rows updated in place.
        rows_unchanged: Source rows that changed nothing.
        rows_closed: SCD2 versions closed.
        rows_deleted: Rows deleted.
        watermark: Watermark after the load (incremental pipelines).
        duration_s: Seconds the load of this target took.
        run_id: The RunLog record's id (also the ``_batch_id`` of the written rows).
        attempt: Attempt number under the retry policy.
        current_versions: SCD2 targets: current versions (one per live key), the number
            ``dagster/row_count`` and the ``row_count_between`` check report.
        all_versions: SCD2 targets: every version in the table, closed ones included.
        full_refresh: The load rebuilt the target from the source (set only when it did).
    """

    namespace: ClassVar[str] = c.METADATA_NAMESPACE
    field_keys: ClassVar[Mapping[str, str]] = {
        "pipeline": c.META_KEY_PIPELINE,
        "target": c.META_KEY_TARGET,
        "mode": c.META_KEY_MODE,
        "backend": c.META_KEY_BACKEND,
        "key_columns": c.META_KEY_KEYS,
        "connection": c.META_KEY_CONNECTION,
        "schedule": c.META_KEY_SCHEDULE,
        "rows_inserted": c.META_KEY_ROWS_INSERTED,
        "rows_updated": c.META_KEY_ROWS_UPDATED,
        "rows_unchanged": c.META_KEY_ROWS_UNCHANGED,
        "rows_closed": c.META_KEY_ROWS_CLOSED,
        "rows_deleted": c.META_KEY_ROWS_DELETED,
        "watermark": c.META_KEY_WATERMARK,
        "duration_s": c.META_KEY_DURATION_S,
        "run_id": c.META_KEY_RUN_ID,
        "attempt": c.META_KEY_ATTEMPT,
        "current_versions": c.META_KEY_CURRENT_VERSIONS,
        "all_versions": c.META_KEY_ALL_VERSIONS,
        "full_refresh": c.META_KEY_FULL_REFRESH,
    }
    pipeline: str | None = None
    target: str | None = None
    mode: str | None = None
    backend: str | None = None
    key_columns: str | None = None
    connection: str | None = None
    schedule: str | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    rows_closed: int | None = None
    rows_deleted: int | None = None
    watermark: str | None = None
    duration_s: float | None = None
    run_id: str | None = None
    attempt: int | None = None
    current_versions: int | None = None
    all_versions: int | None = None
    full_refresh: bool | None = None


_MANAGED_TYPES: tuple[tuple[str, Any, bool, str], ...] = (
    ("valid_from", TimestampTZ, False, "start of the version's validity (inclusive)"),
    ("valid_to", TimestampTZ, True, "end of the version's validity (exclusive); {open} if current"),
    ("is_current", Boolean, False, "whether this is the key's current version"),
    ("row_hash", Text, False, "SHA-256 of the compare columns"),
    ("is_deleted", Boolean, False, "tombstone version of a deleted key"),
)


def declared_table_schema(target: TargetSpec, dialect: str) -> dg.TableSchema:
    """The target's columns as declared, plus the columns ematix manages.

    Args:
        target: The target.
        dialect: sqlglot dialect used to render the types (``duckdb``, ``postgres``, …).

    Returns:
        A ``TableSchema``: declared columns with their SQL types, nullability and keys, then
        the SCD2 history columns (SCD2 targets) and ``_loaded_at`` / ``_batch_id``.
    """
    keys = set(target.keys)
    columns = [
        dg.TableColumn(
            name=c.name,
            type=c.type.sql_type().sql(dialect),
            description="business key" if c.name in keys else None,
            constraints=dg.TableColumnConstraints(
                nullable=c.nullable,
                unique=c.name in keys and len(keys) == 1 and target.mode is not LoadMode.SCD2,
            ),
        )
        for c in target.table.columns
    ]
    sentinel = target.current_valid_to
    open_end = "NULL" if sentinel is None else sentinel.isoformat()
    managed = [
        (target.column_name(name), column_type, nullable, description.format(open=open_end))
        for name, column_type, nullable, description in _MANAGED_TYPES
        if target.mode is LoadMode.SCD2
    ]
    managed += [
        ("_loaded_at", TimestampTZ, False, "when ematix wrote the row"),
        ("_batch_id", Text, False, "id of the load that wrote the row"),
    ]
    for name, column_type, nullable, description in managed:
        columns.append(
            dg.TableColumn(
                name=name,
                type=column_type.sql_type().sql(dialect),
                description=description,
                constraints=dg.TableColumnConstraints(nullable=nullable),
            )
        )
    return dg.TableSchema(columns=columns)


def table_schema_from(declared: dg.TableSchema, actual: Mapping[str, str] | None) -> dg.TableSchema:
    """The declared schema with the database's real column types (and any extra columns).

    Args:
        declared: From :func:`declared_table_schema`.
        actual: ``{column: type}`` as the database reports it, or ``None`` if unknown.

    Returns:
        The schema to report on a materialization.
    """
    if not actual:
        return declared
    by_name = {c.name: c for c in declared.columns}
    columns = []
    for name, type_name in actual.items():
        known = by_name.get(name)
        columns.append(
            dg.TableColumn(
                name=name,
                type=type_name,
                description=known.description if known else None,
                constraints=known.constraints if known else None,
            )
        )
    return dg.TableSchema(columns=columns)
