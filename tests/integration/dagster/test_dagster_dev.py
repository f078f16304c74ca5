"""`make dev` works: `dagster dev` serves the example with lineage and materializes the SCD2 asset."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.fixtures.dagster_dev import DagsterDevServer

REPO_ROOT = Path(__file__).resolve().parents[3]
SCD2_KEY = ["analytics", "customer_dim"]

LINEAGE_QUERY = """
query Lineage {
  assetNodes {
    assetKey { path }
    groupName
    kinds
    dependencyKeys { path }
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } }
  }
}
"""

METADATA_QUERY = """
query Latest($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetMaterializations(limit: 1) {
        runId
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on TextMetadataEntry { text }
          ... on TableSchemaMetadataEntry { schema { columns { name } } }
        }
      }
    }
  }
}
"""


def _path(key: dict) -> str:
    return "/".join(key["path"])


def test_dagster_dev_serves_lineage_and_materializes_scd2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = DagsterDevServer(
        workspace=REPO_ROOT / "workspace.yaml",
        home=tmp_path / "dagster_home",
        log_path=tmp_path / "dagster_dev.log",
        env={"EMATIX_DATA_DIR": str(data_dir)},
    )
    with server:
        nodes = {_path(n["assetKey"]): n for n in server.graphql(LINEAGE_QUERY)["assetNodes"]}
        edges = {(_path(d), key) for key, n in nodes.items() for d in n["dependencyKeys"]}
        assert {
            ("shop/customers", "analytics/customer_dim"),
            ("shop/orders", "analytics/orders"),
            ("analytics/customer_dim", "analytics/daily_revenue"),
            ("analytics/orders", "analytics/daily_revenue"),
            ("shop/orders", "archive/orders"),
            ("shop/orders", "archive/order_changes"),
            ("shop/products", "analytics/product_dim"),
        } <= edges, server.error(f"lineage edges: {sorted(edges)}")
        dim = nodes["analytics/customer_dim"]
        assert dim["groupName"] == "analytics" and set(dim["kinds"]) == {"duckdb", "ematix"}
        checks = {c["name"]: c["blocking"] for c in dim["assetChecksOrError"]["checks"]}
        assert checks["scd2_one_current_per_key"] is True
        assert nodes["analytics/product_dim"]["groupName"] == "catalog"

        run_id = server.launch_assets([SCD2_KEY])
        status = server.wait_for_run(run_id, timeout=60)
        assert status == "SUCCESS", server.error(
            f"run {run_id} ended {status}: " + " | ".join(server.run_messages(run_id)[-20:])
        )
        answer = server.graphql(METADATA_QUERY, {"key": {"path": SCD2_KEY}})["assetNodeOrError"]
        (latest,) = answer["assetMaterializations"]
        assert latest["runId"] == run_id
        entries = {e["label"]: e for e in latest["metadataEntries"]}
        assert entries["ematix/mode"]["text"] == "scd2"
        row_count = entries["dagster/row_count"]["intValue"]
        assert entries["ematix/rows_inserted"]["intValue"] == row_count == 20
        columns = [c["name"] for c in entries["dagster/column_schema"]["schema"]["columns"]]
        assert "is_current" in columns

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM analytics.customer_dim").fetchone()
    assert count == row_count
