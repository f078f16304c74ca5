"""Arrow values as JSON text with the guide's rules (for JSON / JSONB target columns)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pyarrow as pa
import pytest

from ematix_engine.schema.json_text import _clean, _python_json, json_columns, json_text
from ematix_engine.transform import TransformStage

UTC = dt.UTC


def test_the_guides_list_of_structs() -> None:
    column = pa.array(
        [
            [
                {"strike": 4500, "bid": 1.25, "ask": 1.30},
                {"strike": 4505, "bid": 0.75, "ask": 0.85},
            ],
            [],
            None,
        ]
    )
    assert json_text(column).to_pylist() == [
        '[{"strike":4500,"bid":1.25,"ask":1.3},{"strike":4505,"bid":0.75,"ask":0.85}]',
        "[]",
        None,
    ]


@pytest.mark.parametrize(
    ("values", "arrow_type", "expected"),
    [
        (
            [1.5, float("nan"), float("inf"), float("-inf"), None],
            pa.float64(),
            ["1.5", None, None, None, None],
        ),
        ([0.1, float("nan")], pa.float32(), ["0.1", None]),
        ([b"\x00\xff\x10", b"", None], pa.binary(), ['"00ff10"', '""', None]),
        ([b"\xab\xcd"], pa.large_binary(), ['"abcd"']),
        ([b"\x01\x02"], pa.binary(2), ['"0102"']),
        (
            [dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)],
            pa.timestamp("us", "UTC"),
            ['"2024-05-01T12:00:00.123456Z"'],
        ),
        (
            [dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))],
            pa.timestamp("s", "Europe/Paris"),
            ['"2024-05-01T12:00:00Z"'],
        ),
        ([dt.datetime(2024, 5, 1, 12, 0)], pa.timestamp("ms"), ['"2024-05-01T12:00:00.000Z"']),
        ([dt.date(2024, 5, 1)], pa.date32(), ['"2024-05-01"']),
        ([2**63 - 1, -5], pa.int64(), ["9223372036854775807", "-5"]),
        ([2**64 - 1], pa.uint64(), ["18446744073709551615"]),
        ([True, False, None], pa.bool_(), ["true", "false", None]),
        (['a"b\n\u00e9'], pa.string(), ['"a\\"b\\n\u00e9"']),
        ([decimal.Decimal("1.10")], pa.decimal128(10, 2), ["1.1"]),
        (
            [decimal.Decimal("123456789012345678901234567.89")],
            pa.decimal128(38, 2),
            ['"123456789012345678901234567.89"'],
        ),
    ],
)
def test_leaf_rules(values: list, arrow_type: pa.DataType, expected: list) -> None:
    assert json_text(pa.array(values, arrow_type)).to_pylist() == expected


def test_rules_apply_inside_nested_values() -> None:
    column = pa.array(
        [
            {
                "price": float("nan"),
                "raw": b"\xbe\xef",
                "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                "tags": ["a", None],
                "inner": {"x": float("inf"), "y": 2},
            },
            None,
        ]
    )
    text = json_text(column).to_pylist()
    assert text[1] is None
    assert json.loads(text[0]) == {
        "price": None,
        "raw": "beef",
        "at": "2024-01-02T03:04:05.000000Z",
        "tags": ["a", None],
        "inner": {"x": None, "y": 2},
    }


def test_sliced_chunked_maps_and_dictionaries() -> None:
    lists = pa.chunked_array([pa.array([[1, 2], [3], None, [None]]).slice(1)])
    assert json_text(lists).to_pylist() == ["[3]", None, "[null]"]
    maps = pa.array([[("k", 1)], [("a", None)]], pa.map_(pa.string(), pa.int64())).slice(1)
    assert json_text(maps).to_pylist() == ['{"a":null}']
    assert json_text(pa.array(["x", None]).dictionary_encode()).to_pylist() == ['"x"', None]


def test_the_python_fallback_follows_the_same_rules() -> None:
    column = pa.array([{"a": [1.5, float("nan")], "b": b"\x01", "c": None}])
    cleaned = _clean(column)
    assert _python_json(cleaned).to_pylist() == json_text(column).to_pylist()


def test_json_columns_encodes_every_nested_column_of_a_transform_result() -> None:
    sql = """
        SELECT k, array_agg(named_struct('v', v, 'at', at)) AS items
        FROM source GROUP BY k ORDER BY k
    """
    at = pa.array([0, 1_000_000], pa.timestamp("us", "UTC"))
    batch = pa.table({"k": [1, 1], "v": [0.5, float("nan")], "at": at})
    with TransformStage(sql, pipeline="agg") as stage:
        out = json_columns(stage.run(batch))
    assert out.schema.field("items").type == pa.string()
    assert json.loads(out.column("items")[0].as_py()) == [
        {"v": 0.5, "at": "1970-01-01T00:00:00.000000Z"},
        {"v": None, "at": "1970-01-01T00:00:01.000000Z"},
    ]
    with pytest.raises(KeyError, match="no column 'nope'"):
        json_columns(out, ["nope"])
