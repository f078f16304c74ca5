"""Turn the raw rows of a write into the prepared ``_ematix_src`` table of the session.

1. **Raw rows** are in ``_ematix_raw`` (a view over a same-database query, or staged Arrow
   batches; see :mod:`ematix_engine.write.apply`).
2. **Columns** are matched to the declaration: a declared column the source lacks is NULL when
   nullable and an error otherwise; a source column the declaration lacks is carried along (and
   added to the target by ``ensure_table``).
3. **Prepared rows** in ``_ematix_src``: normalizers applied, values cast to the declared types,
   ``row_hash`` computed, ``valid_from`` set (SCD2), duplicates resolved or reported.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from ematix_engine.backends.base import SqlBackend
from ematix_engine.errors import DuplicateKeyError, SourceError
from ematix_engine.modes import all_managed_names, mode_of
from ematix_engine.schema.ddl import TableColumn
from ematix_engine.schema.types import ColumnType, TimestampTZ, column_type_from_arrow
from ematix_engine.specs import LoadMode, TargetSpec
from ematix_engine.write.context import BATCH, RAW, SOURCE, LoadContext
from ematix_engine.write.slices import SliceFilter
from ematix_engine.write.values import reject_bad_values, reject_nulls

__all__ = [
    "create_batch_table",
    "managed_columns",
    "prepare_source",
    "raw_schema",
    "resolve_columns",
]

_PRE = "_ematix_pre"


def create_batch_table(
    backend: SqlBackend,
    *,
    batch_id: str,
    batch_ts_value: object,
    watermark: str | None,
    watermark_type: type[ColumnType] | None,
    ttl_cutoff_value: object,
    loaded_at_value: object,
    slice_: SliceFilter | None = None,
    current_valid_to_value: object = None,
) -> None:
    """Create the one-row ``_ematix_batch`` table of batch constants (bound parameters).

    ``batch_ts`` is the time the load stands for (validity of SCD2 versions: now, or the
    run's ``as_of``); ``loaded_at`` the wall-clock time it ran (``_loaded_at``);
    ``current_valid_to`` the SCD2 target's sentinel for current versions (NULL if none). With
    ``slice_`` it also holds the partition's bounds (:data:`~ematix_engine.write.slices.
    SLICE_COLUMNS`), cast to the partition column's type.
    """
    q = backend.quote
    ts_type = backend.column_type_sql(TimestampTZ)
    wm_type = backend.column_type_sql(watermark_type) if watermark_type else "TEXT"
    columns = [
        f"{q('batch_id')} TEXT",
        f"{q('batch_ts')} {ts_type}",
        f"{q('watermark')} {wm_type}",
        f"{q('ttl_cutoff')} {ts_type}",
        f"{q('loaded_at')} {ts_type}",
        f"{q('current_valid_to')} {ts_type}",
    ]
    p = backend.param_placeholder
    markers = [p(0), p(1), f"CAST({p(2)} AS {wm_type})", p(3), p(4), f"CAST({p(5)} AS {ts_type})"]
    params: list[object] = [
        batch_id,
        batch_ts_value,
        watermark,
        ttl_cutoff_value,
        loaded_at_value,
        current_valid_to_value,
    ]
    if slice_ is not None:
        values = slice_.bound_values(backend)
        for name, column_type in slice_.bound_types().items():
            type_sql = backend.column_type_sql(column_type) if column_type else "TEXT"
            columns.append(f"{q(name)} {type_sql}")
            markers.append(f"CAST({p(len(params))} AS {type_sql})")
            params.append(values[name])
    backend.drop_temp(BATCH)
    backend.execute(f"CREATE TEMP TABLE {q(BATCH)} ({', '.join(columns)})")
    backend.execute(f"INSERT INTO {q(BATCH)} VALUES ({', '.join(markers)})", tuple(params))


def raw_schema(backend: SqlBackend) -> pa.Schema:
    """Arrow schema of ``_ematix_raw``."""
    return backend.result_schema(f"SELECT * FROM {backend.quote(RAW)}")


def resolve_columns(
    pipeline: str, target: TargetSpec, source_schema: pa.Schema
) -> tuple[tuple[TableColumn, ...], dict[str, str | None]]:
    """Match source columns to the declaration.

    Returns:
        The data columns the load writes, and for each the source column it reads (None = NULL).

    Raises:
        SourceError: a non-nullable declared column is missing from the source.
    """
    by_lower: dict[str, list[str]] = {}
    for name in source_schema.names:
        by_lower.setdefault(name.lower(), []).append(name)
    mapping: dict[str, str | None] = {}
    columns: list[TableColumn] = []
    used: set[str] = set()
    for declared in target.table.columns:
        if declared.name in source_schema.names:
            source_name: str | None = declared.name
        elif len(by_lower.get(declared.name.lower(), [])) == 1:
            source_name = by_lower[declared.name.lower()][0]
        else:
            source_name = None
        if source_name is None and not declared.nullable:
            raise SourceError(
                pipeline,
                f"the source query returns no column {declared.name!r}, which target "
                f"{target.label} declares NOT NULL (source columns: "
                f"{', '.join(source_schema.names) or 'none'}); add it to the SELECT or declare "
                f"the column `| None`",
            )
        mapping[declared.name] = source_name
        if source_name:
            used.add(source_name)
        columns.append(TableColumn(declared.name, declared.type, declared.nullable))
    # a source column named like a managed column is not data (the target's names included)
    managed = all_managed_names() | {c.name for c in managed_columns(target)}
    for field in source_schema:
        if field.name in used or field.name in managed:
            continue
        try:
            extra_type = column_type_from_arrow(field.type)
        except TypeError as error:
            raise SourceError(pipeline, f"column {field.name!r}: {error}") from None
        mapping[field.name] = field.name
        columns.append(TableColumn(field.name, extra_type, True))
    return tuple(columns), mapping


def _normalized(
    backend: SqlBackend, target: TargetSpec, column: TableColumn, source_name: str
) -> str:
    """SQL of a source column's value after the column's normalizers, before the cast."""
    type_sql = backend.column_type_sql(column.type)
    value: exp.Expression = exp.Column(
        this=exp.to_identifier(source_name, quoted=True), table=exp.to_identifier("r")
    )
    declared = next((c for c in target.table.columns if c.name == column.name), None)
    sql_type = exp.DataType.build(type_sql, dialect=backend.dialect)
    if declared is not None:
        for normalizer in declared.normalizers:
            value = normalizer.apply(value, sql_type)
    return value.sql(backend.dialect)


def prepare_source(
    ctx: LoadContext, mapping: dict[str, str | None], raw: pa.Schema | None = None
) -> None:
    """Build ``_ematix_src`` from ``_ematix_raw``: normalize, check, cast, dedupe, hash.

    Values a cast would change are refused first (:mod:`ematix_engine.write.values`).
    ``row_hash`` is computed here only where the plan compares hashes across many rows
    (event-time SCD2). Merge and snapshot SCD2 compare columns NULL-safely and hash just the
    versions they insert, so an unchanged row costs no hash.
    """
    backend, q, target = ctx.backend, ctx.q, ctx.target
    raw = raw if raw is not None else raw_schema(backend)
    values = {
        c.name: _normalized(backend, target, c, mapping[c.name])
        for c in ctx.columns
        if mapping[c.name] is not None
    }
    reject_bad_values(ctx, values, {n: raw.field(mapping[n]).type for n in values})
    selects = [
        (
            backend.cast_sql(values[c.name], c.type)
            if c.name in values
            else f"CAST(NULL AS {backend.column_type_sql(c.type)})"
        )
        + f" AS {q(c.name)}"
        for c in ctx.columns
    ]
    extra = ""
    if _eager_hash(target):
        extra += f", {ctx.row_hash_sql('x')} AS {q('row_hash')}"
    if target.mode is LoadMode.SCD2:
        if target.event_timestamp_column:
            ts_type = backend.column_type_sql(TimestampTZ)
            extra += (
                f", CAST(x.{q(target.event_timestamp_column)} AS {ts_type}) "
                f"AS {ctx.managed('valid_from')}"
            )
        else:
            extra += f", {ctx.const('batch_ts')} AS {ctx.managed('valid_from')}"
    ctx.run(f"DROP TABLE IF EXISTS {q(_PRE)}")
    ctx.run(
        f"CREATE TEMP TABLE {q(_PRE)} AS SELECT x.*{extra} FROM "
        f"(SELECT {', '.join(selects)} FROM {q(RAW)} AS r) AS x"
    )
    _resolve_duplicates(ctx)
    reject_nulls(ctx, list(values))
    _refuse_events_after_open_end(ctx)
    if target.keys and mode_of(target).dedupes and ctx.execute_writes:
        backend.index_for_joins(SOURCE, target.keys)
    ctx.analyze(SOURCE)


def _refuse_events_after_open_end(ctx: LoadContext) -> None:
    """Fail the load when an event starts at or after the target's ``current_valid_to``.

    Such a version would be current with an end before (or at) its start.
    """
    target = ctx.target
    event_time = target.event_timestamp_column
    if target.mode is not LoadMode.SCD2 or event_time is None or target.current_valid_to is None:
        return
    late = ctx.scalar(
        f"SELECT COUNT(*) FROM {ctx.q(SOURCE)} "
        f"WHERE {ctx.managed('valid_from')} >= {ctx.const('current_valid_to')}"
    )
    if late:
        raise SourceError(
            ctx.pipeline,
            f"{late} source row(s) have {event_time!r} at or after current_valid_to "
            f"{target.current_valid_to.isoformat()} of {target.label}; a current version would "
            f"end before it starts. Pick a later current_valid_to",
        )


def _eager_hash(target: TargetSpec) -> bool:
    """Whether ``_ematix_src`` carries ``row_hash`` (event-time SCD2 builds timelines on it)."""
    return target.mode is LoadMode.SCD2 and target.event_timestamp_column is not None


def _duplicate_hash_sql(ctx: LoadContext, alias: str) -> str:
    """Hash of every non-key column (but the event time): two rows differing anywhere conflict."""
    others = [n for n in ctx.non_key_columns if n != ctx.target.event_timestamp_column]
    return ctx.row_hash_sql(alias, others)


def _reject_null_keys(ctx: LoadContext, keys: list[str]) -> None:
    """Fail the load when a source row has no value in a key column.

    Such a row has no identity to merge or version on: it would otherwise fail on the target's
    primary key, or (where the target has none) never match and be lost.
    """
    q = ctx.q
    counts = ctx.rows(
        "SELECT "
        + ", ".join(f"SUM(CASE WHEN {q(k)} IS NULL THEN 1 ELSE 0 END)" for k in keys)
        + f" FROM {q(_PRE)}"
    )
    missing = {k: int(n) for k, n in zip(keys, counts[0] if counts else (), strict=False) if n}
    if missing:
        detail = ", ".join(f"{n} in {k!r}" for k, n in missing.items())
        event_time = ctx.target.event_timestamp_column
        what = "a NULL key column"
        if event_time in missing and ctx.target.mode is LoadMode.SCD2:
            what = f"a NULL key or event time (event_timestamp_column={event_time!r}) column"
        raise SourceError(ctx.pipeline, f"source rows with {what} ({detail})")


def _resolve_duplicates(ctx: LoadContext) -> None:
    """Drop exact duplicates, keep the newest event per key, report real conflicts.

    A cheap ``GROUP BY … HAVING COUNT(*) > 1`` runs first; the costlier conflict analysis and
    the de-duplicating copy only run when the batch really holds repeated keys.
    """
    q, target = ctx.q, ctx.target
    pre, src = q(_PRE), q(SOURCE)
    ctx.run(f"DROP TABLE IF EXISTS {src}")
    if not mode_of(target).dedupes:
        ctx.run(f"ALTER TABLE {pre} RENAME TO {src}")
        return
    keys = list(target.keys)
    newest_wins = target.mode is LoadMode.MERGE and target.event_timestamp_column is not None
    if target.mode is LoadMode.SCD2 and target.event_timestamp_column:
        slot = [*keys, target.column_name("valid_from")]
    else:
        slot = keys
    # An SCD2 event without an event time has no place on the timeline: refused like a key.
    _reject_null_keys(
        ctx, keys if len(slot) == len(keys) else [*keys, target.event_timestamp_column]
    )
    repeated = ctx.scalar(
        f"SELECT COUNT(*) FROM (SELECT 1 AS one FROM {pre} GROUP BY {ctx.cols(slot)} "
        f"HAVING COUNT(*) > 1) AS d"
    )
    if not repeated:
        ctx.run(f"ALTER TABLE {pre} RENAME TO {src}")
        return
    conflict_slot = [*keys, target.event_timestamp_column] if newest_wins else slot
    conflict = ctx.rows(
        f"SELECT {ctx.cols(conflict_slot)}, COUNT(DISTINCT {_duplicate_hash_sql(ctx, 'p')}) AS h "
        f"FROM {pre} AS p GROUP BY {ctx.cols(conflict_slot, 'p')} HAVING COUNT(*) > 1 "
        f"ORDER BY h DESC LIMIT 1"
    )
    if conflict and conflict[0][-1] > 1:
        key = dict(zip(conflict_slot, conflict[0][: len(conflict_slot)], strict=True))
        detail = "with the same event time" if len(conflict_slot) > len(keys) else ""
        raise DuplicateKeyError(ctx.pipeline, key, detail)
    order = f"{q(target.event_timestamp_column)} DESC NULLS LAST" if newest_wins else "1"
    names = [c.name for c in ctx.columns]
    if _eager_hash(target):
        names.append("row_hash")
    if target.mode is LoadMode.SCD2:
        names.append(target.column_name("valid_from"))
    ctx.run(
        f"CREATE TEMP TABLE {src} AS SELECT {ctx.cols(names)} FROM (SELECT p.*, ROW_NUMBER() "
        f"OVER (PARTITION BY {ctx.cols(slot)} ORDER BY {order}) AS _ematix_rn FROM {pre} AS p) "
        f"AS d WHERE _ematix_rn = 1"
    )
    ctx.run(f"DROP TABLE {pre}")


def managed_columns(target: TargetSpec) -> tuple[TableColumn, ...]:
    """Columns ematix adds to ``target`` (:data:`ematix_engine.modes.MODES`), as table columns."""
    return tuple(
        TableColumn(c.name, c.type, nullable=c.nullable)
        for c in mode_of(target).managed_columns_of(target)
    )
