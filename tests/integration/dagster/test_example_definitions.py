"""The example project's definitions, asserted exactly: keys, deps, checks, schedules, retries."""

from __future__ import annotations

import dagster as dg

from ematix_dagster.constants import RESOURCE_KEY

SHOP = {"shop/customers", "shop/orders", "shop/products"}
EXPECTED_DEPS = {
    "shop/customers": set(),
    "shop/orders": set(),
    "shop/products": set(),
    "analytics/customer_dim": {"shop/customers"},
    "analytics/orders": {"shop/orders"},
    "analytics/daily_revenue": {"analytics/customer_dim", "analytics/orders"},
    "analytics/product_dim": {"shop/products"},
    "archive/orders": {"shop/orders"},
    "archive/order_changes": {"shop/orders"},
}
EXPECTED_CHECKS = {
    "analytics/customer_dim": [
        "scd2_one_current_per_key",
        "scd2_no_overlap_or_gap",
        "not_null_email",
        "accepted_values_tier",
        "row_count_between",
    ],
    "analytics/orders": [
        "keys_unique",
        "not_null_customer_id",
        "accepted_values_status",
        "row_count_between",
    ],
    "analytics/daily_revenue": ["keys_unique", "row_count_between", "revenue_not_negative"],
    "analytics/product_dim": [
        "scd2_one_current_per_key",
        "scd2_no_overlap_or_gap",
        "not_null_price",
        "row_count_between",
    ],
    "archive/orders": ["keys_unique", "not_null_order_id", "accepted_values_status"],
    "archive/order_changes": ["not_null_order_id", "accepted_values_status"],
}
#: The shop_source multi-asset: each schedule whose pipelines read the shop runs it whole.
SHOP = {"shop/customers", "shop/orders", "shop/products"}
EXPECTED_SCHEDULES = {
    "customer_dim_and_orders_archive_schedule": (
        "0 * * * *",
        {"analytics/customer_dim", "archive/orders", "archive/order_changes", *SHOP},
    ),
    "orders_schedule": ("*/15 * * * *", {"analytics/orders", *SHOP}),
    # Reads only ematix assets: no shop asset feeds it directly.
    "daily_revenue_schedule": ("0 6 * * *", {"analytics/daily_revenue"}),
    "product_dim_schedule": ("0 2 * * *", {"analytics/product_dim", *SHOP}),
}
EXPECTED_RETRIES = {
    "analytics/customer_dim": dg.RetryPolicy(
        max_retries=2, delay=10.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
    "analytics/orders": dg.RetryPolicy(max_retries=1, delay=5.0, backoff=dg.Backoff.EXPONENTIAL),
    "analytics/daily_revenue": None,
    # backoff_factor 3: Dagster cannot express it, the resource requests each retry itself.
    "archive/orders": None,
    "analytics/product_dim": dg.RetryPolicy(
        max_retries=1, delay=15.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
}


def _key(text: str) -> dg.AssetKey:
    return dg.AssetKey.from_user_string(text)


def test_definitions_load(example_defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(example_defs)
    assert RESOURCE_KEY in example_defs.resources


def test_asset_keys_and_deps_exactly(example_defs: dg.Definitions) -> None:
    graph = example_defs.resolve_asset_graph()
    deps = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert deps == EXPECTED_DEPS


def test_groups_kinds_owners_and_code_references(example_defs: dg.Definitions) -> None:
    graph = example_defs.resolve_asset_graph()
    node = graph.get(_key("analytics/customer_dim"))
    assert node.group_name == "analytics"
    assert node.kinds == {"duckdb", "ematix"}
    assert node.owners == ["team:analytics"]
    assert node.tags["domain"] == "customers"
    assert node.description.startswith("Customers with their full history")
    refs = node.metadata["dagster/code_references"].code_references
    assert refs[0].file_path.endswith("example_project/pipelines.py")
    assert refs[0].line_number > 1
    assert node.metadata["dagster/table_name"] == "analytics.customer_dim"
    columns = [c.name for c in node.metadata["dagster/column_schema"].columns]
    assert columns[:3] == ["customer_id", "name", "email"]
    assert {"valid_from", "valid_to", "is_current", "row_hash"} <= set(columns)
    assert graph.get(_key("archive/orders")).kinds == {"delta", "ematix"}
    catalog = graph.get(_key("analytics/product_dim"))
    assert catalog.group_name == "catalog"
    assert catalog.owners == ["team:catalog"]
    assert catalog.tags["ematix_mode"] == "scd2"


def test_column_lineage_from_sql(example_defs: dg.Definitions) -> None:
    node = example_defs.resolve_asset_graph().get(_key("analytics/daily_revenue"))
    lineage = node.metadata["dagster/column_lineage"].deps_by_column
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["revenue"]} == {
        ("analytics/orders", "quantity"),
        ("analytics/orders", "unit_price"),
    }
    assert [(d.asset_key.to_user_string(), d.column_name) for d in lineage["country"]] == [
        ("analytics/customer_dim", "country")
    ]
    assert "orders" not in lineage  # COUNT(*) has no source column


def test_checks_exactly(example_defs: dg.Definitions) -> None:
    graph = example_defs.resolve_asset_graph()
    found: dict[str, list[str]] = {}
    blocking: dict[str, bool] = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        found.setdefault(check_key.asset_key.to_user_string(), []).append(check_key.name)
        blocking[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = spec.blocking
    assert {k: sorted(v) for k, v in found.items()} == {
        k: sorted(v) for k, v in EXPECTED_CHECKS.items()
    }
    assert blocking["analytics/customer_dim:scd2_one_current_per_key"] is True
    assert blocking["analytics/customer_dim:scd2_no_overlap_or_gap"] is True
    assert blocking["analytics/orders:keys_unique"] is True
    assert blocking["analytics/orders:not_null_customer_id"] is False


def test_schedules_exactly(example_defs: dg.Definitions) -> None:
    repo = example_defs.get_repository_def()
    found = {}
    for schedule in repo.schedule_defs:
        keys = repo.get_job(schedule.job_name).asset_layer.selected_asset_keys
        found[schedule.name] = (schedule.cron_schedule, {k.to_user_string() for k in keys})
    assert found == EXPECTED_SCHEDULES


def test_retry_policies_exactly(example_defs: dg.Definitions) -> None:
    for key, expected in EXPECTED_RETRIES.items():
        assert example_defs.resolve_assets_def(_key(key)).op.retry_policy == expected, key


def test_alert_sensors(example_defs: dg.Definitions) -> None:
    names = {s.name for s in example_defs.sensors}
    assert names == {"ematix_failure_alerts", "ematix_recovery_alerts"}


def test_fan_out_is_one_multi_asset_that_can_subset(example_defs: dg.Definitions) -> None:
    archive = example_defs.resolve_assets_def(_key("archive/orders"))
    assert archive.keys == {_key("archive/orders"), _key("archive/order_changes")}
    assert archive.can_subset
    assert archive.op.name == "orders_archive"


def test_a_scheduled_run_loads_new_shop_data(
    example_defs: dg.Definitions, dagster_instance: dg.DagsterInstance
) -> None:
    from example_project.shop import table_counts

    repo = example_defs.get_repository_def()
    schedule = next(s for s in repo.schedule_defs if s.name == "orders_schedule")
    job = repo.get_job(schedule.job_name)
    before = table_counts()["orders"]

    results = [job.execute_in_process(instance=dagster_instance) for _ in range(2)]

    assert all(r.success for r in results)
    assert table_counts()["orders"] > before  # the shop advanced a day per scheduled run
    inserted = [
        m.metadata["ematix/rows_inserted"].value
        for r in results
        for m in r.asset_materializations_for_node("orders")
    ]
    assert inserted[1] > 0  # the second run found new orders, not an unchanged shop
