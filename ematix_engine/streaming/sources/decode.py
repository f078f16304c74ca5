"""Kafka payloads to Arrow: a whole batch at once, message by message only to find bad ones.

JSON payloads are joined with newlines and decoded by one ``pyarrow.json.read_json`` call (no
per-message ``json.loads``). When that fails, or returns a different number of rows than
messages (an empty payload, two documents in one), each message is decoded on its own to find
the bad ones; the types are then held to what the good messages so far established, so a
field that changes type is caught on the message that changes it. An ``expected`` schema (the
target's column types) is enforced the same way: a value that does not fit is a bad message.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

__all__ = ["Decoded", "decode_json", "missing_required"]

_NEWLINE = b"\n"
#: Bytes of JSON lines one parser thread takes at a time: a batch of several blocks is parsed
#: on every core (a single block would be parsed by one thread, about twice as long).
_BLOCK_BYTES = 1 << 20


@dataclass(slots=True)
class Decoded:
    """Rows decoded from a batch of payloads.

    Attributes:
        table: one row per good payload, in order.
        good: indices (into the payloads) of the rows of ``table``.
        bad: ``(index, reason)`` of each payload that could not be decoded.
    """

    table: pa.Table
    good: list[int] | None
    bad: list[tuple[int, str]]


def _read(data: bytes, schema: pa.Schema | None, longest: int | None = None) -> pa.Table:
    """Parse JSON lines; ``longest``: the longest line's length (default: the whole data)."""
    parse = pj.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=False
    )
    # A block must hold every line whole.
    block = max(_BLOCK_BYTES, (len(data) if longest is None else longest) + 1)
    read = pj.ReadOptions(block_size=block, use_threads=True)
    return pj.read_json(io.BytesIO(data), read_options=read, parse_options=parse)


def decode_json(payloads: Sequence[bytes | None], expected: pa.Schema | None = None) -> Decoded:
    """Decode JSON-object payloads into one Arrow table.

    Args:
        payloads: one JSON object per message (None: a tombstone, which is a bad message).
        expected: types the fields must have (others are inferred).

    Returns:
        The rows and the bad payloads; ``good`` is None when every payload decoded.
    """
    try:
        joined = _NEWLINE.join(payloads)  # type: ignore[arg-type]
    except TypeError:  # a None (tombstone) among them: decoded one by one below
        joined = None
    if joined is not None:
        if joined.count(_NEWLINE) != len(payloads) - 1:  # newlines inside (pretty-printed) JSON
            joined = _NEWLINE.join(p.replace(b"\n", b" ").replace(b"\r", b" ") for p in payloads)  # type: ignore[union-attr]
        try:
            table = _read(joined, expected, max(map(len, payloads), default=0))  # type: ignore[arg-type]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
        if table is not None and table.num_rows == len(payloads):
            return Decoded(table, None, [])
    return _decode_one_by_one(payloads, expected)


def _decode_one_by_one(payloads: Sequence[bytes | None], expected: pa.Schema | None) -> Decoded:
    hint = list(expected) if expected is not None else []
    known = {f.name for f in hint}
    tables, good, bad = [], [], []
    for index, payload in enumerate(payloads):
        if payload is None or not payload.strip():
            bad.append((index, "empty payload (not a JSON object)"))
            continue
        data = payload.replace(b"\n", b" ").replace(b"\r", b" ")
        try:
            table = _read(data, pa.schema(hint) if hint else None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            bad.append((index, f"not valid JSON for the expected columns: {error}"))
            continue
        if table.num_rows != 1:
            bad.append((index, f"expected one JSON object, found {table.num_rows}"))
            continue
        for field in table.schema:
            if field.name not in known and not pa.types.is_null(field.type):
                hint.append(field)
                known.add(field.name)
        tables.append(table)
        good.append(index)
    if not tables:
        return Decoded(pa.table({}), good, bad)
    table = pa.concat_tables(tables, promote_options="permissive").combine_chunks()
    if table.num_rows != len(tables):  # objects without fields ({}): the concat lost their rows
        empty = pa.array([{}] * len(tables), pa.struct([]))
        table = pa.Table.from_batches([pa.RecordBatch.from_struct_array(empty)])
    return Decoded(table, good, bad)


def missing_required(table: pa.Table, required: Sequence[str]) -> tuple[pa.Array | None, str]:
    """Rows lacking a required field: a boolean mask (None: none lack one) and the first field."""
    mask = None
    first = ""
    for name in required:
        if name not in table.column_names:
            return pa.repeat(pa.scalar(True), table.num_rows), name
        nulls = pc.is_null(table.column(name))
        if pc.any(nulls).as_py():
            first = first or name
            mask = nulls if mask is None else pc.or_(mask, nulls)
    return mask, first
