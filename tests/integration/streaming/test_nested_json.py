"""Arrow lists and structs into JSON columns, with the guide's rendering rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import pyarrow as pa
import pytest

from ematix_engine import MemorySource, SchemaDriftError, Target, ematix, pk, run_streaming_pipeline
from ematix_engine.types import BigInt, Text
from tests.integration.streaming.conftest import Store

STRIKE = pa.struct(
    [
        ("strike", pa.int64()),
        ("bid", pa.float64()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("raw", pa.binary()),
    ]
)


def _rows() -> pa.Table:
    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    strikes = [
        [
            {"strike": 4500, "bid": 1.25, "at": at, "raw": b"\x01\xff"},
            {"strike": 4505, "bid": float("nan"), "at": None, "raw": None},
        ],
        None,
    ]
    return pa.table(
        {
            "minute": pa.array([1, 2], pa.int64()),
            "strikes": pa.array(strikes, pa.list_(STRIKE)),
            "meta": pa.array(
                [{"inf": float("inf")}, {"inf": 1.0}], pa.struct([("inf", pa.float64())])
            ),
        }
    )


def test_lists_and_structs_land_as_json(store: Store, pipeline_name: str) -> None:
    run_streaming_pipeline(
        name=pipeline_name,
        source=MemorySource("chains", _rows()),
        target=store.connection,
        target_table=store.table("chains"),
        exit_when_idle=True,
    )
    table = store.read("chains").sort_by("minute")
    strikes = table.column("strikes").to_pylist()
    first = strikes[0] if isinstance(strikes[0], list) else json.loads(strikes[0])
    assert first == [
        {"strike": 4500, "bid": 1.25, "at": "2026-01-02T03:04:05.600000Z", "raw": "01ff"},
        {"strike": 4505, "bid": None, "at": None, "raw": None},
    ]
    assert strikes[1] is None
    meta = [
        m if isinstance(m, dict) or m is None else json.loads(m)
        for m in table.column("meta").to_pylist()
    ]
    assert meta == [{"inf": None}, {"inf": 1.0}]


@ematix.table(schema="main", name="not_json")
class NotJson:
    minute: Annotated[BigInt, pk()]
    strikes: Text | None


def test_a_list_into_a_non_json_column_names_the_column(tmp_path, pipeline_name: str) -> None:
    from ematix_engine import DuckDBConnection

    duck = DuckDBConnection(name="d", path=str(tmp_path / "d.duckdb"))
    with pytest.raises(SchemaDriftError, match=r"not_json\.strikes.*declare it Json"):
        run_streaming_pipeline(
            name=pipeline_name,
            source=MemorySource("chains", _rows().drop_columns(["meta"])),
            targets=[Target(connection=duck, table=NotJson)],
            exit_when_idle=True,
        )
