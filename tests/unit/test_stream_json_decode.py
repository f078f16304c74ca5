"""Whole-batch JSON decoding of message payloads, and the one-by-one fallback for bad ones."""

from __future__ import annotations

import pyarrow as pa

from ematix_engine.streaming.sources.decode import decode_json


def test_a_clean_batch_decodes_at_once() -> None:
    decoded = decode_json([b'{"id": 1, "name": "a"}', b'{"id": 2, "name": "b"}'])
    assert decoded.good is None and decoded.bad == []
    assert decoded.table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_tombstones_and_bad_payloads_are_named_the_rest_lands() -> None:
    decoded = decode_json([b'{"id": 1}', None, b"not json", b'{"id": 4}'])
    assert decoded.good == [0, 3]
    assert [i for i, _ in decoded.bad] == [1, 2]
    assert "empty payload" in decoded.bad[0][1]
    assert decoded.table.column("id").to_pylist() == [1, 4]


def test_objects_without_fields_keep_their_rows_beside_a_bad_payload() -> None:
    decoded = decode_json([b"{}", None, b"{}"])
    assert decoded.good == [0, 2]
    assert decoded.table.num_rows == 2 and decoded.table.num_columns == 0


def test_pretty_printed_objects_and_expected_types() -> None:
    expected = pa.schema([pa.field("id", pa.int32())])
    decoded = decode_json([b'{\n  "id": 1\n}', b'{"id": 2}'], expected)
    assert decoded.good is None
    assert decoded.table.schema.field("id").type == pa.int32()
    assert decoded.table.column("id").to_pylist() == [1, 2]


def test_a_batch_spanning_many_parse_blocks_and_a_payload_larger_than_a_block() -> None:
    """Batches are parsed a block at a time on every core; no payload is too long for that."""
    small = [b'{"id": %d, "v": "x"}' % i for i in range(100_000)]  # several 1 MiB blocks
    huge = b'{"id": -1, "v": "' + b"y" * (3 << 20) + b'"}'  # longer than a block
    decoded = decode_json([*small[:50_000], huge, *small[50_000:]])
    assert decoded.good is None and decoded.bad == []
    assert decoded.table.num_rows == 100_001
    assert decoded.table.column("id").to_pylist()[49_999:50_002] == [49_999, -1, 50_000]
    assert len(decoded.table.column("v")[50_000].as_py()) == 3 << 20
