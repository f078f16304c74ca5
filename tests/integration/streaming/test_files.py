"""File targets (Parquet, CSV, JSON lines) and the watched-folder file source."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from ematix_engine import (
    ConfigError,
    DuckDBConnection,
    MemorySource,
    ObjectStoreLocalConnection,
    Source,
    StreamingPipelineSpec,
    Target,
    run_streaming_pipeline,
)
from ematix_engine.backends.files import read_file
from ematix_engine.streaming import run_stream

ROWS = [{"id": i, "name": f"n;{i}" if i % 2 else None, "amount": i / 4} for i in range(10)]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_parquet_target_with_compression(tmp_path: Path, pipeline_name: str) -> None:
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path), format="parquet")
    run_streaming_pipeline(
        name=pipeline_name,
        source=MemorySource("m", ROWS, batch_size=4),
        targets=[Target(connection=lake, prefix="events/raw", parquet_compression="zstd")],
        exit_when_idle=True,
    )
    files = _files(tmp_path / "events" / "raw")
    assert len(files) == 3
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    ids = sorted(i for f in files for i in pq.read_table(f).column("id").to_pylist())
    assert ids == list(range(10))


def test_csv_target_dialect_round_trips_with_read_options(tmp_path: Path, pipeline_name) -> None:
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path), format="csv")
    target = Target(
        connection=lake,
        prefix="events/csv",
        csv_delimiter="|",
        csv_header=True,
        csv_quote="'",
        csv_null_value="NULL",
        csv_read_options={"has_header": True, "delimiter": "|", "quote": "'",
                          "null_regex": "^NULL$"},
    )  # fmt: skip
    run_streaming_pipeline(
        name=pipeline_name, source=MemorySource("m", ROWS), targets=[target], exit_when_idle=True
    )
    (file,) = _files(tmp_path / "events" / "csv")
    text = file.read_text()
    assert text.splitlines()[0].startswith("id|name|amount")
    assert "|NULL|" in text
    back = read_file(file, "csv", csv_read_options=target.csv_read_options)
    assert back.column("name").to_pylist() == [r["name"] for r in ROWS]


def test_json_lines_target(tmp_path: Path, pipeline_name: str) -> None:
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path), format="json_lines")
    run_streaming_pipeline(
        name=pipeline_name,
        source=MemorySource("m", ROWS),
        targets=[Target(connection=lake, prefix="j", json_read_options={"batch_size": 100})],
        exit_when_idle=True,
    )
    (file,) = _files(tmp_path / "j")
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert [line["id"] for line in lines] == list(range(10))
    assert read_file(file, "json_lines").num_rows == 10


def test_file_targets_refuse_exactly_once(tmp_path: Path, pipeline_name: str) -> None:
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path), format="parquet")
    with pytest.raises(ConfigError, match="exactly_once"):
        run_streaming_pipeline(
            name=pipeline_name,
            source=MemorySource("m", ROWS),
            targets=[Target(connection=lake, prefix="p")],
            delivery="exactly_once",
            exit_when_idle=True,
        )


def _drop_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2], "kind": ["p", "p"]}), folder / "a.parquet")
    with gzip.open(folder / "b.csv.gz", "wb") as f:
        pcsv.write_csv(pa.table({"id": [3, 4], "kind": ["c", "c"]}), f)
    (folder / "sub").mkdir()
    (folder / "sub" / "c.ndjson").write_text('{"id": 5, "kind": "j"}\n{"id": 6, "kind": "j"}\n')
    (folder / ".d.parquet.tmp").write_text("half written")


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_file_source_reads_each_file_once(tmp_path: Path, pipeline_name: str, delivery) -> None:
    _drop_files(tmp_path / "lake" / "incoming")
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path / "lake"), format="parquet")
    wh = DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    spec = StreamingPipelineSpec(
        name=pipeline_name,
        sources=(Source(connection=lake, query="incoming", settle_ms=0),),
        targets=(Target(connection=wh, table=("main", "events")),),
        delivery=delivery,
        idle_pause_ms=10,
    )
    first = run_stream(spec, exit_when_idle=True)
    assert first.rows_in == 6
    # A restart neither skips nor repeats: only the new file is read.
    pq.write_table(pa.table({"id": [7], "kind": ["p"]}), tmp_path / "lake" / "incoming" / "e.pq")
    second = run_stream(spec, exit_when_idle=True)
    assert second.rows_in == 1
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        ids = sorted(r[0] for r in con.sql("SELECT id FROM main.events").fetchall())
    assert ids == [1, 2, 3, 4, 5, 6, 7]


def test_a_file_still_being_written_waits_for_settle_ms(tmp_path: Path, pipeline_name) -> None:
    folder = tmp_path / "lake" / "in"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1]}), folder / "old.parquet")
    old = time.time() - 60
    os.utime(folder / "old.parquet", (old, old))
    pq.write_table(pa.table({"id": [2]}), folder / "fresh.parquet")  # just modified
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path / "lake"), format="parquet")
    wh = DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    spec = StreamingPipelineSpec(
        name=pipeline_name,
        sources=(Source(connection=lake, query="in", settle_ms=30_000),),
        targets=(Target(connection=wh, table=("main", "t")),),
        idle_pause_ms=10,
    )
    from ematix_engine.streaming.runner import StreamRunner

    runner = StreamRunner(spec, on_progress=lambda p: runner.stop())
    result = runner.run()
    assert result.rows_in == 1
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        assert con.sql("SELECT id FROM main.t").fetchall() == [(1,)]


def test_file_source_read_options(tmp_path: Path, pipeline_name: str) -> None:
    folder = tmp_path / "lake" / "csv"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("id;name\n# a comment\n1;NA\n2;bo\n")
    lake = ObjectStoreLocalConnection(name="lake", path=str(tmp_path / "lake"), format="csv")
    with pytest.raises(ConfigError, match="unknown key 'delim'; did you mean 'delimiter'"):
        Source(connection=lake, query="csv", read_options={"delim": ";"})
    wh = DuckDBConnection(name="wh", path=str(tmp_path / "wh.duckdb"))
    options = {"delimiter": ";", "comment": "#", "null_regex": "^NA$"}
    run_streaming_pipeline(
        name=pipeline_name,
        sources=[Source(connection=lake, query="csv", settle_ms=0, read_options=options)],
        target=wh,
        target_table=("main", "t"),
        exit_when_idle=True,
    )
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        assert con.sql("SELECT id, name FROM main.t ORDER BY id").fetchall() == [
            (1, None),
            (2, "bo"),
        ]
