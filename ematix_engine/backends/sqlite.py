"""SQLite: an embedded target and source.

SQLite has no schemas (tables live in ``main``), no MD5 and no ``regexp_replace``: this
backend registers deterministic ``ematix_row_hash`` and ``regexp_replace`` functions. Timestamps
are stored as canonical text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), booleans as 0/1.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from typing_extensions import override

from ematix_engine.backends.base import COMMON_HASH_TEXT, SqlBackend, make_parent_dir
from ematix_engine.schema.hashing import sqlite_row_hash
from ematix_engine.schema.types import ColumnType

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
    DISPLAY_NAME = "SQLite"
    dialect = "sqlite"
    SUPPORTS_SCHEMAS = False
    ENFORCES_TYPE_WIDTHS = False
    JOINS_BY_NESTED_LOOPS = True
    TIMESTAMPS_AS_TEXT = True
    NULL_SAFE_DISTINCT = "IS NOT"
    EXPLAIN = "EXPLAIN QUERY PLAN"
    #: SQLite keeps timestamps as text; every spelling is brought to the canonical form.
    CAST_TEMPLATES: ClassVar[Mapping[str, str]] = {
        "timestamp": "ematix_timestamp(CAST({value} AS TEXT))",
        "timestamptz": "ematix_timestamp(CAST({value} AS TEXT))",
    }
    HASH_TEXT: ClassVar[Mapping[str, str]] = {
        **COMMON_HASH_TEXT,
        # printf turns NULL into '' on SQLite; SQLite stores NaN as NULL.
        "decimal": "CASE WHEN {c} IS NULL THEN NULL ELSE printf('%.{scale}f', {c}) END",
        # a REAL reaches ematix_row_hash as a float, which encodes its bits (NaN is NULL here)
        "float": "CAST({c} AS REAL)",
    }
    #: SQLite's casts never fail (``'abc'`` becomes ``0``): a registered function says whether
    #: text is a value of the family.
    INVALID_TEXT: ClassVar[Mapping[str, str]] = {
        family: f"ematix_invalid('{family}', {{value}})"
        for family in ("int", "float", "decimal", "bool", "date", "timestamp", "timestamptz")
    }
    #: No MD5 in SQLite: a registered, deterministic function length-prefixes and hashes
    #: the canonical texts.
    HASH_DIGEST: ClassVar[str] = "ematix_row_hash({joined})"
    SUPPORTS_FULL_JOIN: ClassVar[bool] = sqlite3.sqlite_version_info >= (3, 39)
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

    @classmethod
    @override
    def open(cls, connection: Any, *, read_only: bool = False) -> SQLiteBackend:
        make_parent_dir(connection.path)
        return cls(connection.path, connection=connection)

    def __init__(self, path: str, *, connection: Any = None) -> None:
        super().__init__(connection)
        self.path = path
        from ematix_engine.backends.locks import lock_timeout_s

        # BEGIN IMMEDIATE takes the write lock up front; another writer waits up to the lock
        # timeout for its turn (ematix_engine.backends.locks).
        self.con = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=lock_timeout_s()
        )
        self.con.create_function("ematix_row_hash", -1, sqlite_row_hash, deterministic=True)
        self.con.create_function(
            "ematix_timestamp", 1, canonical_timestamp_text, deterministic=True
        )
        self.con.create_function("ematix_invalid", 2, invalid_text, deterministic=True)
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
        declared = self._declared_types(sql, params)
        fast = self._read_arrow_adbc(sql, params, declared, batch_size)
        if fast is not None:
            return fast
        cursor = self.con.execute(sql, params if params is not None else ())
        names = [d[0] for d in cursor.description]
        first = cursor.fetchmany(batch_size)
        # Column types come from the declared types where SQLite has them (a first batch that
        # is all NULL, or BOOLEAN stored as 0/1, would otherwise fix the wrong Arrow type for
        # the whole stream); expression columns without one keep the type of their values.
        inferred = _rows_to_batch(names, first).schema
        schema = pa.schema(
            [
                pa.field(name, _stream_type(decl, field.type))
                for name, decl, field in zip(names, declared, inferred, strict=True)
            ]
        )
        first_batch = _rows_to_batch(names, first, schema)

        def batches():
            yield first_batch
            while rows := cursor.fetchmany(batch_size):
                yield _rows_to_batch(names, rows, schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    @override
    def stage_arrow(
        self,
        table: str,
        reader: pa.RecordBatchReader,
        column_types: Mapping[str, type[ColumnType]] | None = None,
    ) -> int:

        schema = reader.schema
        columns = self.columns_sql(schema, column_types)
        self.execute(f"CREATE TEMP TABLE {self.quote(table)} ({columns})")
        insert = f"INSERT INTO {self.quote(table)} VALUES ({', '.join('?' for _ in schema)})"
        total = 0
        for batch in reader:
            values = [_column_for_sqlite(batch.column(i)) for i in range(batch.num_columns)]
            self.con.executemany(insert, zip(*values, strict=True))
            total += batch.num_rows
        return total

    @override
    def result_schema(self, sql: str) -> pa.Schema:
        # An empty SQLite result carries no types (every column would come back as Arrow null,
        # i.e. Text); use the declared types SQLite gives the result's columns instead.
        cursor = self.con.execute(f"SELECT * FROM ({sql}) LIMIT 0")
        names = [d[0] for d in cursor.description]
        declared = self._declared_types(sql)
        return pa.schema(
            [(n, _arrow_type_for_declared(d)) for n, d in zip(names, declared, strict=True)]
        )

    def _read_arrow_adbc(
        self, sql: str, params: Sequence[Any] | None, declared: list[str], batch_size: int
    ) -> pa.RecordBatchReader | None:
        """Read through the ADBC SQLite driver (in C, no Python object per value), if it applies.

        It applies to a database file whose result columns all have INTEGER, REAL or TEXT
        affinity and distinct names, and to SQL the driver's own connection can prepare (it
        lacks the functions, attached databases and temp tables of this one); otherwise None
        (the ``sqlite3`` path, which reads declared types). The driver fixes each column's
        Arrow type from the values of its first batch, so a start of NULLs would fix the wrong
        one: one row holding a value of each column's affinity goes first, marked, and is
        filtered out of the stream again.
        """
        if self.path in ("", ":memory:") or not all(d in _AFFINITY_SAMPLE for d in declared):
            return None
        import adbc_driver_sqlite.dbapi as adbc

        names = [
            d[0]
            for d in self.con.execute(f"SELECT * FROM ({sql}) LIMIT 0", params or ()).description
        ]
        if len(set(names)) != len(names):
            return None
        marker = "_ematix_sample_row"
        samples = ", ".join(
            f"{_AFFINITY_SAMPLE[d]} AS {self.quote(n)}"
            for n, d in zip(names, declared, strict=True)
        )
        wrapped = f"SELECT 1 AS {marker}, {samples} UNION ALL SELECT 0, * FROM ({sql})"
        schema = pa.schema(
            [pa.field(n, _arrow_type_for_declared(d)) for n, d in zip(names, declared, strict=True)]
        )
        connection = adbc.connect(self.path)
        try:
            cursor = connection.cursor()
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_size)})
            cursor.execute(wrapped, tuple(params) if params else None)
            reader = cursor.fetch_record_batch()
        except adbc.Error:  # e.g. a function only this connection has: use the sqlite3 path
            connection.close()
            return None
        except BaseException:
            connection.close()
            raise

        def batches():
            try:
                for batch in reader:
                    kept = batch.filter(pc.equal(batch.column(0), 0))
                    yield pa.RecordBatch.from_arrays(
                        [_cast_named(c, f) for c, f in zip(kept.columns[1:], schema, strict=True)],
                        schema=schema,
                    )
            except (adbc.Error, OSError) as error:  # the stream reports as OSError
                raise _named_mismatch(error, names) from error
            finally:
                cursor.close()
                connection.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _declared_types(self, sql: str, params: Sequence[Any] | None = None) -> list[str]:
        """Declared type of each result column (upper case; "" for expressions)."""
        probe = "_ematix_schema_probe"
        self.drop_temp(probe)
        self.execute(
            f"CREATE TEMP TABLE {self.quote(probe)} AS SELECT * FROM ({sql}) LIMIT 0",
            params,
        )
        try:
            rows = self.con.execute(
                "SELECT upper(type) FROM pragma_table_info(?) ORDER BY cid", (probe,)
            ).fetchall()
        finally:
            self.drop_temp(probe)
        return [declared for (declared,) in rows]

    @override
    def watermark_params(self, value: Any, occurrences: int) -> list[Any]:
        return [_canonical_timestamp(value)] * occurrences

    @override
    def index_for_joins(self, table: str, columns: Sequence[str]) -> None:
        if columns:
            index = self.quote(f"{table}_ematix_keys")
            cols = ", ".join(self.quote(c) for c in columns)
            self.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {self.quote(table)} ({cols})")

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


_TIMESTAMP_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


_BOOL_TEXT = frozenset({"t", "true", "f", "false", "1", "0", "y", "yes", "n", "no", "on", "off"})


def invalid_text(family: str, value: Any) -> int:
    """SQLite function ``ematix_invalid``: 1 when ``value`` is not a value of ``family``."""
    if value is None or not isinstance(value, str):
        return 0
    text = value.strip()
    try:
        if family == "int":
            int(text)
        elif family == "float":
            float(text)
        elif family == "decimal":
            Decimal(text)
            if not Decimal(text).is_finite():
                return 1
        elif family == "bool":
            return int(text.lower() not in _BOOL_TEXT)
        elif family == "date":
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, ArithmeticError):
        return 1
    return 0


def canonical_timestamp_text(value: Any) -> Any:
    """SQLite function ``ematix_timestamp``: any ISO-8601 spelling → canonical UTC text.

    ``'1999-12-31T00:00:00Z'``, ``'1999-12-31 00:00:00'`` and ``'1999-12-31 01:00:00+01:00'``
    all become ``'1999-12-31 00:00:00.000000'``, the form every other SQLite timestamp takes,
    so hashing, ordering and watermarks agree with PostgreSQL and DuckDB. Text that is not a
    timestamp is returned unchanged (the load keeps it rather than losing it).
    """
    if value is None or not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%d %H:%M:%S.%f")


def _canonical_timestamp(value: Any) -> Any:
    """Render a timestamp watermark the way SQLite stores timestamps (UTC, microseconds).

    Watermarks computed on another backend read like ``2024-01-01 03:00:00+00``; SQLite
    compares text, and ``…00.000000`` sorts after ``…00+00``, so the row at the watermark
    would load again.
    """
    if not isinstance(value, str) or not _TIMESTAMP_TEXT.match(value):
        return value
    text = value.replace("T", " ").replace("Z", "+00:00")
    if re.search(r"[+-]\d{2}$", text):
        text += ":00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%d %H:%M:%S.%f")


#: A value of each affinity, for the sample row of :meth:`SQLiteBackend._read_arrow_adbc`.
_AFFINITY_SAMPLE = {"INT": "0", "REAL": "CAST(0 AS REAL)", "TEXT": "''"}


def _cast_named(column: pa.Array, field: pa.Field) -> pa.Array:
    """``column`` cast to ``field``'s type; a value that does not fit names the column."""
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(
            f"column {field.name!r} holds a value that does not match its declared type: {error}"
        ) from error


