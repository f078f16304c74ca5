"""preview() and run() follow the one planner: the path a preview names is the path a run takes.

Every pair of source and target backends, plus each backend reading its own tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pytest

from ematix_engine import ematix, pk
from ematix_engine.connections import PostgresConnection, SQLiteConnection
from ematix_engine.specs import ColumnSpec, LoadMode, TableSpec, TargetSpec
from ematix_engine.types import BigInt, Text
from ematix_engine.write import ArrowRows, apply_rows
from tests.integration.stores import KINDS, make_store

pytestmark = pytest.mark.integration

#: The path a run takes, by (same store, target kind).
EXPECTED = {
    (True, "duckdb"): "same database",
    (True, "sqlite"): "same database",
    (True, "delta"): "same database",
    (True, "postgres"): "same database",
    (False, "duckdb"): "staged",
    (False, "sqlite"): "staged",
    (False, "delta"): "staged",
    (False, "postgres"): "in-process",
}


def _store(kind: str, role: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str]:
    return make_store(kind, f"{role}_{kind}", request, tmp_path)


def _source_table(connection: Any, schema: str) -> str:
    """Write a two-row table ``<schema>.things`` into the source; return its SQL name."""
    table = TableSpec(
        schema=schema,
        name="things",
        columns=(
            ColumnSpec(name="id", type=BigInt, primary_key=True),
            ColumnSpec(name="name", type=Text, nullable=True),
        ),
    )
    rows = ArrowRows.of(pa.table({"id": [1, 2], "name": ["a", "b"]}))
    apply_rows(
        connection,
        TargetSpec(table=table, mode=LoadMode.APPEND),
        rows,
        writer="seed",
        batch_id="seed",
    )
    return "things" if isinstance(connection, SQLiteConnection) else f"{schema}.things"


@pytest.mark.parametrize("target_kind", KINDS)
@pytest.mark.parametrize("source_kind", [*KINDS, "same"])
@pytest.mark.parametrize("mode", ["merge", "scd2"])
def test_preview_names_the_path_the_run_takes(
    source_kind: str,
    target_kind: str,
    mode: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    target_conn, target_schema = _store(target_kind, "target", request, tmp_path)
    if source_kind == "same":
        source_conn, source_schema = target_conn, target_schema
    elif source_kind == target_kind == "postgres":
        # Another connection string to the same server: another database as far as the
        # planner can tell, so the rows travel as Arrow (in-process), as between two servers.
        dsn = target_conn.url
        other = dsn + ("&" if "?" in dsn else "?") + "application_name=ematix_source"
        source_conn, source_schema = PostgresConnection(name="source_pg", url=other), target_schema
    else:
        source_conn, source_schema = _store(source_kind, "source", request, tmp_path)
    source_sql = _source_table(source_conn, source_schema)
    out_schema = target_schema

    @ematix.table(schema=out_schema, name=f"copy_{mode}", connection=target_conn)
    class Copy:
        id: Annotated[BigInt, pk()]
        name: Text | None

    @ematix.pipeline(target=Copy, mode=mode, source_connection=source_conn, name=f"p_{mode}")
    def copy(conn):
        return f"SELECT id, name FROM {source_sql}"

    preview = copy.preview().targets[0]
    result = copy.run().targets[0]

    assert preview.path == result.path == EXPECTED[(source_kind == "same", target_kind)]
    assert preview.same_database == (result.path == "same database")
    assert preview.backend == result.backend
    assert result.rows_inserted == 2
