"""Folders of data files (Parquet, CSV, JSON lines) as streaming targets and sources.

A file target is not a SQL store: every batch becomes one new file under
``<connection path>/<prefix>/``, written to a hidden temporary name and renamed in, so a reader
never sees half a file. Parquet is written by pyarrow (``parquet_compression``); CSV and JSON
lines by DuckDB's writers, which take every CSV dialect option (delimiter, header, quote,
escape, null rendering) as keyword arguments — no SQL text is built.

:func:`read_file` reads one file back with the guide's read options (``csv_read_options``:
``has_header``, ``delimiter``, ``quote``, ``escape``, ``comment``, ``null_regex``,
``truncated_rows_ok``, ``schema_infer_max_records``; ``json_read_options``:
``schema_infer_max_records``, ``batch_size``); gzip- and zstd-compressed CSV/JSON files are
read transparently, Parquet compression is in the file itself.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ematix_engine.errors import UnsupportedError

__all__ = ["EXTENSIONS", "FileTableWriter", "read_file"]

EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "json_lines": ".jsonl"}
"""File suffix written per format."""
_READABLE_COMPRESSION = ("", ".gz", ".zst")


class FileTableWriter:
    """Append each batch as a new file under a prefix (a streaming target).

    Args:
        target: the configured target (prefix and format options).
        connection: its ``ObjectStoreLocalConnection``.
        pipeline: the pipeline's name (messages).
    """

    #: Files carry no offsets: exactly-once needs a database or Delta target.
    STORES_POSITIONS = False

    def __init__(self, target: Any, connection: Any, pipeline: str) -> None:
        resolved = connection.resolved()
        self.format = resolved.format
        if self.format not in EXTENSIONS:
            raise UnsupportedError(
                "file targets", f"format {self.format!r}", "use parquet, csv or json_lines"
            )
        self.folder = Path(resolved.path) / (target.prefix or "")
        self.target = target
        self.pipeline = pipeline
        self.label = f"{connection.name}:{target.prefix or '.'}"

    def stored_positions(self) -> dict[str, dict[str, int]]:
        """None are stored."""
        return {}

    def write(self, rows: pa.Table, *, batch_id: str, positions: Any = None) -> int:
        """Write ``rows`` as one new file; return the rows written."""
        if rows.num_rows == 0:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{batch_id}{EXTENSIONS[self.format]}"
        temporary = self.folder / f".{name}.{uuid.uuid4().hex[:6]}.tmp"
        try:
            self._write(rows, temporary)
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, self.folder / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        return rows.num_rows

    def _write(self, rows: pa.Table, path: Path) -> None:
        t = self.target
        if self.format == "parquet":
            pq.write_table(rows, path, compression=t.parquet_compression or "snappy")
            return
        con = duckdb.connect()
        try:
            relation = con.from_arrow(rows)
            if self.format == "csv":
                options: dict[str, Any] = {
                    "sep": t.csv_delimiter or ",",
                    "header": True if t.csv_header is None else t.csv_header,
                    "quotechar": t.csv_quote or '"',
                    "na_rep": t.csv_null_value or "",
                }
                if t.csv_escape is not None:
                    options["escapechar"] = t.csv_escape
                relation.to_csv(str(path), **options)
                return
            con.register("_ematix_rows", rows)
            lines = con.sql('SELECT CAST(to_json(r) AS VARCHAR) AS line FROM "_ematix_rows" AS r')
            text = lines.to_arrow_table().column("line").combine_chunks()
            joined = pc.binary_join(pa.ListArray.from_arrays([0, len(text)], text), "\n")
            path.write_text(joined[0].as_py() + "\n", encoding="utf-8")
        finally:
            con.close()

    def close(self) -> None:
        """Nothing held open."""


def read_file(
    path: str | os.PathLike[str],
    file_format: str,
    *,
    csv_read_options: Mapping[str, Any] | None = None,
    json_read_options: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Read one data file with the guide's read options.

    Raises:
        UnsupportedError: a compression this reader cannot open (bz2, lz4, snappy text files).
    """
    path = os.fspath(path)
    if file_format == "parquet":
        return pq.read_table(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".bz2", ".lz4", ".snappy"):
        raise UnsupportedError("the file reader", f"{suffix} compressed {file_format} ({path})")
    con = duckdb.connect()
    try:
        if file_format == "csv":
            options = dict(csv_read_options or {})
            kwargs: dict[str, Any] = {"header": options.get("has_header", True)}
            for key, name in (
                ("delimiter", "sep"),
                ("quote", "quotechar"),
                ("escape", "escapechar"),
                ("comment", "comment"),
                ("schema_infer_max_records", "sample_size"),
            ):
                if key in options:
                    kwargs[name] = options[key]
            if options.get("truncated_rows_ok"):
                kwargs["null_padding"] = True
            table = con.read_csv(path, **kwargs).to_arrow_table()
            regex = options.get("null_regex")
            return _null_matching(table, regex) if regex else table
        if file_format == "json_lines":
            options = dict(json_read_options or {})
            kwargs = {"format": "newline_delimited"}
            if "schema_infer_max_records" in options:
                kwargs["sample_size"] = options["schema_infer_max_records"]
            return con.read_json(path, **kwargs).to_arrow_table()
    finally:
        con.close()
    raise UnsupportedError("the file reader", f"format {file_format!r}")


def _null_matching(table: pa.Table, regex: str) -> pa.Table:
    """String cells matching ``regex`` become null."""
    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            column = table.column(index)
            matches = pc.fill_null(pc.match_substring_regex(column, regex), False)
            nulled = pc.if_else(matches, pa.scalar(None, field.type), column)
            table = table.set_column(index, field, nulled)
    return table
