"""Turn the pipeline's source query into the prepared ``_ematix_src`` table in the target.

1. **Raw rows** land in ``_ematix_raw``: on the same database with ``CREATE TEMP TABLE … AS``
   over the user's SQL; across databases by streaming Arrow batches from the source backend into
   a staged temp table (PostgreSQL: ``COPY``).
2. **Columns** are matched to the declaration: a declared column the source lacks is NULL when
   nullable and an error otherwise; a source column the declaration lacks is carried along (and
   added to the target by ``ensure_table``).
3. **Prepared rows** in ``_ematix_src``: normalizers applied, values cast to the declared types,
   ``row_hash`` computed, ``valid_from`` set (SCD2), duplicates resolved or reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
from sqlglot import exp

from ematix_engine.backends.base import SqlBackend
from ematix_engine.batch.context import BATCH, RAW, SOURCE, LoadContext
from ematix_engine.batch.progress import ProgressReporter
from ematix_engine.errors import DuplicateKeyError, SourceError
from ematix_engine.schema.ddl import TableColumn
from ematix_engine.schema.types import ColumnType, TimestampTZ, column_type_from_arrow
from ematix_engine.specs import LoadMode, TargetSpec

__all__ = [
    "create_batch_table",
    "infer_incremental_column",
    "prepare_source",
    "resolve_columns",
    "stage_cross_database",
    "stage_same_database",
    "substitute_watermark",
]

_WATERMARK = re.compile(r"\$watermark\b")
_PRE = "_ematix_pre"


_COMPARED = re.compile(r'([A-Za-z_][\w$]*|"(?:[^"]|"")+")\s*>=?\s*\$watermark\b')


def infer_incremental_column(pipeline: str, target: TargetSpec, sql: str) -> str | None:
    """The incremental column of a pipeline whose SQL uses ``$watermark``.

    The declared ``incremental_column`` wins; otherwise the column compared in
    ``<column> > $watermark`` is used when the target declares it.

    Raises:
        ConfigError: the SQL uses ``$watermark`` and no column can be determined.
    """
    from ematix_engine.errors import ConfigError

    if not _WATERMARK.search(sql):
        return None
    if target.deletes.value != "ignore":
        raise ConfigError(
            f"pipeline {pipeline!r}: its SQL uses $watermark (an incremental load) but "
            f"deletes={target.deletes.value!r} on {target.label} treats every load as a full "
            f"snapshot; drop one of the two"
        )
    match = _COMPARED.search(sql)
    if match:
        name = match.group(1)
        name = name[1:-1].replace('""', '"') if name.startswith('"') else name
        declared = {c.lower(): c for c in target.table.column_names}
        if name in target.table.column_names:
            return name
        if name.lower() in declared:
            return declared[name.lower()]
    raise ConfigError(
        f"pipeline {pipeline!r}: its SQL uses $watermark but no incremental_column is set and "
        f"none could be inferred from '<column> > $watermark'; pass incremental_column=... "
        f"naming a column of {target.label}"
    )


def substitute_watermark(sql: str, replacement: str) -> str:
    """Replace every ``$watermark`` in the user's SQL with ``replacement``."""
    return _WATERMARK.sub(lambda _: replacement, sql)


def create_batch_table(
    backend: SqlBackend,
    *,
    batch_id: str,
    batch_ts_value: object,
    watermark: str | None,
    watermark_type: type[ColumnType] | None,
    ttl_cutoff_value: object,
) -> None:
    """Create the one-row ``_ematix_batch`` table of batch constants (bound parameters)."""
    q = backend.quote
    ts_type = backend.column_type_sql(TimestampTZ)
    wm_type = backend.column_type_sql(watermark_type) if watermark_type else "TEXT"
    backend.drop_temp(BATCH)
    backend.execute(
        f"CREATE TEMP TABLE {q(BATCH)} ({q('batch_id')} TEXT, {q('batch_ts')} {ts_type}, "
        f"{q('watermark')} {wm_type}, {q('ttl_cutoff')} {ts_type})"
    )
    p = backend.param_placeholder
    backend.execute(
        f"INSERT INTO {q(BATCH)} VALUES ({p(0)}, {p(1)}, CAST({p(2)} AS {wm_type}), {p(3)})",
        (batch_id, batch_ts_value, watermark, ttl_cutoff_value),
    )


