"""The streaming runner with the real DataFusion transform stage (no stand-in): filter and
project, a lookup join, and a UDF, from a memory source into DuckDB."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from ematix_engine import DuckDBConnection, MemorySource, run_streaming_pipeline
from ematix_engine.transform import Lookup, udf


def test_transform_sql_with_a_lookup_and_a_udf_runs_on_datafusion(tmp_path: Path) -> None:
    ref = tmp_path / "ref.duckdb"
    with duckdb.connect(str(ref)) as con:
        con.execute(
            "CREATE TABLE users AS SELECT * FROM (VALUES (1, 'ada'), (2, 'bob')) u(id, name)"
        )

    @udf(args=["float64"], returns="float64", name="with_tax")
    def with_tax(amount: pa.Array) -> pa.Array:
        import pyarrow.compute as pc

        return pc.multiply(amount, 1.25)

    events = [
        {"user_id": 1, "kind": "buy", "amount": 8.0},
        {"user_id": 2, "kind": "view", "amount": 0.0},
        {"user_id": 2, "kind": "buy", "amount": 4.0},
    ]
    target = DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    result = run_streaming_pipeline(
        name="buys",
        source=MemorySource("events", events),
        target=target,
        target_table=("main", "buys"),
        transform_sql=(
            "SELECT s.user_id, u.name, with_tax(s.amount) AS gross FROM source AS s "
            "JOIN users AS u ON u.id = s.user_id WHERE s.kind = 'buy'"
        ),
        lookups={
            "users": Lookup(
                connection=DuckDBConnection(name="ref", path=str(ref)),
                query="SELECT id, name FROM users",
            )
        },
        udfs=[with_tax],
        exit_when_idle=True,
    )

    assert (result.rows_in, result.rows_out) == (3, 2)
    with duckdb.connect(target.path) as con:
        rows = con.execute("SELECT user_id, name, gross FROM main.buys ORDER BY user_id").fetchall()
    assert rows == [(1, "ada", 10.0), (2, "bob", 5.0)]
