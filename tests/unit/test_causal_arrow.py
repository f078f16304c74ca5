"""CausalSpec + events_from_batch: Arrow rows become events, column by column."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from ematix_engine.causal import (
    CausalConfigError,
    CausalSpec,
    InMemoryEventSource,
    StreamProcessor,
    events_from_batch,
)

SPEC = CausalSpec(id_column="id", caused_by_column="causes", name_column="kind", source="kafka")


def batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "id": ["r1", "a1", "x"],
            "kind": ["Sensor.reading", "Alerter.alert", "Other"],
            "causes": [None, ["r1"], []],
            "temperature": [104.5, None, 3.0],
            "at": pa.array(
                [datetime(2026, 1, 1, tzinfo=UTC)] * 3, type=pa.timestamp("ms", tz="UTC")
            ),
        }
    )


def test_rows_become_events() -> None:
    events = events_from_batch(batch(), SPEC)
    assert [(e.id, e.name, e.caused_by, e.source) for e in events] == [
        ("r1", "Sensor.reading", (), "kafka"),
        ("a1", "Alerter.alert", ("r1",), "kafka"),
        ("x", "Other", (), "kafka"),
    ]
    assert events[0].data == {"temperature": 104.5, "at": datetime(2026, 1, 1, tzinfo=UTC)}


def test_timestamp_column_and_selected_data_columns() -> None:
    spec = CausalSpec(
        id_column="id",
        caused_by_column="causes",
        name_column="kind",
        timestamp_column="at",
        data_columns=("temperature",),
    )
    events = events_from_batch(batch(), spec)
    assert events[0].timestamp == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert events[1].data == {"temperature": None}


def test_single_id_causes_and_errors() -> None:
    single = pa.RecordBatch.from_pydict(
        {"id": ["a", "b"], "kind": ["A", "B"], "causes": [None, "a"]}
    )
    assert events_from_batch(single, SPEC)[1].caused_by == ("a",)
    with pytest.raises(CausalConfigError, match="'nope' is not in the batch"):
        events_from_batch(
            single, CausalSpec(id_column="nope", caused_by_column="causes", name_column="kind")
        )
    with pytest.raises(CausalConfigError, match="column name"):
        CausalSpec(id_column="", caused_by_column="c", name_column="k")


def test_events_from_a_batch_feed_the_processor() -> None:
    processor = StreamProcessor()
    pairs: list[tuple[str, str]] = []
    processor.watch(("Sensor.reading", "Alerter.alert"), lambda a, b: pairs.append((a.id, b.id)))
    source = InMemoryEventSource("rows")
    processor.add_source("rows", source)
    source.extend(events_from_batch(batch(), SPEC))
    source.close()
    asyncio.run(processor.run())
    assert pairs == [("r1", "a1")]
