"""A partition's source rows: the user's SQL limited to one slice, bounds always bound.

The SQL may use ``$partition_start`` / ``$partition_end`` (a time window ``[start, end)``) and
``$partition_key``; without them the rows are filtered on the partition column (``s.col >=
start AND s.col < end``, or ``s.col = key``). As for ``$watermark``
(:mod:`ematix_engine.batch.source`), the statement is parsed with sqlglot and embedded as a
subquery node: a marker inside a string literal or a comment is left alone. Each marker becomes
a scalar subquery over a one-row relation of constants, typed like the partition column:

* same database: the batch-constants table ``_ematix_batch`` (written with bound parameters by
  the write core, :func:`~ematix_engine.write.prepare.create_batch_table`);
* another database: a ``WITH _ematix_partition AS (SELECT CAST(<marker> AS <type>) ...)`` in
  front of the query, whose markers are bound once each, in order, so every occurrence in the
  user's SQL reads the same parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from ematix_engine.backends import open_backend
from ematix_engine.errors import ConfigError
from ematix_engine.write import ArrowRows, QueryRows
from ematix_engine.write.context import BATCH

if TYPE_CHECKING:
    from ematix_engine.backends.base import SqlBackend
    from ematix_engine.write.slices import SliceFilter

__all__ = ["PARTITION_MARKERS", "partition_markers", "partition_rows"]

#: The markers a partitioned pipeline's SQL may use.
PARTITION_MARKERS = ("partition_start", "partition_end", "partition_key")

_CONSTANTS = "_ematix_partition"


def _marker_name(node: exp.Expression) -> str | None:
    """The marker ``node`` stands for (``$partition_start`` → ``partition_start``), if any."""
    if isinstance(node, exp.Placeholder | exp.Parameter):
        name = node.name
    elif isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier):
        ident = node.this
        name = ident.name[1:] if not ident.quoted and ident.name.startswith("$") else ""
    else:
        return None
    return name if name in PARTITION_MARKERS else None


def partition_markers(sql: str, dialect: str | None = None) -> list[str]:
    """The partition markers ``sql`` uses (outside literals and comments), in tree order.

    Example:
        >>> partition_markers("SELECT * FROM t WHERE d >= $partition_start AND n <> '$partition_key'")
        ['partition_start']
    """
    from ematix_engine.batch.source import _parse

    tree = _parse(sql, dialect)
    if tree is None:
        return []
    return [name for node in tree.walk() if (name := _marker_name(node))]


def _select(
    pipeline: str, user_sql: str, backend: SqlBackend, slice_: SliceFilter, constants: str
) -> exp.Select:
    """``SELECT * FROM (<user SQL>) AS s [WHERE <slice filter>]``, markers read ``constants``."""
    from ematix_engine.batch.source import _parse

    dialect = backend.dialect
    tree = _parse(user_sql, dialect)
    if tree is None:
        raise ConfigError(
            f"pipeline {pipeline!r}: the source SQL is not one statement sqlglot can read as "
            f"{dialect} SQL; write one SELECT: {user_sql.strip()[:200]!r}"
        )
    q = backend.quote
    available = _available(slice_)

    def read(name: str) -> exp.Expression:
        if name not in available:
            raise ConfigError(
                f"pipeline {pipeline!r}: its SQL uses ${name}, but static partitions have only "
                f"$partition_key"
            )
        return exp.Var(this=f"(SELECT {q(name)} FROM {q(constants)})")

    used = False
    for node in list(tree.walk()):
        name = _marker_name(node)
        if name is not None:
            node.replace(read(name))
            used = True
    alias = exp.TableAlias(this=exp.to_identifier("s"))
    select = exp.select("*").from_(exp.Subquery(this=tree, alias=alias))
    if not used:
        column = exp.column(slice_.column, table="s", quoted=True)
        if slice_.is_window:
            select = select.where(
                exp.and_(
                    exp.GTE(this=column, expression=read("partition_start")),
                    exp.LT(this=column.copy(), expression=read("partition_end")),
                )
            )
        else:
            select = select.where(exp.EQ(this=column, expression=read("partition_key")))
    return select


def _available(slice_: SliceFilter) -> tuple[str, ...]:
    """The markers a slice has values for (a static value has no window)."""
    return PARTITION_MARKERS if slice_.is_window else ("partition_key",)


def partition_rows(
    user_sql: str,
    source_connection: Any,
    same_database: bool,
    slice_: SliceFilter,
    batch_size: int,
    pipeline: str = "",
) -> ArrowRows | QueryRows:
    """The rows of one partition, as the write core takes them (see the module docstring)."""
    if same_database:

        def select(session: SqlBackend, _: str) -> str:
            return _select(pipeline, user_sql, session, slice_, BATCH).sql(dialect=session.dialect)

        return QueryRows(select, source_connection)

    @contextlib.contextmanager
    def opened(_: str | None) -> Iterator[pa.RecordBatchReader]:
        source = open_backend(source_connection, read_only=True)
        try:
            select = _select(pipeline, user_sql, source, slice_, _CONSTANTS)
            types, values = slice_.bound_types(), slice_.bound_values(source)
            names = _available(slice_)
            casts = []
            for index, name in enumerate(names):
                column_type = types[name]
                type_sql = source.column_type_sql(column_type) if column_type else "TEXT"
                cast = f"CAST({source.source_marker(index)} AS {type_sql})"
                casts.append(exp.alias_(exp.Var(this=cast), name, quoted=True))
            select = select.with_(_CONSTANTS, as_=exp.select(*casts))
            params = [values[name] for name in names]
            sql = select.sql(dialect=source.dialect)
            yield source.read_arrow(sql, params, batch_size=batch_size)
        finally:
            source.close()

    return ArrowRows(opened, source_connection)