def _filtered_sql(
    user_sql: str,
    backend: SqlBackend,
    incremental_column: str | None,
    uses_watermark: bool,
    watermark_sql: str,
) -> str:
    body = substitute_watermark(user_sql, watermark_sql)
    select = f"SELECT * FROM ({body}) AS s"
    if incremental_column and not uses_watermark:
        select += f" WHERE s.{backend.quote(incremental_column)} > {watermark_sql}"
    return select


def stage_same_database(backend: SqlBackend, user_sql: str, incremental_column: str | None) -> str:
    """Expose the user's SQL as the temporary view ``_ematix_raw``; return the SQL run.

    A view, not a table: the preparing step reads it exactly once, so the source rows are
    never written twice.
    """
    uses_watermark = bool(_WATERMARK.search(user_sql))
    watermark_sql = f"(SELECT {backend.quote('watermark')} FROM {backend.quote(BATCH)})"
    select = _filtered_sql(user_sql, backend, incremental_column, uses_watermark, watermark_sql)
    statement = f"CREATE TEMP VIEW {backend.quote(RAW)} AS {select}"
    backend.execute(statement)
    # Some databases (SQLite) accept a view over a missing table; surface it here, as a
    # source error, rather than at first use.
    backend.query(f"SELECT * FROM {backend.quote(RAW)} LIMIT 0")
    return statement


def stage_cross_database(
    source: SqlBackend,
    target: SqlBackend,
    user_sql: str,
    incremental_column: str | None,
    watermark_value: str | None,
    batch_size: int,
    watermark_type: type[ColumnType] | None = None,
    progress: ProgressReporter | None = None,
) -> int:
    """Stream the user's SQL from ``source`` into ``_ematix_raw`` on ``target``; return rows."""
    uses_watermark = bool(_WATERMARK.search(user_sql))
    params: list[object] = []
    placeholder = source.source_placeholder()
    if watermark_type is not None:
        placeholder = f"CAST({placeholder} AS {source.column_type_sql(watermark_type)})"
    needs_param = uses_watermark or incremental_column is not None
    if needs_param and source.source_placeholder() == "%s":
        user_sql = source.escape_user_sql(user_sql)
    select = _filtered_sql(user_sql, source, incremental_column, uses_watermark, placeholder)
    if needs_param:
        occurrences = len(_WATERMARK.findall(user_sql)) if uses_watermark else 1
        params = source.watermark_params(watermark_value, occurrences)
    reader = source.read_arrow(select, params or None, batch_size=batch_size)
    if progress is not None:
        reader = progress.counting(reader)
    target.drop_temp(RAW)
    staged = target.stage_arrow(RAW, reader)
    target.analyze(RAW)
    return staged


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
    managed = {
        "_loaded_at",
        "_batch_id",
        "valid_from",
        "valid_to",
        "is_current",
        "row_hash",
        "is_deleted",
    }
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


def _source_expression(
    backend: SqlBackend, target: TargetSpec, column: TableColumn, source_name: str | None
) -> str:
    type_sql = backend.column_type_sql(column.type)
    if source_name is None:
        return f"CAST(NULL AS {type_sql})"
    value: exp.Expression = exp.Column(
        this=exp.to_identifier(source_name, quoted=True), table=exp.to_identifier("r")
    )
    declared = next((c for c in target.table.columns if c.name == column.name), None)
    sql_type = exp.DataType.build(type_sql, dialect=backend.dialect)
    if declared is not None:
        for normalizer in declared.normalizers:
            value = normalizer.apply(value, sql_type)
    if backend.dialect == "sqlite" and column.type.hash_family in ("timestamp", "timestamptz"):
        # SQLite keeps timestamps as text; bring every spelling to the canonical form.
        return f"ematix_timestamp(CAST({value.sql(backend.dialect)} AS TEXT))"
    if backend.dialect == "postgres" and column.type.hash_family == "bool":
        # PostgreSQL has no bigint/double → boolean cast; staged 0/1 (SQLite, MySQL) go via text.
        return f"CAST(CAST({value.sql(backend.dialect)} AS TEXT) AS {type_sql})"
    return f"CAST({value.sql(backend.dialect)} AS {type_sql})"


