"""`make dev` works: `dagster dev` serves the example workspace and materializes its asset."""

from __future__ import annotations

from pathlib import Path

import duckdb

from example_project.definitions import GREETINGS
from tests.fixtures.dagster_dev import DagsterDevServer

REPO_ROOT = Path(__file__).resolve().parents[2]
HELLO_KEY = ["main", "hello_table"]


def test_dagster_dev_serves_and_materializes_example(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = DagsterDevServer(
        workspace=REPO_ROOT / "workspace.yaml",
        home=tmp_path / "dagster_home",
        log_path=tmp_path / "dagster_dev.log",
        env={"EMATIX_DATA_DIR": str(data_dir)},
    )
    with server:
        assert "dagster_webserver_version" in server.server_info()
        keys = [node["assetKey"]["path"] for node in server.asset_nodes()]
        assert HELLO_KEY in keys, server.error(f"asset {HELLO_KEY} missing from {keys}")

        run_id = server.launch_assets([HELLO_KEY])
        status = server.wait_for_run(run_id, timeout=90)
        assert status == "SUCCESS", server.error(
            f"run {run_id} ended {status}: " + " | ".join(server.run_messages(run_id)[-20:])
        )

        node = next(n for n in server.asset_nodes() if n["assetKey"]["path"] == HELLO_KEY)
        (latest,) = node["assetMaterializations"]
        assert latest["runId"] == run_id
        entries = {e["label"]: e for e in latest["metadataEntries"]}
        assert entries["dagster/row_count"]["intValue"] == len(GREETINGS)

    with duckdb.connect(str(data_dir / "example.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM main.hello_table").fetchone() == (len(GREETINGS),)
