"""Arrow record batches as PostgreSQL binary ``COPY`` data, vectorised (no per-row Python).

PostgreSQL ingests binary ``COPY`` faster than CSV: it parses no numbers, timestamps or
quoting. 300,000 SCD2 versions (bigint, two texts, double, ``row_hash``) measured 0.55 s binary
against 0.84 s CSV, and with the versions' timestamps, flags and batch id 0.51 s against
1.35 s. Each row is ``int16`` field count, then per field ``int32`` byte length (``-1``: NULL)
and the value's bytes, all big-endian.

:func:`binary_encoder` returns an encoder only when every column has an exact binary form for
the target column's type (see :data:`_ENCODINGS`); otherwise the caller keeps the CSV path, so
values are never converted differently from how PostgreSQL would read their text. The whole
row is assembled by one ``binary_join_element_wise`` over the pieces: runs of fixed-width
bytes (field counts, lengths, numbers) are built as NumPy matrices, and variable-width values
(text, and numbers with NULLs) are joined in between.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HEADER", "TRAILER", "binary_encoder"]

#: Signature, flags (no OIDs) and header extension length.
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
#: The field count ``-1`` ends the data.
TRAILER = struct.pack(">h", -1)

#: PostgreSQL counts timestamps from 2000-01-01 and dates from the same day.
_PG_EPOCH_US = 946_684_800 * 1_000_000
_PG_EPOCH_DAYS = 10_957
_NULL = np.frombuffer(struct.pack(">i", -1), dtype=np.uint8)
_EMPTY = pa.scalar(b"", pa.large_binary())

# Type OIDs of the columns a COPY writes.
_INT2, _INT4, _INT8, _FLOAT4, _FLOAT8, _BOOL = 21, 23, 20, 700, 701, 16
_TEXT, _VARCHAR, _BYTEA, _DATE, _TIMESTAMP, _TIMESTAMPTZ = 25, 1043, 17, 1082, 1114, 1184

#: A column's values as a NumPy array of the binary form, given the Arrow array (no NULLs
#: filled yet) — or ``None`` for variable-width values.
_Fixed = Callable[[pa.Array], np.ndarray]


def _ints(width: str) -> _Fixed:
    return lambda a: a.fill_null(0).to_numpy().astype(width)


def _float(a: pa.Array) -> np.ndarray:
    return a.fill_null(0).to_numpy().astype(">f8")


def _float4(a: pa.Array) -> np.ndarray:
    return a.fill_null(0).to_numpy().astype(">f4")


def _bool(a: pa.Array) -> np.ndarray:
    return a.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)


def _timestamp(a: pa.Array) -> np.ndarray:
    us = a.cast(pa.timestamp("us", a.type.tz)).cast(pa.int64()).fill_null(0).to_numpy()
    if len(us) and int(us.min()) < np.iinfo(np.int64).min + _PG_EPOCH_US:
        raise ValueError("timestamp out of range for PostgreSQL")
    return (us - _PG_EPOCH_US).astype(">i8")


def _date(a: pa.Array) -> np.ndarray:
    days = a.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64) - _PG_EPOCH_DAYS
    if len(days) and int(days.min()) < np.iinfo(np.int32).min:
        raise ValueError("date out of range for PostgreSQL")
    return days.astype(">i4")


def _is_exact_int(t: pa.DataType, widest: int) -> bool:
    """An Arrow integer type every value of which fits a signed ``widest``-bit integer."""
    if pa.types.is_signed_integer(t):
        return t.bit_width <= widest
    return pa.types.is_unsigned_integer(t) and t.bit_width < widest


def _encoding(t: pa.DataType, oid: int) -> _Fixed | bool | None:
    """How a column of Arrow type ``t`` is written into a column of type ``oid``.

    A fixed-width converter, ``None`` for bytes written as they are (text, bytea), or
    ``False`` when there is no exact binary form (the copy then uses CSV).
    """
    if oid == _INT8 and _is_exact_int(t, 64):
        return _ints(">i8")
    if oid == _INT4 and _is_exact_int(t, 32):
        return _ints(">i4")
    if oid == _INT2 and _is_exact_int(t, 16):
        return _ints(">i2")
    if oid == _FLOAT8 and pa.types.is_float64(t):
        return _float
    if oid == _FLOAT4 and pa.types.is_float32(t):
        return _float4
    if oid == _BOOL and pa.types.is_boolean(t):
        return _bool
    if oid in (_TEXT, _VARCHAR) and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return None
    if oid == _BYTEA and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        return None
    # Nanoseconds are left to CSV: PostgreSQL rounds their text to microseconds.
    if oid in (_TIMESTAMP, _TIMESTAMPTZ) and pa.types.is_timestamp(t) and t.unit != "ns":
        return _timestamp
    if oid == _DATE and pa.types.is_date32(t):
        return _date
    return False


def binary_encoder(
    schema: pa.Schema, oids: Sequence[int]
) -> Callable[[pa.RecordBatch], pa.Buffer] | None:
    """An encoder of ``schema``'s batches into rows of columns typed ``oids``, or None.

    None when a column has no exact binary form for its target type (decimals, JSON,
    nanosecond timestamps, narrowing integers, …): the caller then copies CSV.
    Dictionary-encoded columns are decoded first.
    """
    encodings = []
    for field, oid in zip(schema, oids, strict=True):
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        encoding = _encoding(t, oid)
        if encoding is False:
            return None
        encodings.append(encoding)
    count = np.frombuffer(struct.pack(">h", len(encodings)), dtype=np.uint8)

    def encode(batch: pa.RecordBatch) -> pa.Buffer:
        return _encode(batch, encodings, count)

    return encode


def _encode(
    batch: pa.RecordBatch, encodings: Sequence[_Fixed | None], count: np.ndarray
) -> pa.Buffer:
    """The rows of ``batch`` as one buffer of binary ``COPY`` rows (no header or trailer)."""
    n = batch.num_rows
    pieces: list[pa.Array] = []
    fixed: list[np.ndarray] = [np.broadcast_to(count, (n, count.size))]
    for column, fixed_width in zip(batch.columns, encodings, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        valid = None if column.null_count == 0 else _valid(column)
        if fixed_width is not None:
            values = fixed_width(column)
            width = values.dtype.itemsize
            data = values.view(np.uint8).reshape(n, width)
            if valid is None:
                fixed += [np.broadcast_to(_length(width), (n, 4)), data]
                continue
            fixed.append(np.where(valid[:, None], _length(width), _NULL))
            pieces += [_fixed_piece(fixed), _masked(data, valid)]
            fixed = []
            continue
        raw = column.cast(pa.large_binary())
        lengths = pc.binary_length(raw).fill_null(0).to_numpy().astype(">i4")
        prefix = lengths.view(np.uint8).reshape(n, 4)
        fixed.append(prefix if valid is None else np.where(valid[:, None], prefix, _NULL))
        pieces += [_fixed_piece(fixed), raw if valid is None else raw.fill_null(b"")]
        fixed = []
    if fixed:
        pieces.append(_fixed_piece(fixed))
    rows = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, _EMPTY)
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    return rows.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def _valid(column: pa.Array) -> np.ndarray:
    return column.is_valid().to_numpy(zero_copy_only=False)


def _length(width: int) -> np.ndarray:
    return np.frombuffer(struct.pack(">i", width), dtype=np.uint8)


def _fixed_piece(parts: list[np.ndarray]) -> pa.Array:
    """Equal-width byte runs side by side, as one binary value per row."""
    matrix = np.ascontiguousarray(np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0])
    n, width = matrix.shape
    offsets = (
        np.arange(0, (n + 1) * width, width, dtype=np.int64) if width else np.zeros(n + 1, np.int64)
    )
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(matrix)]
    )


def _masked(data: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Fixed-width values with nothing for the NULL rows."""
    n, width = data.shape
    lengths = np.where(valid, width, 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.ascontiguousarray(data[valid])
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
    )
