"""A batch pipeline's SQL source: render it, and hand its rows to the write core.

The user's SQL may use ``$watermark`` (the pipeline's last watermark, loaded rows are strictly
greater); with an ``incremental_column`` and no ``$watermark``, a filter on that column is
added around the query. The SQL is parsed with sqlglot and embedded as a subquery node, never
pasted as text: ``$watermark`` in a string literal or a comment is left alone, and a trailing
``--`` comment cannot swallow the wrapper. On the same database as the target the query becomes
:class:`~ematix_engine.write.QueryRows` (a temporary view, rows never copied); elsewhere
:class:`~ematix_engine.write.ArrowRows` streamed from the source with the watermark bound as a
parameter. A partitioned run's rows come from :mod:`ematix_engine.batch.partition_source`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from ematix_engine.backends import open_backend
from ematix_engine.write import ArrowRows, QueryRows

if TYPE_CHECKING:
    from ematix_engine.backends.base import SqlBackend
    from ematix_engine.schema.types import ColumnType
    from ematix_engine.specs import TargetSpec

__all__ = [
    "infer_incremental_column",
    "source_rows",
    "substitute_watermark",
    "watermark_count",
]

_NAME = "watermark"


def _parse(sql: str, dialect: str | None) -> exp.Expression | None:
    """The user's SQL as one parsed statement, or None when sqlglot cannot parse it."""
    try:
        trees = [tree for tree in sqlglot.parse(sql, read=dialect) if tree is not None]
    except SqlglotError:
        return None
    return trees[0] if len(trees) == 1 else None


def _is_watermark(node: exp.Expression) -> bool:
    """Whether ``node`` is the ``$watermark`` marker (each dialect parses it differently)."""
    if isinstance(node, exp.Placeholder):
        return node.name == _NAME
    if isinstance(node, exp.Parameter):
        return node.name == _NAME
    if isinstance(node, exp.Column) and not node.table:
        ident = node.this
        return isinstance(ident, exp.Identifier) and not ident.quoted and ident.name == "$" + _NAME
    return False


def _markers(tree: exp.Expression) -> list[exp.Expression]:
    return [node for node in tree.walk() if _is_watermark(node)]


def _marker_tokens(sql: str, dialect: str | None) -> list[tuple[int, int]]:
    """Spans of ``$watermark`` tokens (never inside a string literal or a comment).

    Used only when sqlglot cannot parse a statement; its tokenizer still can.
    """
    try:
        tokens = sqlglot.tokenize(sql, read=dialect)
    except SqlglotError:
        tokens = sqlglot.tokenize(sql)
    spans: list[tuple[int, int]] = []
    for i, token in enumerate(tokens):
        if token.token_type is TokenType.STRING:
            continue
        if token.text == "$" + _NAME:
            spans.append((token.start, token.end + 1))
        elif (
            token.text == "$"
            and i + 1 < len(tokens)
            and tokens[i + 1].text == _NAME
            and tokens[i + 1].start == token.end + 1
        ):
            spans.append((token.start, tokens[i + 1].end + 1))
    return spans


def watermark_count(sql: str, dialect: str | None = None) -> int:
    """How often ``$watermark`` occurs in ``sql``, outside string literals and comments.

    Example:
        >>> watermark_count("SELECT * FROM t WHERE ts > $watermark AND note <> '$watermark'")
        1
        >>> watermark_count("SELECT 1 -- no $watermark here")
        0
    """
    tree = _parse(sql, dialect)
    if tree is not None:
        return len(_markers(tree))
    return len(_marker_tokens(sql, dialect))


def substitute_watermark(sql: str, replacement: str, dialect: str | None = None) -> str:
    """The user's SQL with every ``$watermark`` replaced by the SQL ``replacement``.

    The SQL is parsed with sqlglot (in ``dialect``) and re-rendered, so ``$watermark`` inside a
    string literal or a comment is left alone. SQL sqlglot cannot parse is tokenized instead,
    with the same guarantee.

    Args:
        sql: The user's SQL.
        replacement: SQL to put in place of each marker (a bind marker, ``NULL``, …).
        dialect: The sqlglot dialect of ``sql`` (``postgres``, ``duckdb``, ``sqlite``).

    Returns:
        The SQL.

    Example:
        >>> substitute_watermark("SELECT * FROM t WHERE ts > $watermark AND n <> '$watermark'", "?")
        "SELECT * FROM t WHERE ts > ? AND n <> '$watermark'"
    """
    tree = _parse(sql, dialect)
    if tree is None:
        out, last = [], 0
        for start, end in _marker_tokens(sql, dialect):
            out += [sql[last:start], replacement]
            last = end
        return "".join([*out, sql[last:]])
    for node in _markers(tree):
        node.replace(exp.Var(this=replacement))
    return tree.sql(dialect=dialect)


