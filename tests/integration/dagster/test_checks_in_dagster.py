"""Asset checks in Dagster: a corrupted table shows failed checks; a check-only run works."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb


def _key(text: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(text)


def test_corrupted_tables_show_failed_checks(
    example_defs: dg.Definitions, example_data: Path, dagster_instance: dg.DagsterInstance
) -> None:
    load = dg.define_asset_job(
        "load_customers", selection=dg.AssetSelection.assets(_key("analytics/customer_dim"))
    )
    checks_only = dg.define_asset_job(
        "check_customers",
        selection=dg.AssetSelection.checks_for_assets(_key("analytics/customer_dim")),
    )
    defs = dg.Definitions.merge(example_defs, dg.Definitions(jobs=[load, checks_only]))
    assert (
        defs.resolve_job_def("load_customers").execute_in_process(instance=dagster_instance).success
    )

    with duckdb.connect(str(example_data / "warehouse.duckdb")) as conn:
        conn.execute(
            """
            INSERT INTO analytics.customer_dim
            SELECT * REPLACE ('platinum' AS tier, NULL AS email,
                              valid_from + INTERVAL 1 HOUR AS valid_from)
            FROM analytics.customer_dim WHERE customer_id = 1
            """
        )

    result = defs.resolve_job_def("check_customers").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    outcomes = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(outcomes) == {
        "scd2_one_current_per_key",
        "scd2_no_overlap_or_gap",
        "not_null_email",
        "accepted_values_tier",
        "row_count_between",
    }
    assert not outcomes["scd2_one_current_per_key"].passed
    assert not outcomes["scd2_no_overlap_or_gap"].passed
    assert not outcomes["accepted_values_tier"].passed
    assert outcomes["accepted_values_tier"].severity is dg.AssetCheckSeverity.ERROR
    assert not outcomes["not_null_email"].passed
    assert outcomes["not_null_email"].severity is dg.AssetCheckSeverity.WARN
    assert outcomes["row_count_between"].passed
    metadata = outcomes["scd2_one_current_per_key"].metadata
    assert metadata["ematix/failing_count"].value == 1
    assert metadata["ematix/sample"].value == [{"customer_id": 1, "current_versions": 2}]

    # What the UI shows: the latest evaluation of each check, read from the instance.
    records = dagster_instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(_key("analytics/customer_dim"), "scd2_one_current_per_key"), limit=1
    )
    assert records[0].evaluation.passed is False
