"""The example project's Dagster definitions, loaded by `workspace.yaml` (`make dev`).

For now it holds one trivial asset; the ematix pipelines join it as the Dagster integration
lands. Data files go to `EMATIX_DATA_DIR` (default: `<repo>/.data`).
"""

# No `from __future__ import annotations` here: Dagster inspects the `context` annotation at
# definition time and rejects it as a string.
import os
from pathlib import Path

import dagster as dg
import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Return the folder for the example's DuckDB/SQLite files, creating it if needed."""
    path = Path(os.environ.get("EMATIX_DATA_DIR") or REPO_ROOT / ".data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def duckdb_path() -> Path:
    """Return the example's DuckDB database file."""
    return data_dir() / "example.duckdb"


GREETINGS = [
    (1, "hello", "en"),
    (2, "bonjour", "fr"),
    (3, "hola", "es"),
    (4, "hallo", "de"),
]


@dg.asset(
    key=["main", "hello_table"],
    group_name="example",
    kinds={"duckdb"},
    description="A small greetings table written to the example DuckDB file.",
)
def hello_table(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    path = duckdb_path()
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE OR REPLACE TABLE main.hello_table "
            "(id INTEGER PRIMARY KEY, greeting VARCHAR NOT NULL, lang VARCHAR NOT NULL)"
        )
        conn.executemany("INSERT INTO main.hello_table VALUES (?, ?, ?)", GREETINGS)
        (row_count,) = conn.execute("SELECT count(*) FROM main.hello_table").fetchone()
    context.log.info("wrote %s rows to %s", row_count, path)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": row_count,
            "dagster/table_name": f"{path.stem}.main.hello_table",
            "path": dg.MetadataValue.path(str(path)),
        }
    )


defs = dg.Definitions(assets=[hello_table])
