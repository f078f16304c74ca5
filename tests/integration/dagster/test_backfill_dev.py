"""A backfill launched as the UI launches it, on a real `dagster dev` (webserver and daemon).

The backfill over 2024-01-02..2024-01-04 of a daily-partitioned pipeline becomes one run
(``BackfillPolicy.single_run()``) that loads the three days in one write; the asset then shows
those partitions materialized.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import duckdb

from tests.fixtures.dagster_dev import DagsterDevServer

REPO_ROOT = Path(__file__).resolve().parents[3]

DEFS = """
import os
from typing import Annotated

from ematix_dagster import build_definitions
from ematix_engine import DuckDBConnection, ematix, pk
from ematix_engine.types import BigInt, Date, Text

shop = DuckDBConnection(name="shop", path=os.environ["EMATIX_TEST_SHOP"])


@ematix.table(schema="main", connection=shop)
class Orders:
    id: Annotated[BigInt, pk()]
    order_date: Date
    region: Text | None


@ematix.pipeline(
    target=Orders,
    mode="merge",
    partitions=ematix.daily("order_date", start="2024-01-01", end="2024-01-05"),
)
def orders(conn):
    return "SELECT id, order_date, region FROM raw_orders"


defs = build_definitions([orders])
"""

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}
"""

BACKFILL_RUNS = """
query Runs($id: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status } }
  }
}
"""

PARTITION_STATS = """
query Stats($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { partitionStats { numMaterialized numPartitions } }
  }
}
"""


def test_a_backfill_from_the_ui_is_one_run_over_the_range(tmp_path: Path) -> None:
    shop = tmp_path / "shop.duckdb"
    with duckdb.connect(str(shop)) as con:
        con.execute(
            "CREATE TABLE raw_orders AS SELECT * FROM (VALUES (1, DATE '2024-01-01', 'eu'), "
            "(2, DATE '2024-01-02', 'us'), (3, DATE '2024-01-03', 'eu'), "
            "(4, DATE '2024-01-04', 'us')) AS t(id, order_date, region)"
        )
    (tmp_path / "defs.py").write_text(textwrap.dedent(DEFS))
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n      working_directory: .\n"
    )
    server = DagsterDevServer(
        workspace=tmp_path / "workspace.yaml",
        home=tmp_path / "dagster_home",
        log_path=tmp_path / "dagster_dev.log",
        env={"EMATIX_TEST_SHOP": str(shop), "PYTHONPATH": str(REPO_ROOT)},
        daemon_interval_seconds=1,  # the backfill daemon would otherwise tick every 30 s
    )
    with server:
        params = {
            "assetSelection": [{"path": ["main", "orders"]}],
            "partitionNames": ["2024-01-02", "2024-01-03", "2024-01-04"],
        }
        launched = server.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", server.error(str(launched))
        backfill_id = launched["backfillId"]

        deadline, status = time.monotonic() + 180, ""
        while time.monotonic() < deadline:
            answer = server.graphql(BACKFILL_STATUS, {"id": backfill_id})
            status = answer["partitionBackfillOrError"].get("status", "")
            if status in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED"):
                break
            time.sleep(0.25)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), server.error(f"backfill {status}")

        runs = server.graphql(BACKFILL_RUNS, {"id": backfill_id})["runsOrError"]["results"]
        assert [run["status"] for run in runs] == ["SUCCESS"]  # a single run for the range
        stats = server.graphql(PARTITION_STATS, {"key": {"path": ["main", "orders"]}})
        assert stats["assetNodeOrError"]["partitionStats"] == {
            "numMaterialized": 3,
            "numPartitions": 4,
        }

    with duckdb.connect(str(shop)) as con:
        assert con.sql("SELECT id FROM main.orders ORDER BY id").fetchall() == [(2,), (3,), (4,)]
