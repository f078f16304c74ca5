"""A batch pipeline's SQL source: render it, and hand its rows to the write core.

The user's SQL may use ``$watermark`` (the pipeline's last watermark, loaded rows are strictly
greater); with an ``incremental_column`` and no ``$watermark``, a filter on that column is
added around the query. On the same database as the target the query becomes
:class:`~ematix_engine.write.QueryRows` (a temporary view, rows never copied); elsewhere
:class:`~ematix_engine.write.ArrowRows` streamed from the source with the watermark bound as a
parameter.

A partition's run (:mod:`ematix_engine.partitions`) has no watermark. Its SQL may use
``$partition_start`` and ``$partition_end`` (a time window ``[start, end)``) and
``$partition_key``, each bound as a value of the partition column's type (on the same database
they read the batch-constants table ``_ematix_batch``); with none of them, the rows are
filtered on the partition column (``col >= start AND col < end``, or ``col = key``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ematix_engine.backends import open_backend
from ematix_engine.write import ArrowRows, QueryRows
from ematix_engine.write.context import BATCH

if TYPE_CHECKING:
    from ematix_engine.backends.base import SqlBackend
    from ematix_engine.schema.types import ColumnType
    from ematix_engine.specs import TargetSpec
    from ematix_engine.write.slices import SliceFilter

__all__ = [
    "infer_incremental_column",
    "source_rows",
    "substitute_watermark",
    "uses_partition_placeholders",
]

_WATERMARK = re.compile(r"\$watermark\b")
_PARTITION = re.compile(r"\$(partition_start|partition_end|partition_key)\b")


def uses_partition_placeholders(sql: str) -> bool:
    """Whether the SQL uses ``$partition_start``, ``$partition_end`` or ``$partition_key``."""
    return bool(_PARTITION.search(sql))


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


def source_rows(
    user_sql: str,
    source_connection: Any,
    *,
    same_database: bool,
    incremental_column: str | None,
    watermark_type: type[ColumnType] | None,
    batch_size: int = 100_000,
    slice_: SliceFilter | None = None,
) -> ArrowRows | QueryRows:
    """The rows of a pipeline's SQL, as the write core takes them.

    Args:
        user_sql: the SQL the pipeline function returned.
        source_connection: where it runs.
        same_database: the source is the target's database (the planner's answer).
        incremental_column: the column compared with the watermark, if any.
        watermark_type: that column's type.
        batch_size: rows per Arrow batch when streaming across databases.
        slice_: the partition the run loads (then there is no watermark).
    """
    if slice_ is not None:
        return _partition_rows(user_sql, source_connection, same_database, slice_, batch_size)
    uses_watermark = bool(_WATERMARK.search(user_sql))
    if same_database:

        def select(session: SqlBackend, watermark_sql: str) -> str:
            return _filtered_sql(
                user_sql, session, incremental_column, uses_watermark, watermark_sql
            )

        return QueryRows(select, source_connection)

    @contextlib.contextmanager
    def opened(watermark: str | None) -> Iterator[pa.RecordBatchReader]:
        source = open_backend(source_connection)
        try:
            sql, params = _bound_sql(
                source, user_sql, incremental_column, uses_watermark, watermark, watermark_type
            )
            yield source.read_arrow(sql, params, batch_size=batch_size)
        finally:
            source.close()

    return ArrowRows(opened, source_connection)


def _bound_sql(
    source: Any,
    user_sql: str,
    incremental_column: str | None,
    uses_watermark: bool,
    watermark: str | None,
    watermark_type: type[ColumnType] | None,
) -> tuple[str, list[object] | None]:
    """The source query with the watermark as a bound parameter, and its parameters."""
    placeholder = source.source_placeholder()
    if watermark_type is not None:
        placeholder = f"CAST({placeholder} AS {source.column_type_sql(watermark_type)})"
    needs_param = uses_watermark or incremental_column is not None
    # read_arrow binds with the driver's own markers (ADBC ``$1``, ``?``): no ``%`` escaping.
    select = _filtered_sql(user_sql, source, incremental_column, uses_watermark, placeholder)
    if not needs_param:
        return select, None
    occurrences = len(_WATERMARK.findall(user_sql)) if uses_watermark else 1
    return select, source.watermark_params(watermark, occurrences) or None


def _partition_sql(user_sql: str, quote: Any, slice_: SliceFilter) -> str:
    """The user's SQL, filtered on the partition column unless it uses the placeholders."""
    if uses_partition_placeholders(user_sql):
        return user_sql
    column = f"s.{quote(slice_.column)}"
    if slice_.is_window:
        where = f"{column} >= $partition_start AND {column} < $partition_end"
    else:
        where = f"{column} = $partition_key"
    return f"SELECT * FROM ({user_sql}) AS s WHERE {where}"


def _partition_rows(
    user_sql: str, source_connection: Any, same_database: bool, slice_: SliceFilter, batch_size: int
) -> ArrowRows | QueryRows:
    """A partition's rows: placeholders bound to the partition's bounds, never pasted."""
    if same_database:

        def select(session: SqlBackend, _: str) -> str:
            q = session.quote
            sql = _partition_sql(user_sql, q, slice_)
            return _PARTITION.sub(lambda m: f"(SELECT {q(m.group(1))} FROM {q(BATCH)})", sql)

        return QueryRows(select, source_connection)

    @contextlib.contextmanager
    def opened(_: str | None) -> Iterator[pa.RecordBatchReader]:
        source = open_backend(source_connection)
        try:
            types = slice_.bound_types()
            values = slice_.bound_values(source)
            params: list[Any] = []

            def marker(match: re.Match[str]) -> str:
                name = match.group(1)
                column_type = types[name]
                type_sql = source.column_type_sql(column_type) if column_type else "TEXT"
                params.append(values[name])
                return f"CAST({source.source_marker(len(params) - 1)} AS {type_sql})"

            sql = _PARTITION.sub(marker, _partition_sql(user_sql, source.quote, slice_))
            yield source.read_arrow(f"SELECT * FROM ({sql}) AS s", params, batch_size=batch_size)
        finally:
            source.close()

    return ArrowRows(opened, source_connection)
