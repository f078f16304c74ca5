"""What a pipeline's source SQL reads: tables (for asset deps) and column lineage, via sqlglot.

The SQL is rendered once at definition time by calling the pipeline function with its source
connection (``$watermark`` becomes ``NULL`` for parsing). When that fails (a connection that
cannot be resolved here, SQL sqlglot cannot parse) the pipeline simply gets no SQL-derived deps
and a warning names it: lineage is a convenience, never a reason to fail loading.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import lineage

from ematix_engine import (
    PipelineSpec,
    TargetSpec,
    backend_kind,
    same_database,
    substitute_watermark,
)
from ematix_engine.connections import get_connection

__all__ = [
    "DEFAULT_CONNECTION",
    "SourceAnalysis",
    "TableRef",
    "analyze_source",
    "connection_name",
    "same_store",
    "source_connection",
    "target_connection",
]

log = logging.getLogger("ematix.dagster")

DEFAULT_CONNECTION = "default"
_DIALECTS = {"delta": "duckdb", "duckdb": "duckdb", "postgres": "postgres", "sqlite": "sqlite"}


@dataclass(frozen=True, slots=True)
class TableRef:
    """A table named in SQL: ``schema`` is ``None`` when the SQL leaves it out."""

    schema: str | None
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceAnalysis:
    """The source side of one pipeline target.

    Attributes:
        connection: The source connection (name or typed connection).
        connection_name: Its name, used as the key prefix of unqualified external tables.
        dialect: sqlglot dialect of the source.
        sql: The rendered source SQL, or ``None`` when it could not be rendered.
        tables: Tables the SQL reads, in order of appearance (CTEs excluded).
        column_sources: For each output column, the ``(table, column)`` pairs it derives from.
    """

    connection: Any
    connection_name: str
    dialect: str | None
    sql: str | None
    tables: tuple[TableRef, ...] = ()
    column_sources: Mapping[str, tuple[tuple[TableRef, str], ...]] = field(default_factory=dict)


def source_connection(spec: PipelineSpec, target: TargetSpec) -> Any:
    """The connection the source SQL runs on (as the batch runner resolves it)."""
    return spec.source_connection or target.connection or DEFAULT_CONNECTION


def target_connection(target: TargetSpec) -> Any:
    """The connection the target lives on."""
    return target.connection or DEFAULT_CONNECTION


def connection_name(connection: Any) -> str:
    """The name of a connection given by name or as a typed connection."""
    return connection if isinstance(connection, str) else str(getattr(connection, "name", ""))


def same_store(a: Any, b: Any) -> bool:
    """Whether two connections reach the same tables (same database, or same Delta root)."""
    try:
        first, second = get_connection(a).resolved(), get_connection(b).resolved()
    except Exception:  # unresolvable here: fall back to comparing names
        return connection_name(a) == connection_name(b)
    if first == second:
        return True
    try:
        return same_database(first, second)
    except Exception:
        return False


def _tables(tree: exp.Expression) -> tuple[TableRef, ...]:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: list[TableRef] = []
    for table in tree.find_all(exp.Table):
        if not table.name:
            continue
        ref = TableRef(table.db or None, table.name)
        if ref.schema is None and ref.name in ctes:
            continue
        if ref not in found:
            found.append(ref)
    return tuple(found)


def _column_sources(
    sql: str, dialect: str, columns: tuple[str, ...], tree: exp.Expression
) -> dict[str, tuple[tuple[TableRef, str], ...]]:
    selects = set(getattr(tree, "named_selects", ()) or ())
    result: dict[str, tuple[tuple[TableRef, str], ...]] = {}
    for column in columns:
        if column not in selects:
            continue
        try:
            node = lineage(column, sql, None, dialect=dialect)
        except (SqlglotError, KeyError, ValueError, AttributeError, TypeError) as error:
            log.debug("no lineage for column %s: %s", column, error)
            continue
        pairs: list[tuple[TableRef, str]] = []
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            pair = (
                TableRef(leaf.source.db or None, leaf.source.name),
                leaf.name.rsplit(".", 1)[-1],
            )
            if pair not in pairs:
                pairs.append(pair)
        if pairs:
            result[column] = tuple(pairs)
    return result


def analyze_source(spec: PipelineSpec, target: TargetSpec) -> SourceAnalysis:
    """Render and parse the source SQL of one target of ``spec``.

    Args:
        spec: The pipeline.
        target: The target (its connection is the source's default).

    Returns:
        The analysis; empty tables and lineage when the SQL could not be rendered or parsed.
    """
    conn = source_connection(spec, target)
    name = connection_name(conn)
    try:
        connection = get_connection(conn)
        name = connection.name
        dialect = _DIALECTS.get(backend_kind(connection))
        sql = spec.source.render(connection)
    except Exception as error:
        log.warning(
            "pipeline %r: could not render its source SQL for lineage (%s); the asset gets no "
            "SQL-derived deps",
            spec.name,
            str(error).strip() or type(error).__name__,
        )
        return SourceAnalysis(connection=conn, connection_name=name, dialect=None, sql=None)
    if not isinstance(sql, str) or not sql.strip():
        return SourceAnalysis(connection=conn, connection_name=name, dialect=dialect, sql=None)
    parsable = substitute_watermark(sql, "NULL")
    try:
        tree = sqlglot.parse_one(parsable, read=dialect)
    except SqlglotError as error:
        log.warning(
            "pipeline %r: sqlglot could not parse the source SQL (%s); no SQL-derived deps",
            spec.name,
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return SourceAnalysis(connection=conn, connection_name=name, dialect=dialect, sql=sql)
    return SourceAnalysis(
        connection=conn,
        connection_name=name,
        dialect=dialect,
        sql=sql,
        tables=_tables(tree),
        column_sources=_column_sources(parsable, dialect, target.table.column_names, tree),
    )