def prepare_source(ctx: LoadContext, mapping: dict[str, str | None]) -> None:
    """Build ``_ematix_src`` from ``_ematix_raw``: normalize, cast, dedupe (hash when needed).

    ``row_hash`` is computed here only where the plan compares hashes across many rows
    (event-time SCD2). Merge and snapshot SCD2 compare columns NULL-safely and hash just the
    versions they insert, so an unchanged row costs no SHA-256.
    """
    backend, q, target = ctx.backend, ctx.q, ctx.target
    selects = [
        f"{_source_expression(backend, target, c, mapping[c.name])} AS {q(c.name)}"
        for c in ctx.columns
    ]
    extra = ""
    if _eager_hash(target):
        extra += f", {ctx.row_hash_sql('x')} AS {q('row_hash')}"
    if target.mode is LoadMode.SCD2:
        if target.event_timestamp_column:
            ts_type = backend.column_type_sql(TimestampTZ)
            extra += (
                f", CAST(x.{q(target.event_timestamp_column)} AS {ts_type}) AS {q('valid_from')}"
            )
        else:
            extra += f", {ctx.const('batch_ts')} AS {q('valid_from')}"
    ctx.run(f"DROP TABLE IF EXISTS {q(_PRE)}")
    ctx.run(
        f"CREATE TEMP TABLE {q(_PRE)} AS SELECT x.*{extra} FROM "
        f"(SELECT {', '.join(selects)} FROM {q(RAW)} AS r) AS x"
    )
    _resolve_duplicates(ctx)
    ctx.analyze(SOURCE)


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
        raise SourceError(ctx.pipeline, f"source rows with a NULL key column ({detail})")


def _resolve_duplicates(ctx: LoadContext) -> None:
    """Drop exact duplicates, keep the newest event per key, report real conflicts.

    A cheap ``GROUP BY … HAVING COUNT(*) > 1`` runs first; the costlier conflict analysis and
    the de-duplicating copy only run when the batch really holds repeated keys.
    """
    q, target = ctx.q, ctx.target
    pre, src = q(_PRE), q(SOURCE)
    ctx.run(f"DROP TABLE IF EXISTS {src}")
    if target.mode not in (LoadMode.MERGE, LoadMode.SCD2):
        ctx.run(f"ALTER TABLE {pre} RENAME TO {src}")
        return
    keys = list(target.keys)
    newest_wins = target.mode is LoadMode.MERGE and target.event_timestamp_column is not None
    if target.mode is LoadMode.SCD2 and target.event_timestamp_column:
        slot = [*keys, "valid_from"]
    else:
        slot = keys
    _reject_null_keys(ctx, keys)
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
        names.append("valid_from")
    ctx.run(
        f"CREATE TEMP TABLE {src} AS SELECT {ctx.cols(names)} FROM (SELECT p.*, ROW_NUMBER() "
        f"OVER (PARTITION BY {ctx.cols(slot)} ORDER BY {order}) AS _ematix_rn FROM {pre} AS p) "
        f"AS d WHERE _ematix_rn = 1"
    )
    ctx.run(f"DROP TABLE {pre}")


def managed_columns(target: TargetSpec) -> tuple[TableColumn, ...]:
    """Columns ematix adds to ``target`` (SCD2 history columns, load metadata)."""
    from ematix_engine.schema.types import Boolean, String, Text

    columns: list[TableColumn] = []
    if target.mode is LoadMode.SCD2:
        # row_hash first: the other history columns hold one value per batch on a first load,
        # and a table created by that load receives them after its rows (see the runner).
        columns += [
            TableColumn("row_hash", String[64], nullable=False),
            TableColumn("valid_from", TimestampTZ, nullable=False),
            TableColumn("valid_to", TimestampTZ, nullable=True),
            TableColumn("is_current", Boolean, nullable=False),
            TableColumn("is_deleted", Boolean, nullable=False),
        ]
    columns += [
        TableColumn("_loaded_at", TimestampTZ, nullable=False),
        TableColumn("_batch_id", Text, nullable=False),
    ]
    return tuple(columns)


def target_primary_key(target: TargetSpec) -> Sequence[str]:
    """PRIMARY KEY of a newly created target: merge keys, or keys + valid_from for SCD2."""
    if target.mode is LoadMode.SCD2:
        return (*target.keys, "valid_from")
    if target.mode is LoadMode.MERGE:
        return target.keys
    return ()  # append/replace keep whatever the source has; no constraint to trip over