def _named_mismatch(error: Exception, names: list[str]) -> Exception:
    """The driver's "Type mismatch in column N" with the column's name (N counts the marker)."""
    found = re.search(r"column (\d+)", str(error))
    if found is None or not 0 < int(found.group(1)) <= len(names):
        return error
    name = names[int(found.group(1)) - 1]
    return ValueError(
        f"column {name!r} holds a value that does not match its declared type: {error}"
    )


def _stream_type(declared: str, inferred: pa.DataType) -> pa.DataType:
    """Arrow type of a streamed column: its affinity's type, else its first values' type."""
    if declared in ("", "NUM"):  # no affinity, or NUMERIC (integers and reals mix)
        if pa.types.is_null(inferred):
            return pa.float64() if declared == "NUM" else pa.string()
        return inferred
    return _arrow_type_for_declared(declared)


def _arrow_type_for_declared(declared: str) -> pa.DataType:
    """Arrow type for a SQLite declared column type (affinity rules, plus BOOLEAN)."""
    if "BOOL" in declared:
        return pa.bool_()
    if "INT" in declared:
        return pa.int64()
    if any(token in declared for token in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return pa.float64()
    if "BLOB" in declared:
        return pa.binary()
    return pa.string()


def _column_for_sqlite(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Convert one Arrow column to values sqlite3 binds (timestamps → canonical text)."""
    t = array.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            array = array.cast(pa.timestamp("us", tz="UTC"))
        else:
            array = array.cast(pa.timestamp("us"))
        array = pc.cast(array.cast(pa.timestamp("us")), pa.string())  # canonical, fast
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