def infer_incremental_column(pipeline: str, target: TargetSpec, sql: str) -> str | None:
    """The incremental column of a pipeline whose SQL uses ``$watermark``.

    The declared ``incremental_column`` wins; otherwise the column compared in
    ``<column> > $watermark`` (or ``>=``) is used when the target declares it.

    Raises:
        ConfigError: the SQL uses ``$watermark`` and no column can be determined.
    """
    from ematix_engine.errors import ConfigError

    if not watermark_count(sql):
        return None
    if target.deletes.value != "ignore":
        raise ConfigError(
            f"pipeline {pipeline!r}: its SQL uses $watermark (an incremental load) but "
            f"deletes={target.deletes.value!r} on {target.label} treats every load as a full "
            f"snapshot; drop one of the two"
        )
    tree = _parse(sql, None)
    compared = [
        node.this
        for node in (tree.find_all(exp.GT, exp.GTE) if tree is not None else ())
        if _is_watermark(node.expression) and isinstance(node.this, exp.Column)
    ]
    declared = {c.lower(): c for c in target.table.column_names}
    for column in compared:
        name = column.name
        if name in target.table.column_names:
            return name
        if name.lower() in declared:
            return declared[name.lower()]
    raise ConfigError(
        f"pipeline {pipeline!r}: its SQL uses $watermark but no incremental_column is set and "
        f"none could be inferred from '<column> > $watermark'; pass incremental_column=... "
        f"naming a column of {target.label}"
    )


def _filtered_sql(
    user_sql: str,
    backend: SqlBackend,
    incremental_column: str | None,
    uses_watermark: bool,
    watermark_sql: str,
) -> str:
    """``SELECT * FROM (<user SQL, parsed>) AS s [WHERE s.col > <watermark>]``.

    The user's statement is parsed in the backend's dialect and embedded as a subquery node,
    so a trailing ``--`` comment or a ``$watermark`` inside a literal cannot change the query.
    """
    from ematix_engine.errors import ConfigError

    dialect = backend.dialect
    tree = _parse(user_sql, dialect)
    if tree is None:
        raise ConfigError(
            f"the source SQL is not one statement sqlglot can read as {dialect} SQL; write "
            f"one SELECT (no trailing ';'-separated statements): {user_sql.strip()[:200]!r}"
        )
    for node in _markers(tree):
        node.replace(exp.Var(this=watermark_sql))
    alias = exp.TableAlias(this=exp.to_identifier("s"))
    select = exp.select("*").from_(exp.Subquery(this=tree, alias=alias))
    if incremental_column and not uses_watermark:
        column = exp.column(incremental_column, table="s", quoted=True)
        select = select.where(exp.GT(this=column, expression=exp.Var(this=watermark_sql)))
    return select.sql(dialect=dialect)


def source_rows(
    user_sql: str,
    source_connection: Any,
    *,
    same_database: bool,
    incremental_column: str | None,
    watermark_type: type[ColumnType] | None,
    batch_size: int = 100_000,
) -> ArrowRows | QueryRows:
    """The rows of a pipeline's SQL, as the write core takes them.

    Args:
        user_sql: the SQL the pipeline function returned.
        source_connection: where it runs.
        same_database: the source is the target's database (the planner's answer).
        incremental_column: the column compared with the watermark, if any.
        watermark_type: that column's type.
        batch_size: rows per Arrow batch when streaming across databases.
    """
    uses_watermark = watermark_count(user_sql) > 0
    if same_database:

        def select(session: SqlBackend, watermark_sql: str) -> str:
            return _filtered_sql(
                user_sql, session, incremental_column, uses_watermark, watermark_sql
            )

        return QueryRows(select, source_connection)

    @contextlib.contextmanager
    def opened(watermark: str | None) -> Iterator[pa.RecordBatchReader]:
        source = open_backend(source_connection, read_only=True)
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
    occurrences = watermark_count(user_sql, source.dialect) if uses_watermark else 1
    return select, source.watermark_params(watermark, occurrences) or None
