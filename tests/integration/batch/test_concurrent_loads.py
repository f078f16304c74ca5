"""Two loads of one target at the same time take turns (issue: two current SCD2 versions per key,
appended rows twice). Threads of one process and separate processes, on every backend.

The pipeline function sleeps while rendering its SQL, which happens inside the write (after
the target is locked): without the locks, both loads would plan against the same old state.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ematix_engine.connections import SQLiteConnection
from ematix_engine.specs import ColumnSpec, LoadMode, TableSpec, TargetSpec
from ematix_engine.types import BigInt, Text
from ematix_engine.write import ArrowRows, apply_rows
from tests.integration.stores import KINDS, make_store

pytestmark = pytest.mark.integration


PIPELINES = """
import time
from typing import Annotated
from ematix_engine import ematix, pk
from ematix_engine.types import BigInt, Text

CONN = {conn}
SRC = {src!r}

@ematix.table(schema={schema!r}, name="dim", connection=CONN)
class Dim:
    id: Annotated[BigInt, pk()]
    name: Text | None

@ematix.table(schema={schema!r}, name="log", connection=CONN)
class Log:
    id: BigInt
    name: Text | None

@ematix.pipeline(target=Dim, mode="scd2", name="dim_load")
def dim_load(conn):
    time.sleep({pause})
    return f"SELECT id, name FROM {{SRC}}"

@ematix.pipeline(target=Log, mode="append", incremental_column="id", name="log_load")
def log_load(conn):
    time.sleep({pause})
    return f"SELECT id, name FROM {{SRC}}"
"""


def _store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, str, str]:
    """(connection, Python source rebuilding it, schema) for one backend."""
    connection, schema = make_store(kind, "c", request, tmp_path)
    return connection, repr(connection), schema


def _seed(connection: Any, schema: str) -> str:
    table = TableSpec(
        schema=schema,
        name="src",
        columns=(
            ColumnSpec(name="id", type=BigInt, primary_key=True),
            ColumnSpec(name="name", type=Text, nullable=True),
        ),
    )
    rows = ArrowRows.of(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}))
    apply_rows(
        connection,
        TargetSpec(table=table, mode=LoadMode.APPEND),
        rows,
        writer="seed",
        batch_id="seed",
    )
    return "src" if isinstance(connection, SQLiteConnection) else f"{schema}.src"


def _module(tmp_path: Path, conn_src: str, schema: str, src: str, pause: float) -> Path:
    module = tmp_path / "concurrent_pipes.py"
    body = "from ematix_engine.connections import *\n" + PIPELINES.format(
        conn=conn_src, schema=schema, src=src, pause=pause
    )
    module.write_text(textwrap.dedent(body))
    return module


def _counts(connection: Any, schema: str) -> tuple[int, int, int]:
    """(current dim versions, all dim versions, log rows)."""
    from ematix_engine.backends import open_backend

    store = open_backend(connection)
    try:
        with store.query_session() as s:
            dim, log = s.table_sql(schema, "dim"), s.table_sql(schema, "log")
            current = s.query(f"SELECT COUNT(*) FROM {dim} WHERE is_current")[0][0]
            versions = s.query(f"SELECT COUNT(*) FROM {dim}")[0][0]
            logged = s.query(f"SELECT COUNT(*) FROM {log}")[0][0]
    finally:
        store.close()
    return int(current), int(versions), int(logged)


@pytest.mark.parametrize("kind", KINDS)
def test_two_threads_loading_one_target_take_turns(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection, conn_src, schema = _store(kind, request, tmp_path)
    src = _seed(connection, schema)
    _module(tmp_path, conn_src, schema, src, pause=0.3)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "concurrent_pipes", raising=False)
    namespace = vars(importlib.import_module("concurrent_pipes"))
    errors: list[BaseException] = []

    def run(pipeline: Any) -> None:
        try:
            pipeline.run()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    for pipeline in (namespace["dim_load"], namespace["log_load"]):
        threads = [threading.Thread(target=run, args=(pipeline,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert _counts(connection, schema) == (3, 3, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_loading_one_target_take_turns(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    connection, conn_src, schema = _store(kind, request, tmp_path)
    src = _seed(connection, schema)
    _module(tmp_path, conn_src, schema, src, pause=0.5)
    script = "import concurrent_pipes as m; m.dim_load.run(); m.log_load.run()"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [p.communicate(timeout=120) for p in processes]
    for process, (_, err) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, err
    assert _counts(connection, schema) == (3, 3, 3)
