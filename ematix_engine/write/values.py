"""Refuse values a load would change: no silent truncation, rounding or coercion.

Before rows are cast to the declared column types, one scan over ``_ematix_raw`` looks for the
first row whose (normalized) value the cast would not keep exactly:

* text longer than a ``String[n]`` column (PostgreSQL's cast truncates, DuckDB and SQLite do
  not enforce the length at all);
* a fractional number into an integer column (casts round or truncate), or an integer out of
  an ``Integer`` / ``SmallInt`` column's range;
* text that is not a value of the column's type where the backend's cast would not fail but
  coerce (SQLite turns ``'abc'`` into ``0`` and keeps an unreadable timestamp as text) — the
  predicates are data on the backend class (``INVALID_TEXT``);
* text the cast would refuse without naming the row (PostgreSQL's date and time casts): the
  column is cast once in a probe, and only when that fails does a slower per-row predicate
  (``LOCATE_INVALID_TEXT``) find the row, so good batches pay one cast, not a function per row

and, once the rows are prepared and de-duplicated (:func:`reject_nulls`), a NULL in a column
declared NOT NULL (the databases refuse it too, but each in its own words and none naming
the row).

A hit fails the load with a :class:`~ematix_engine.errors.BadValueError` naming the pipeline,
the target, the column and the row's key, and what is wrong (the value itself is not copied
into the message). The same rules apply on every backend, so a batch is refused identically
wherever it goes. No scan runs when no column can lose anything or must hold a value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from ematix_engine.errors import BadValueError
from ematix_engine.modes import mode_of
from ematix_engine.schema.types import BigInt
from ematix_engine.specs import LoadMode
from ematix_engine.write.context import RAW, SOURCE

if TYPE_CHECKING:
    from ematix_engine.schema.ddl import TableColumn
    from ematix_engine.specs import TargetSpec
    from ematix_engine.write.context import LoadContext

__all__ = [
    "NULL_IN_NOT_NULL",
    "NULL_REMEDY",
    "not_null_columns",
    "reject_bad_values",
    "reject_nulls",
]

#: The reason a NULL in a NOT NULL column is refused with (the same from every path).
NULL_IN_NOT_NULL = "NULL, but the column is declared NOT NULL"
#: What to do about it.
NULL_REMEDY = "fix the source, or declare the column nullable (T | None)"

_INT_RANGES = {"INT": (-(2**31), 2**31 - 1), "SMALLINT": (-(2**15), 2**15 - 1)}


def reject_bad_values(
    ctx: LoadContext, values: Mapping[str, str], raw_types: Mapping[str, pa.DataType]
) -> None:
    """Fail the load on the first row a cast would change (see the module docstring).

    Args:
        ctx: the load (its backend runs the scan over ``_ematix_raw`` aliased ``r``).
        values: for each written column with a source, the SQL of its normalized value.
        raw_types: the Arrow type of each written column's source, by column name.

    Raises:
        BadValueError: naming the column, the key and the reason.
    """
    checks: list[tuple[str, str, str]] = []  # (column, predicate, reason)
    for column in ctx.columns:
        value = values.get(column.name)
        if value is None:
            continue
        checks += _checks(ctx, column.name, column.type, value, raw_types[column.name])
        checks += _located(ctx, column.name, column.type, value, raw_types[column.name])
    if not checks:
        return
    keys = [k for k in ctx.target.keys if k in values]
    which = " ".join(f"WHEN {p} THEN {i}" for i, (_, p, _) in enumerate(checks))
    key_sql = [f"CAST({values[k]} AS TEXT)" for k in keys]
    rows = ctx.rows(
        f"SELECT {', '.join([*key_sql, f'CASE {which} END'])} FROM {ctx.q(RAW)} AS r "
        f"WHERE {' OR '.join(f'({p})' for _, p, _ in checks)} LIMIT 1"
    )
    if rows:
        column, _, reason = checks[int(rows[0][-1])]
        key = dict(zip(keys, rows[0][: len(keys)], strict=True))
        raise BadValueError(ctx.pipeline, ctx.target.label, column, key, reason)


def not_null_columns(target: TargetSpec, columns: Sequence[TableColumn]) -> list[str]:
    """The columns of ``columns`` a NULL must be refused in (see :func:`reject_nulls`).

    Declared NOT NULL, but neither the keys of a mode that matches on keys nor an SCD2 event
    time: a NULL there is refused as a source error before (the row has no identity or no
    place on the timeline).
    """
    skipped: set[str] = set(target.keys) if mode_of(target).dedupes else set()
    if target.mode is LoadMode.SCD2 and target.event_timestamp_column:
        skipped.add(target.event_timestamp_column)
    return [c.name for c in columns if not c.nullable and c.name not in skipped]


def reject_nulls(ctx: LoadContext, names: Sequence[str]) -> None:
    """Fail the load on the first prepared row with a NULL in a NOT NULL column.

    Runs over ``_ematix_src`` (rows de-duplication dropped are not refused) for the columns
    of ``names`` that :func:`not_null_columns` picks. The databases would refuse such a row
    too, but each in its own words and none naming it.

    Raises:
        BadValueError: naming the column and the row's key.
    """
    q, target = ctx.q, ctx.target
    checked = not_null_columns(target, [c for c in ctx.columns if c.name in names])
    if not checked:
        return
    keys = [k for k in target.keys if k in names]
    which = " ".join(f"WHEN {q(c)} IS NULL THEN {i}" for i, c in enumerate(checked))
    rows = ctx.rows(
        f"SELECT {', '.join([*(f'CAST({q(k)} AS TEXT)' for k in keys), f'CASE {which} END'])} "
        f"FROM {q(SOURCE)} WHERE {' OR '.join(f'{q(c)} IS NULL' for c in checked)} LIMIT 1"
    )
    if rows:
        key = dict(zip(keys, rows[0][: len(keys)], strict=True))
        column = checked[int(rows[0][-1])]
        raise BadValueError(ctx.pipeline, target.label, column, key, NULL_IN_NOT_NULL, NULL_REMEDY)


def _located(
    ctx: LoadContext, name: str, column_type: type, value: str, raw: pa.DataType
) -> list[tuple[str, str, str]]:
    """The ``LOCATE_INVALID_TEXT`` check of a text column, when a probe of its cast fails."""
    backend = ctx.backend
    locate = backend.LOCATE_INVALID_TEXT.get(column_type.hash_family)
    if locate is None or not (pa.types.is_string(raw) or pa.types.is_large_string(raw)):
        return []
    cast = backend.cast_sql(value, column_type)
    if not backend.cast_fails(f"SELECT COUNT({cast}) FROM {ctx.q(RAW)} AS r"):
        return []
    type_sql = backend.column_type_sql(column_type)
    return [
        (
            name,
            f"({value} IS NOT NULL AND {locate.format(value=value, type=type_sql)})",
            f"not a valid {column_type.type_name()} value",
        )
    ]


def _checks(
    ctx: LoadContext, name: str, column_type: type, value: str, raw: pa.DataType
) -> list[tuple[str, str, str]]:
    backend = ctx.backend
    family = column_type.hash_family
    params = getattr(column_type, "params", None) or ()
    found: list[tuple[str, str, str]] = []
    text = pa.types.is_string(raw) or pa.types.is_large_string(raw)
    numeric = pa.types.is_floating(raw) or pa.types.is_decimal(raw)
    if column_type.sql_name == "VARCHAR" and params:
        found.append(
            (
                name,
                f"length(CAST({value} AS TEXT)) > {int(params[0])}",
                f"longer than the {params[0]} characters of {column_type.type_name()}",
            )
        )
    if family == "int" and numeric:
        whole = backend.column_type_sql(BigInt)
        found.append(
            (
                name,
                f"{value} <> CAST({value} AS {whole})",
                f"a fractional number for integer column type {column_type.type_name()}",
            )
        )
    if family == "int" and column_type.sql_name in _INT_RANGES and not text:
        low, high = _INT_RANGES[column_type.sql_name]
        found.append(
            (
                name,
                f"({value} < {low} OR {value} > {high})",
                f"out of the range of {column_type.type_name()} ({low} to {high})",
            )
        )
    invalid = backend.INVALID_TEXT.get(family)
    if invalid is not None and text:
        type_sql = backend.column_type_sql(column_type)
        found.append(
            (
                name,
                f"({value} IS NOT NULL AND {invalid.format(value=value, type=type_sql)})",
                f"not a valid {column_type.type_name()} value",
            )
        )
    return found
