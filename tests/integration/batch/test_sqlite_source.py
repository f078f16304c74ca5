"""Reading a SQLite source: the ADBC fast path and the sqlite3 path agree on types and values."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.backends.sqlite import SQLiteBackend
from ematix_engine.connections import DuckDBConnection, SQLiteConnection, register_connection
from ematix_engine.errors import SourceError
from ematix_engine.types import BigInt, Double, Text


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER, v REAL, s TEXT)")
        rows = [(i, None, None) for i in range(250)]  # a NULL-only start longer than a batch
        rows += [(250, 7, 12), (251, 1.5, "x"), (252, None, ""), (253, -0.0, "日本")]
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    return path


def declare_copied(source: Path, tmp_path: Path) -> type:
    """Register the SQLite source as ``src``, a DuckDB warehouse as ``default``; declare ``copied``."""
    register_connection(SQLiteConnection(name="src", path=str(source)))
    register_connection(DuckDBConnection(name="default", path=str(tmp_path / "wh.duckdb")))

    @ematix.table(schema="main", name="copied")
    class Copied:
        id: Annotated[BigInt, pk()]
        v: Double | None
        s: Text | None

    return Copied


def test_adbc_path_keeps_declared_types_after_a_null_start(source: Path) -> None:
    backend = SQLiteBackend(str(source))
    try:
        assert backend._read_arrow_adbc("SELECT * FROM t", None, ["INT", "REAL", "TEXT"], 100)
        table = backend.read_arrow("SELECT id, v, s FROM t ORDER BY id", batch_size=100).read_all()
    finally:
        backend.close()

    assert table.schema == pa.schema([("id", pa.int64()), ("v", pa.float64()), ("s", pa.string())])
    assert table.num_rows == 254  # the sample row that fixes the types is not in the stream
    assert table.slice(250).to_pylist() == [
        {"id": 250, "v": 7.0, "s": "12"},  # REAL affinity stored 7.0, TEXT affinity stored '12'
        {"id": 251, "v": 1.5, "s": "x"},
        {"id": 252, "v": None, "s": ""},
        {"id": 253, "v": -0.0, "s": "日本"},
    ]


def test_expression_columns_take_the_sqlite3_path(source: Path) -> None:
    backend = SQLiteBackend(str(source))
    try:
        reader = backend.read_arrow("SELECT id, upper(s) AS u FROM t WHERE id >= 250 ORDER BY id")
        assert reader.read_all().column("u").to_pylist() == ["12", "X", "", "日本"]
        assert backend._read_arrow_adbc("SELECT upper(s) FROM t", None, [""], 100) is None
    finally:
        backend.close()


def test_watermark_parameter_binds_on_the_adbc_path(source: Path, tmp_path: Path) -> None:
    Copied = declare_copied(source, tmp_path)

    @ematix.pipeline(target=Copied, mode="append", source_connection="src", incremental_column="id")
    def copied(conn):
        return "SELECT id, v, s FROM t WHERE id > $watermark"

    assert copied.run(batch_size=100).rows_inserted == 254
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO t VALUES (300, 2.5, 'late')")
    again = copied.run(batch_size=100)
    assert (again.rows_inserted, again.watermark) == (1, "300")


def test_text_in_an_integer_column_fails_the_load_naming_the_pipeline(
    source: Path, tmp_path: Path
) -> None:
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO t VALUES ('not a number', 1, 'x')")
    Copied = declare_copied(source, tmp_path)

    @ematix.pipeline(target=Copied, mode="append", source_connection="src")
    def broken_ids(conn):
        return "SELECT id, v, s FROM t"

    with pytest.raises(SourceError, match="broken_ids") as caught:
        broken_ids.run(batch_size=100)
    assert "column 'id'" in str(caught.value)
