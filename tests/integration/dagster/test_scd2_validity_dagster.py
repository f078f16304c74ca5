"""An SCD2 asset with renamed validity columns and a ``current_valid_to`` sentinel in Dagster:
the column schema shows the names, the built-in asset checks pass, the row counts are right."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import dagster as dg
import duckdb

from ematix_dagster import EmatixResource, build_definitions
from ematix_engine import DuckDBConnection, ematix, pk
from ematix_engine.types import BigInt, Text


def test_renamed_validity_columns_and_sentinel_in_dagster(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    path = str(tmp_path / "shop.duckdb")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE main.raw AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(id, name)"
        )
    connection = DuckDBConnection(name=f"shop_{uuid.uuid4().hex[:8]}", path=path)

    @ematix.table(schema="main", name="dim", connection=connection)
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(
        target=Dim,
        mode="scd2",
        deletes="new_record",
        validity_columns={"valid_from": "start_at", "valid_to": "end_at", "is_current": "live"},
        current_valid_to="9999-12-31",
    )
    def dim(conn):
        return "SELECT id, name FROM main.raw"

    defs = build_definitions([dim])
    (spec,) = defs.assets[0].specs
    columns = {c.name: c.description for c in spec.metadata["dagster/column_schema"].columns}
    assert {"start_at", "end_at", "live", "is_deleted"} <= set(columns)
    assert not {"valid_from", "valid_to", "is_current"} & set(columns)
    assert columns["end_at"].endswith("9999-12-31T00:00:00+00:00 if current")

    resources = {"ematix": EmatixResource()}
    assert dg.materialize(defs.assets, resources=resources, instance=dagster_instance).success
    with duckdb.connect(path) as con:
        con.execute(
            "UPDATE main.raw SET name = 'a2' WHERE id = 1; DELETE FROM main.raw WHERE id = 2"
        )
    result = dg.materialize(defs.assets, resources=resources, instance=dagster_instance)

    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"scd2_one_current_per_key": True, "scd2_no_overlap_or_gap": True}
    (materialization,) = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    metadata = materialization.metadata
    # key 1: two versions; key 2: its version and the current tombstone
    assert metadata["ematix/all_versions"].value == 4
    assert metadata["ematix/current_versions"].value == 2
