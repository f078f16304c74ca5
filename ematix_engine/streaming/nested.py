"""Arrow lists, structs and maps into JSON text for JSON columns (the guide's rules).

A transform such as ``array_agg(named_struct(...))`` yields ``List<Struct<...>>`` columns; a
table column of type ``Json`` (``JSONB`` on PostgreSQL) stores them as JSON documents:

* numbers, booleans and strings stay JSON primitives;
* timestamps become ISO-8601 UTC text (``2026-01-01T00:00:00.000000Z``);
* binary becomes lowercase hex (as PostgreSQL's ``to_jsonb(bytea)``);
* float NaN and ±Infinity become ``null`` (one bad value does not sink a batch).

The conversion is columnar: leaves are rewritten with Arrow kernels and the document is
rendered by DuckDB's ``to_json``. A nested column headed for a declared column that is not
``Json`` is an error naming the column.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ematix_engine.errors import SchemaDriftError
from ematix_engine.specs import TableSpec

__all__ = ["is_nested", "nested_to_json"]

_ISO = "%Y-%m-%dT%H:%M:%SZ"


def is_nested(arrow_type: pa.DataType) -> bool:
    """Whether values of ``arrow_type`` are lists, structs or maps."""
    return (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
        or pa.types.is_struct(arrow_type)
        or pa.types.is_map(arrow_type)
    )


def nested_to_json(rows: pa.Table, table: TableSpec | None) -> pa.Table:
    """``rows`` with every nested column rendered as JSON text.

    Args:
        rows: the batch.
        table: the target table, when its columns are known (declared or inferred).

    Raises:
        SchemaDriftError: a nested column goes to a declared column that is not ``Json``.
    """
    nested = [i for i, f in enumerate(rows.schema) if is_nested(f.type)]
    if not nested:
        return rows
    declared = {c.name: c for c in table.columns} if table is not None else {}
    con = duckdb.connect()
    try:
        for index in nested:
            field = rows.schema.field(index)
            column = declared.get(field.name)
            if column is not None and column.type.hash_family != "json":
                raise SchemaDriftError(
                    table.qualified_name if table else "?",
                    field.name,
                    f"the rows hold {field.type} values (a list or struct) but the column is "
                    f"{column.type.type_name()}; declare it Json to store them as JSON",
                )
            values = _plain(rows.column(index).combine_chunks(), con)
            con.register("_ematix_nested", pa.table({"v": values}))
            text = con.sql(
                'SELECT CAST(to_json("v") AS VARCHAR) AS "v" FROM "_ematix_nested"'
            ).to_arrow_table()
            con.unregister("_ematix_nested")
            rows = rows.set_column(index, pa.field(field.name, pa.string()), text.column("v"))
    finally:
        con.close()
    return rows


def _plain(array: pa.Array, con: duckdb.DuckDBPyConnection) -> pa.Array:
    """Rewrite the leaves of ``array`` so that ``to_json`` follows the module's rules."""
    t = array.type
    if pa.types.is_struct(t):
        children = array.flatten()
        fields = [t.field(i) for i in range(t.num_fields)]
        plain = [_plain(child, con) for child in children]
        return pa.StructArray.from_arrays(
            plain,
            fields=[pa.field(f.name, c.type) for f, c in zip(fields, plain, strict=True)],
            mask=array.is_null(),
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = _plain(array.values, con)
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        return cls.from_arrays(array.offsets, values, mask=array.is_null())
    if pa.types.is_fixed_size_list(t):
        return _plain(array.cast(pa.list_(t.value_type)), con)
    if pa.types.is_map(t):
        return array  # keys and values render as an object; leaves are rarely special
    if pa.types.is_timestamp(t):
        utc = array.cast(pa.timestamp(t.unit, tz="UTC")) if t.tz is None else array
        return pc.strftime(utc, format=_ISO)
    if pa.types.is_floating(t):
        return pc.if_else(pc.is_finite(array), array, pa.scalar(None, t))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        con.register("_ematix_leaf", pa.table({"b": array.cast(pa.binary())}))
        hexed = con.sql('SELECT lower(hex("b")) AS "h" FROM "_ematix_leaf"').to_arrow_table()
        con.unregister("_ematix_leaf")
        return hexed.column("h").combine_chunks()
    return array
