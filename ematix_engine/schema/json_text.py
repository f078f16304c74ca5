r"""Arrow values as JSON text, for JSON / JSONB target columns (List, Struct and Map results).

The rules of the reference guide, so the text is the same whatever wrote it:

- primitives become JSON primitives (integers exactly, booleans, strings escaped);
- floats: ``NaN``, ``Infinity`` and ``-Infinity`` become ``null`` (one bad value must not fail a
  10k-row batch); ``float32`` values print in their shortest decimal form (``0.1``, not
  ``0.10000000149011612``);
- timestamps become ISO-8601 UTC strings, ``"2024-05-01T12:00:00.000000Z"`` (fraction digits
  follow the unit; a timestamp without a time zone is taken as UTC); dates ``"2024-05-01"``,
  times ``"12:00:00.000000"``;
- binary becomes lowercase hex (like PostgreSQL's ``to_jsonb(bytea)`` without the ``\\x``);
- decimals of up to 15 digits become JSON numbers (exact in a double, printed shortest:
  ``1.10`` → ``1.1``); wider decimals become JSON *strings* holding the exact value, because a
  JSON number would be parsed into a double by most readers and lose digits;
- a null value is JSON ``null`` inside a list or struct, and SQL NULL (a null string) at the top.

How: the leaves are rewritten vectorised with ``pyarrow.compute`` (and numpy for hex), nested
arrays are rebuilt around them without copying their offsets, and the nested value is encoded by
DuckDB's ``to_json`` (C++, one call per column). Only when DuckDB cannot take a type does a
column fall back to ``to_pylist`` + ``json.dumps`` (logged at debug level).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["json_columns", "json_text"]

log = logging.getLogger("ematix.schema.json")

_HEX = np.array([list(f"{i:02x}".encode()) for i in range(256)], dtype=np.uint8)
_EXACT_DECIMAL_DIGITS = 15
_local = threading.local()


def _duckdb():
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = _local.con = duckdb.connect()
    return con


def _hex(array: pa.Array) -> pa.Array:
    """Lowercase hex of each binary value (vectorised)."""
    t = array.type
    if pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        array = array.cast(pa.binary())
    large = pa.types.is_large_binary(array.type)
    offset_type = np.int64 if large else np.int32
    _, offsets_buf, data_buf = array.buffers()[:3]
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[
        array.offset : array.offset + len(array) + 1
    ]
    start, end = int(offsets[0]), int(offsets[-1]) if len(offsets) else 0
    data = np.frombuffer(data_buf, dtype=np.uint8)[start:end] if data_buf is not None else []
    hexed = _HEX[np.asarray(data, dtype=np.uint8)].reshape(-1)
    new_offsets = (offsets.astype(np.int64) - start) * 2
    out_type = pa.large_string() if large or len(hexed) >= 2**31 else pa.string()
    if out_type == pa.string():
        new_offsets = new_offsets.astype(np.int32)
    if len(offsets) == 0:
        new_offsets = np.zeros(1, dtype=np.int64 if out_type == pa.large_string() else np.int32)
    out = pa.Array.from_buffers(
        out_type, len(array), [None, pa.py_buffer(new_offsets), pa.py_buffer(hexed.tobytes())]
    )
    if array.null_count:
        out = pc.if_else(array.is_valid(), out, pa.scalar(None, out_type))
    return out


def _finite(array: pa.Array) -> pa.Array:
    if pa.types.is_float16(array.type):
        array = array.cast(pa.float32())
    if pa.types.is_float32(array.type):  # shortest decimal text, then the double it denotes
        array = array.cast(pa.string()).cast(pa.float64())
    return pc.if_else(pc.is_finite(array), array, pa.scalar(None, array.type))


def _timestamp(array: pa.Array) -> pa.Array:
    utc = array.cast(pa.timestamp(array.type.unit, "UTC"))
    return pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")


def _rebased_offsets(array: pa.Array) -> tuple[pa.Array, int, int]:
    """The offsets of a (possibly sliced) list or map array starting at 0, and the value range."""
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    if start:
        offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
    return offsets, start, end


def _clean(array: pa.Array) -> pa.Array:
    """Rewrite the leaves so DuckDB's ``to_json`` prints them by the rules above."""
    t = array.type
    if pa.types.is_dictionary(t):
        return _clean(array.dictionary_decode())
    if pa.types.is_struct(t):
        if t.num_fields == 0:
            return array
        children = [_clean(child) for child in array.flatten()]
        fields = [t.field(i).with_type(children[i].type) for i in range(t.num_fields)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=array.is_null())
    if pa.types.is_map(t):
        offsets, start, end = _rebased_offsets(array)
        return pa.MapArray.from_arrays(
            offsets,
            _clean(array.keys.slice(start, end - start)),
            _clean(array.items.slice(start, end - start)),
            mask=array.is_null(),
        )
    if pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return _clean(array.cast(pa.list_(t.value_field)))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets, start, end = _rebased_offsets(array)
        values = _clean(array.values.slice(start, end - start))
        return type(array).from_arrays(offsets, values, mask=array.is_null())
    if pa.types.is_floating(t):
        return _finite(array)
    if pa.types.is_timestamp(t):
        return _timestamp(array)
    if pa.types.is_date(t) or pa.types.is_time(t):
        return array.cast(pa.string())
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return _hex(array)
    if pa.types.is_decimal(t):
        if t.precision <= _EXACT_DECIMAL_DIGITS:
            return array.cast(pa.float64())
        return array.cast(pa.string())
    if pa.types.is_string_view(t):
        return array.cast(pa.string())
    return array


