"""Full refresh from Dagster (run tag, resource config) and honest SCD2 row counts."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ematix_dagster import EmatixResource
from ematix_dagster.constants import RUN_TAG_FULL_REFRESH
from example_project.shop import advance_shop

CUSTOMERS = dg.AssetKey.from_user_string("analytics/customer_dim")


def _job(defs: dg.Definitions) -> dg.Definitions:
    job = dg.define_asset_job("customers", selection=dg.AssetSelection.assets(CUSTOMERS))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))


def _versions(data: Path) -> tuple[int, int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE is_current) FROM analytics.customer_dim"
        ).fetchone()


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    events = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    ]
    (materialization,) = [m for m in events if m.asset_key == CUSTOMERS]
    return materialization.metadata


def test_scd2_row_count_is_current_versions_like_the_check(
    example_defs: dg.Definitions, example_data: Path, dagster_instance: dg.DagsterInstance
) -> None:
    defs = _job(example_defs)
    job = defs.resolve_job_def("customers")
    assert job.execute_in_process(instance=dagster_instance).success
    advance_shop(ticks=2)  # customers change tier: closed versions appear

    result = job.execute_in_process(instance=dagster_instance)

    everything, current = _versions(example_data)
    assert everything > current  # there is history to disagree about
    metadata = _metadata(result)
    assert metadata["dagster/row_count"].value == current
    assert metadata["ematix/current_versions"].value == current
    assert metadata["ematix/all_versions"].value == everything
    (check,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_between"
    ]
    assert check.metadata["ematix/detail"].value.startswith(f"{current} row(s)")


@pytest.mark.parametrize("how", ["tag", "config"])
def test_full_refresh_rebuilds_the_scd2_history(
    example_defs: dg.Definitions,
    example_data: Path,
    dagster_instance: dg.DagsterInstance,
    how: str,
) -> None:
    defs = _job(example_defs)
    job = defs.resolve_job_def("customers")
    assert job.execute_in_process(instance=dagster_instance).success
    advance_shop(ticks=2)
    assert job.execute_in_process(instance=dagster_instance).success
    everything, current = _versions(example_data)
    assert everything > current

    if how == "tag":
        result = job.execute_in_process(
            instance=dagster_instance, tags={RUN_TAG_FULL_REFRESH: "true"}
        )
    else:
        result = job.execute_in_process(
            instance=dagster_instance,
            run_config={"resources": {"ematix": {"config": {"full_refresh": True}}}},
        )

    assert result.success
    assert _versions(example_data) == (current, current)  # one version per customer again
    metadata = _metadata(result)
    assert metadata["ematix/full_refresh"].value is True
    assert metadata["ematix/rows_inserted"].value == current
    assert metadata["dagster/row_count"].value == current


def test_a_bad_full_refresh_tag_fails_the_run_naming_the_tag(
    example_defs: dg.Definitions, dagster_instance: dg.DagsterInstance
) -> None:
    job = _job(example_defs).resolve_job_def("customers")

    result = job.execute_in_process(
        instance=dagster_instance, tags={RUN_TAG_FULL_REFRESH: "yes please"}, raise_on_error=False
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert RUN_TAG_FULL_REFRESH in str(failure.event_specific_data.error)
    # A bad tag is a configuration error: the step is not retried (the pipeline allows 3 tries).
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_resource_documents_its_full_refresh_setting() -> None:
    assert EmatixResource(full_refresh=True).full_refresh is True
