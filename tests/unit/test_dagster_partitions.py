"""Engine partitions and their Dagster twins have the same keys and windows."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from ematix_dagster.partitions import backfill_policy_for, partitions_def_for
from ematix_engine import ematix
from ematix_engine.specs import PipelineSpec, SqlSource


def _spec(partitions) -> PipelineSpec:
    return PipelineSpec(name="p", targets=(), source=SqlSource(query=str), partitions=partitions)


@pytest.mark.parametrize(
    ("partitions", "kind"),
    [
        (ematix.hourly("ts", start="2024-01-01", end="2024-01-01T05:00"), "Hourly"),
        (ematix.daily("day", start="2024-01-30", end="2024-02-03"), "Daily"),
        (ematix.monthly("day", start="2023-11-01", end="2024-03-01"), "Monthly"),
    ],
    ids=["hourly", "daily", "monthly"],
)
def test_time_windows_match_dagsters(partitions, kind: str) -> None:
    definition = partitions_def_for(_spec(partitions))
    assert type(definition).__name__ == f"{kind}PartitionsDefinition"
    keys = partitions.keys(until=datetime(2030, 1, 1, tzinfo=UTC))
    assert definition.get_partition_keys() == keys
    for key in keys:
        window = definition.time_window_for_partition_key(key)
        part = partitions.partition(key)
        assert (window.start.timestamp(), window.end.timestamp()) == (
            part.start.timestamp(),
            part.end.timestamp(),
        )
    assert backfill_policy_for(_spec(partitions)) == dg.BackfillPolicy.single_run()


def test_static_values_are_static_partitions() -> None:
    spec = _spec(ematix.static("region", ["eu", "us"]))
    assert partitions_def_for(spec).get_partition_keys() == ["eu", "us"]
    assert backfill_policy_for(spec) == dg.BackfillPolicy.multi_run(1)


def test_unpartitioned_pipelines_have_neither() -> None:
    assert partitions_def_for(_spec(None)) is None
    assert backfill_policy_for(_spec(None)) is None