def _python_json(array: pa.Array) -> pa.Array:
    dumps = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
    ).encode
    values = array.to_pylist(maps_as_pydicts="lossy")
    return pa.array([None if value is None else dumps(value) for value in values], pa.string())


def json_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Encode each value of an Arrow column as JSON text (rules in the module docstring).

    Args:
        values: any Arrow column; typically ``List<Struct<…>>`` from ``array_agg(named_struct(…))``.

    Returns:
        A string array of the same length; null where the value is null.

    Examples:
        >>> import pyarrow as pa
        >>> column = pa.array([[{"strike": 4500, "bid": 1.25}], None])
        >>> json_text(column).to_pylist()
        ['[{"strike":4500,"bid":1.25}]', None]
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    cleaned = _clean(values)
    try:
        con = _duckdb()
        con.register("_ematix_json_input", pa.table({"v": cleaned}))
        try:
            result = con.sql("SELECT to_json(v) AS j FROM _ematix_json_input").to_arrow_table()
        finally:
            con.unregister("_ematix_json_input")
        out = result.column("j").combine_chunks()
        if isinstance(out.type, pa.ExtensionType):
            out = out.storage
        return out.cast(pa.string())
    except Exception as error:  # a type DuckDB cannot import: encode in Python, same rules
        log.debug("JSON text of a %s column through json.dumps: %s", values.type, error)
        return _python_json(cleaned)


def json_columns(table: pa.Table, columns: Iterable[str] | None = None) -> pa.Table:
    """Replace columns by their JSON text (default: every List, Struct and Map column).

    Args:
        table: the rows.
        columns: the columns to encode; None encodes every nested column.

    Returns:
        The table with those columns as strings of JSON text, in place.
    """
    if columns is None:
        columns = [
            field.name
            for field in table.schema
            if pa.types.is_nested(field.type)
            or (pa.types.is_dictionary(field.type) and pa.types.is_nested(field.type.value_type))
        ]
    for name in columns:
        index = table.schema.get_field_index(name)
        if index < 0:
            raise KeyError(f"no column {name!r}; columns: {', '.join(table.column_names)}")
        table = table.set_column(index, pa.field(name, pa.string()), json_text(table[name]))
    return table
