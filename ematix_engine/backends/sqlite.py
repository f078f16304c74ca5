"""SQLite: an embedded target and source.

SQLite has no schemas (tables live in ``main``), no SHA-256 and no ``regexp_replace``: this
backend registers deterministic ``ematix_row_hash`` and ``regexp_replace`` functions. Timestamps
are stored as canonical text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), booleans as 0/1.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from typing_extensions import override

from ematix_engine.backends.base import SqlBackend
from ematix_engine.schema.hashing import sqlite_row_hash

__all__ = ["SQLiteBackend"]


def _regexp_replace(
    value: str | None, pattern: str, replacement: str, flags: str = "g"
) -> str | None:
    if value is None:
        return None
    replacement = re.sub(r"\\(\d)", r"\\g<\1>", replacement)
    return re.sub(pattern, replacement, value, count=0 if "g" in (flags or "") else 1)


class SQLiteBackend(SqlBackend):
    """A SQLite database file."""

    name = "sqlite"
    dialect = "sqlite"
    SUPPORTS_SCHEMAS = False
    TYPE_MAP: ClassVar[Mapping[str, str]] = {
        "BIGINT": "INTEGER",
        "INT": "INTEGER",
        "SMALLINT": "INTEGER",
        "VARCHAR": "TEXT",
        "TEXT": "TEXT",
        "BOOLEAN": "BOOLEAN",
        "DOUBLE": "REAL",
        "DECIMAL": "NUMERIC",
        "DATE": "TEXT",
        "TIMESTAMP": "TEXT",
        "TIMESTAMPTZ": "TEXT",
        "JSON": "TEXT",
        "VARBINARY": "BLOB",
    }

    def __init__(self, path: str, *, connection: Any = None) -> None:
        super().__init__(connection)
        self.path = path
        self.con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.con.create_function("ematix_row_hash", -1, sqlite_row_hash, deterministic=True)
        self.con.create_function("regexp_replace", 3, _regexp_replace, deterministic=True)
        self.con.create_function("regexp_replace", 4, _regexp_replace, deterministic=True)
        self.con.execute("PRAGMA foreign_keys = ON")

    @override
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> int:
        cursor = self.con.execute(sql, params if params is not None else ())
        return cursor.rowcount

    @override
    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple]:
        return self.con.execute(sql, params if params is not None else ()).fetchall()

    @override
    def read_arrow(
        self, sql: str, params: Sequence[Any] | None = None, batch_size: int = 100_000
    ) -> pa.RecordBatchReader:
        cursor = self.con.execute(sql, params if params is not None else ())
        names = [d[0] for d in cursor.description]
        first = cursor.fetchmany(batch_size)
        first_batch = _rows_to_batch(names, first)
        schema = first_batch.schema

        def batches():
            yield first_batch
            while rows := cursor.fetchmany(batch_size):
                yield _rows_to_batch(names, rows, schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    @override
    def stage_arrow(self, table: str, reader: pa.RecordBatchReader) -> int:
        from ematix_engine.schema.types import column_type_from_arrow

        schema = reader.schema
        columns = ", ".join(
            f"{self.quote(f.name)} {self.column_type_sql(column_type_from_arrow(f.type))}"
            for f in schema
        )
        self.execute(f"CREATE TEMP TABLE {self.quote(table)} ({columns})")
        insert = f"INSERT INTO {self.quote(table)} VALUES ({', '.join('?' for _ in schema)})"
        total = 0
        for batch in reader:
            values = [_column_for_sqlite(batch.column(i)) for i in range(batch.num_columns)]
            self.con.executemany(insert, zip(*values, strict=True))
            total += batch.num_rows
        return total

    @override
    def begin(self) -> None:
        self.con.execute("BEGIN IMMEDIATE")

    @override
    def commit(self) -> None:
        self.con.execute("COMMIT")

    @override
    def rollback(self) -> None:
        if self.con.in_transaction:
            self.con.execute("ROLLBACK")

    @override
    def table_columns(self, schema: str | None, name: str) -> dict[str, str] | None:
        rows = self.con.execute(
            "SELECT name, lower(type) FROM pragma_table_info(?)", (name,)
        ).fetchall()
        return dict(rows) if rows else None

    @override
    def close(self) -> None:
        self.con.close()


def _column_for_sqlite(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Convert one Arrow column to values sqlite3 binds (timestamps → canonical text)."""
    t = array.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            array = array.cast(pa.timestamp("us", tz="UTC"))
        else:
            array = array.cast(pa.timestamp("us"))
        array = pc.strftime(array, format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_date(t):
        array = pc.strftime(array.cast(pa.date32()), format="%Y-%m-%d")
    elif pa.types.is_decimal(t):
        array = array.cast(pa.string())
    elif pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        import json

        return [None if v is None else json.dumps(v, default=str) for v in array.to_pylist()]
    return array.to_pylist()


def _rows_to_batch(
    names: list[str], rows: list[tuple], schema: pa.Schema | None = None
) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    if schema is None:
        arrays = [pa.array(list(c)) for c in columns]
        return pa.RecordBatch.from_arrays(arrays, names=names)
    arrays = []
    for column, field in zip(columns, schema, strict=True):
        try:
            arrays.append(pa.array(list(column), type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(
                pa.array([None if v is None else str(v) for v in column], type=pa.string()).cast(
                    field.type
                )
            )
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
