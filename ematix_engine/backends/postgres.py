"""PostgreSQL (psycopg 3): target and source.

Staging uses ``COPY … FROM STDIN`` fed a whole record batch at a time, so no Python loop
touches rows: in binary form where every column's type maps exactly
(:mod:`~ematix_engine.backends.pg_binary`), else as the CSV ``pyarrow.csv`` writes. Loads run in one transaction with
``TimeZone = UTC`` so ``row_hash`` text matches other backends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from typing_extensions import override

from ematix_engine.backends.base import COMMON_HASH_TEXT, SqlBackend
from ematix_engine.backends.pg_binary import binary_plan
from ematix_engine.schema.types import ColumnType

__all__ = ["PostgresBackend"]

log = logging.getLogger(__name__)

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, batch_size=65_536)
#: How long a read at an exported snapshot waits for a lock before giving up.
_SNAPSHOT_LOCK_TIMEOUT = "2s"

# PostgreSQL type OIDs → Arrow types for reading query results.
_OID_ARROW: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    25: pa.string(),
    1043: pa.string(),
    1042: pa.string(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    114: pa.string(),
    3802: pa.string(),
    2950: pa.string(),
}


def _numeric_type(field: pa.Field) -> pa.DataType:
    typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod >= 4:
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if 1 <= precision <= 38:
            return pa.decimal128(precision, scale)
    return pa.string()  # unconstrained numeric: keep every digit as text


def _plain_field(field: pa.Field) -> pa.Field:
    """Drop driver metadata and extension types: numeric → decimal, json → text."""
    t = field.type
    if isinstance(t, pa.ExtensionType):
        name = (field.metadata or {}).get(b"POSTGRESQL:type", b"")
        t = _numeric_type(field) if name == b"numeric" else t.storage_type
    return pa.field(field.name, t)


def _plain_array(array: pa.Array, target: pa.DataType) -> pa.Array:
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    return array if array.type == target else array.cast(target)


# True when text is no date / timestamp / timestamptz PostgreSQL accepts (PostgreSQL 16's
# pg_input_is_valid, for every version): a session-local function, gone with the session.
_INVALID_TIME_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.ematix_invalid_time(value text, family text)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF family = 'date' THEN PERFORM CAST(value AS date);
  ELSIF family = 'timestamptz' THEN PERFORM CAST(value AS timestamptz);
  ELSE PERFORM CAST(value AS timestamp);
  END IF;
  RETURN false;
EXCEPTION WHEN data_exception THEN RETURN true;
END $$
"""


class PostgresBackend(SqlBackend):
    """A PostgreSQL session."""

    name = "postgres"
    DISPLAY_NAME = "PostgreSQL"
    dialect = "postgres"
    PREPARES_IN_PROCESS = True
    STAYS_OPEN_BETWEEN_WRITES = True
    ADDS_PRIMARY_KEY_AFTER_FIRST_LOAD = True
    #: PostgreSQL has no bigint/double → boolean cast; staged 0/1 (SQLite, MySQL) go via text.
    CAST_TEMPLATES: ClassVar[Mapping[str, str]] = {"bool": "CAST(CAST({value} AS TEXT) AS {type})"}
    #: PostgreSQL's casts fail on bad text; these find the row first, so the error names its
    #: key (dates and timestamps: see ``LOCATE_INVALID_TEXT``). The value is cast to text
    #: first: an unconstrained ``numeric`` reaches Arrow as a string, but is no text in SQL.
    INVALID_TEXT: ClassVar[Mapping[str, str]] = {
        "int": "NOT (CAST({value} AS TEXT) ~ '^\\s*[+-]?[0-9]+\\s*$')",
        "decimal": "NOT (CAST({value} AS TEXT) ~ '^\\s*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?\\s*$')",
        "float": "NOT (CAST({value} AS TEXT) ~* '^\\s*([+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
        "|[+-]?inf(inity)?|nan)\\s*$')",
        "bool": "NOT (lower(trim(CAST({value} AS TEXT))) IN "
        "('t', 'true', 'f', 'false', '1', '0', 'y', 'yes', 'n', 'no', 'on', 'off'))",
    }
    #: Bad date and time text fails the cast without naming the row: a probe casts the column
    #: first (:meth:`cast_fails`), and only when it fails does this per-row function find
    #: the row (an exception handler per row is ~15x slower than the cast).
    LOCATE_INVALID_TEXT: ClassVar[Mapping[str, str]] = {
        family: f"pg_temp.ematix_invalid_time(CAST({{value}} AS TEXT), '{family}')"
        for family in ("date", "timestamp", "timestamptz")
    }
    #: Doubles hash by their IEEE-754 bits (``float8send``); -0.0 as 0.0, every NaN alike.
    HASH_TEXT: ClassVar[Mapping[str, str]] = {
        **COMMON_HASH_TEXT,
        "float": "CASE WHEN {c} IS NULL THEN NULL WHEN {c} = 'NaN'::float8 THEN '7ff8000000000000' "
        "WHEN {c} = 0 THEN '0000000000000000' ELSE encode(float8send({c}), 'hex') END",
        "date": "to_char({c}, 'YYYY-MM-DD')",
        "timestamp": "to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')",
        "timestamptz": "to_char(({c} AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI:SS.US')",
        "bytes": "encode({c}, 'hex')",
    }
    #: ``octet_length`` counts bytes in the server encoding: UTF-8 on a UTF8 database
    #: (PostgreSQL's default), which cross-backend identical hashes of non-ASCII text need.
    #: ``concat`` skips the NULL text after its ``N``.
    HASH_PART: ClassVar[str] = "COALESCE(octet_length({text}) || ':', 'N'), {text}"
    HASH_JOIN: ClassVar[str] = ", "
    HASH_EMPTY: ClassVar[str] = "''"
    HASH_DIGEST: ClassVar[str] = "md5(convert_to(concat({joined}), 'UTF8'))"
    TYPE_MAP: ClassVar[Mapping[str, str]] = {
        "JSON": "JSONB",
        "VARBINARY": "BYTEA",
        "DOUBLE": "DOUBLE PRECISION",
        "TIMESTAMPTZ": "TIMESTAMPTZ",
    }

    @classmethod
    @override
    def open(cls, connection: Any, *, read_only: bool = False) -> PostgresBackend:
        return cls(connection.conninfo(), connection=connection)

    def __init__(self, dsn: str, *, connection: Any = None) -> None:
        super().__init__(connection)
        self.conninfo = dsn
        self.con = psycopg.connect(dsn, autocommit=True)
        #: Catalog rows read in the open transaction, per quoted table: column name to
        #: ``(type as format_type writes it, type OID)``. Any statement but a query, and the
        #: transaction's end, forget them (DDL may have changed the table).
        self._catalog: dict[str, dict[str, tuple[str, int]]] = {}
        self._load_session_prepared = False

    @override
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> int:
        self._catalog.clear()
        with self.con.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    @override
    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple]:
        with self.con.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    @override
    def read_arrow(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        batch_size: int = 100_000,
        *,
        snapshot: str | None = None,
    ) -> pa.RecordBatchReader:
        """Stream ``sql`` as Arrow through the ADBC driver (binary COPY in C, no Python loop).

        Parameters use ``$1`` (see :meth:`source_placeholder`). ``numeric`` columns arrive as
        ``decimal128`` with the column's precision and scale; JSON as text.

        ``snapshot`` (from ``pg_export_snapshot()`` in an open transaction) makes the read see
        exactly what that transaction sees. Such a read waits at most a moment for a lock: a
        lock request queued behind the exporting transaction would otherwise block it, and the
        exporter waiting for the read, for good.
        """
        import adbc_driver_postgresql.dbapi as adbc

        connection = adbc.connect(self.conninfo)
        cursor = connection.cursor()
        try:
            if snapshot is not None:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"SET TRANSACTION SNAPSHOT {self.literal_sql(snapshot)}")
                cursor.execute(f"SET lock_timeout = {self.literal_sql(_SNAPSHOT_LOCK_TIMEOUT)}")
            cursor.execute("SET TimeZone = 'UTC'")
            cursor.execute(sql, parameters=tuple(params) if params else None)
            reader = cursor.fetch_record_batch()
        except BaseException:
            cursor.close()
            connection.close()
            raise
        schema = pa.schema([_plain_field(f) for f in reader.schema])

        def batches():
            try:
                for batch in reader:
                    yield pa.RecordBatch.from_arrays(
                        [
                            _plain_array(c, f.type)
                            for c, f in zip(batch.columns, schema, strict=True)
                        ],
                        schema=schema,
                    )
            finally:
                cursor.close()
                connection.close()

        return pa.RecordBatchReader.from_batches(schema, batches())

    @override
    def result_schema(self, sql: str) -> pa.Schema:
        with self.con.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql}) AS _ematix_q LIMIT 0")
            fields = []
            for d in cursor.description:
                if d.type_code == 1700:
                    arrow_type = (
                        pa.decimal128(min(d.precision, 38), d.scale or 0)
                        if d.precision
                        else pa.string()
                    )
                else:
                    arrow_type = _OID_ARROW.get(d.type_code, pa.string())
                fields.append(pa.field(d.name, arrow_type))
        return pa.schema(fields)

    def source_placeholder(self) -> str:
        """Marker for the watermark in source SQL read through ADBC (used once, bound once)."""
        return "$1"

    def watermark_params(self, value: Any, occurrences: int) -> list[Any]:
        """``$1`` may appear several times but is bound once."""
        return [value]

    def source_marker(self, index: int) -> str:
        """ADBC numbers its markers: ``$1``, ``$2`` and so on."""
        return f"${index + 1}"

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
        return self.copy_arrow(self.quote(table), reader)

    @override
    def copy_arrow(
        self,
        table_sql: str,
        reader: pa.RecordBatchReader,
        columns: Sequence[str] | None = None,
        *,
        freeze: bool = False,
    ) -> int:
        """``COPY`` every batch of ``reader`` into ``table_sql``: binary where types allow, else CSV.

        Binary ``COPY`` (:mod:`ematix_engine.backends.pg_binary`) is used when every column's
        Arrow type converts exactly to the target column's type; otherwise Arrow writes CSV
        that PostgreSQL parses. A worker thread pulls the next batch (the reader may still be
        computing it, e.g. a DuckDB query hashing rows) and encodes it while this thread sends
        the previous one, so client work overlaps with the server ingesting. At most two
        encoded batches wait. ``freeze`` (only for a table created in this transaction) writes
        the rows frozen, so the first scans after the load need not rewrite every page to set
        hint bits.
        """
        names = list(columns or reader.schema.names)
        column_list = ", ".join(self.quote(n) for n in names)
        plan = binary_plan(reader.schema, self._column_type_oids(table_sql, names))
        options = "FORMAT binary" if plan is not None else "FORMAT csv"
        log.debug("COPY %s (%s) as %s", table_sql, reader.schema, options)
        if freeze:
            options += ", FREEZE"
        encode: Callable[[pa.RecordBatch], Any] = plan.encode if plan is not None else _csv_bytes
        header = plan.header() if plan is not None else b""  # before any batch is encoded
        total = 0
        with (
            self.con.cursor() as cursor,
            cursor.copy(f"COPY {table_sql} ({column_list}) FROM STDIN ({options})") as copy,
            _BatchEncoder(reader, encode) as encoded,
        ):
            if header:
                copy.write(header)
            for rows, chunk in encoded:
                copy.write(chunk)
                total += rows
            if plan is not None:
                copy.write(plan.trailer())
        return total

    def _column_type_oids(self, table_sql: str, names: Sequence[str]) -> list[int]:
        """The type OIDs of ``names`` in ``table_sql`` (empty when one is not found)."""
        found = self._catalog.get(table_sql)
        if found is None or not all(n in found for n in names):
            found = self._read_catalog(table_sql)
        if not all(n in found for n in names):
            return []
        return [found[n][1] for n in names]

    def _read_catalog(self, table_sql: str) -> dict[str, tuple[str, int]]:
        """Read (and keep for the transaction) the columns of ``table_sql``; empty if none.

        ``pg_attribute`` directly: ``information_schema.columns`` is a view over several
        catalogs and took about five times as long, once or twice per write.
        """
        rows = self.query(
            "SELECT attname, lower(format_type(atttypid, atttypmod)), atttypid::int "
            "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (table_sql,),
        )
        found = {name: (type_name, int(oid)) for name, type_name, oid in rows}
        if found:
            self._catalog[table_sql] = found
        return found

    @property
    @override
    def store_id(self) -> str:
        return f"postgres:{self.conninfo}"

    @override
    def lock_target(self, schema: str, table: str) -> None:
        """A transaction-scoped advisory lock on the target, waited for a bounded time."""
        from ematix_engine.backends.locks import TargetBusy, advisory_key, lock_timeout_s

        # Not held by another write (the usual case): one round trip.
        if self.query("SELECT pg_try_advisory_xact_lock(%s)", (advisory_key(schema, table),))[0][0]:
            return
        self.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_s():g}s",))
        try:
            self.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(schema, table),))
        except psycopg.errors.LockNotAvailable as error:
            raise TargetBusy(f"{schema}.{table}") from error
        self.execute("SET LOCAL lock_timeout = DEFAULT")

    @override
    def lock_and_read(self, table_sql: str, sql: str) -> Callable[[], pa.Table]:
        """``SHARE ROW EXCLUSIVE`` lock, then read ``sql`` at the snapshot this transaction exports.

        The read runs on a second (ADBC, binary) connection, so it sees exactly what the load's
        statements will update, in any isolation level.
        """
        self.execute(f"LOCK TABLE {table_sql} IN SHARE ROW EXCLUSIVE MODE")
        snapshot = self.query("SELECT pg_export_snapshot()")[0][0]
        return lambda: self.read_arrow(sql, snapshot=snapshot).read_all()

    @override
    def table_options_sql(self, *, update_heavy: bool = False) -> str:
        """``fillfactor = 90`` for tables whose rows later loads update (merge, SCD2).

        Closing a version rewrites its row; with free room on the page the new row version
        stays there (a HOT update) and the primary key index is not touched, which measured
        about 40% faster for closing 110,000 of 1,000,000 versions.
        """
        return " WITH (fillfactor = 90)" if update_heavy else ""

    @override
    def begin(self) -> None:
        self._catalog.clear()
        self.con.execute("BEGIN")

    @override
    def commit(self) -> None:
        self._catalog.clear()
        self.con.execute("COMMIT")

    @override
    def rollback(self) -> None:
        self._catalog.clear()
        if self.con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.con.execute("ROLLBACK")

    @override
    def prepare_load_session(self) -> None:
        if self._load_session_prepared:  # a kept session's next write
            return
        self.con.execute("SET TimeZone = 'UTC'")
        # A load joins temp tables of up to millions of rows: keep them in memory and let
        # sorts and hashes stay there too (temp_buffers only takes before the first temp table).
        self.con.execute("SET temp_buffers = '256MB'")
        self.con.execute("SET work_mem = '256MB'")
        # Set outside a transaction, they last as long as the connection (inside one, a
        # rollback would undo them).
        idle = self.con.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        self._load_session_prepared = idle

    @override
    def cast_fails(self, sql: str) -> bool:
        self.con.execute("SAVEPOINT ematix_cast_probe")
        try:
            self.con.execute(sql)
        except psycopg.errors.DataError:
            self.con.execute("ROLLBACK TO SAVEPOINT ematix_cast_probe")
            self.con.execute(_INVALID_TIME_FUNCTION)  # what LOCATE_INVALID_TEXT calls
            return True
        self.con.execute("RELEASE SAVEPOINT ematix_cast_probe")
        return False

    @override
    def analyze(self, table: str) -> None:
        # Temp tables are never auto-analysed; without statistics the planner guesses badly.
        self.con.execute(f"ANALYZE {self.quote(table)}")

    @override
    def param_placeholder(self, index: int) -> str:
        return "%s"

    @override
    def escape_user_sql(self, sql: str) -> str:
        """Double ``%`` for psycopg (statements sent with ``%s`` parameters)."""
        return sql.replace("%", "%%")

    @override
    def table_columns(self, schema: str | None, name: str) -> dict[str, str] | None:
        table_sql = self.table_sql(schema or "public", name)
        found = self._catalog.get(table_sql)
        if found is None:
            found = self._read_catalog(table_sql)
        return {column: type_name for column, (type_name, _) in found.items()} or None

    @override
    def close(self) -> None:
        self.con.close()


class _BatchEncoder:
    """Iterate ``(rows, encoded)`` for a reader's batches, encoded on a worker thread."""

    _DONE = object()

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        encode: Callable[[pa.RecordBatch], Any],
        depth: int = 2,
    ) -> None:
        self._reader = reader
        self._encode = encode
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ematix-csv", daemon=True)

    def __enter__(self) -> _BatchEncoder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a worker waiting on a full queue
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for batch in self._reader:
                if batch.num_rows == 0:
                    continue
                if not self._put((batch.num_rows, self._encode(batch))):
                    return
        except BaseException as error:  # re-raised on the consuming thread
            self._put(error)
            return
        self._put(self._DONE)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _csv_bytes(batch: pa.RecordBatch) -> memoryview:
    """One batch as CSV that PostgreSQL's ``COPY … (FORMAT csv)`` reads back exactly."""
    sink = io.BytesIO()
    pa_csv.write_csv(_csv_ready(batch), sink, _CSV_OPTIONS)
    return sink.getbuffer()


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _bytea_text(column: pa.Array) -> pa.Array:
    r"""``bytea`` input text (``\x`` + hex digits) for every value, vectorised with NumPy."""
    column = column.cast(pa.large_binary())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[
        column.offset : column.offset + len(column) + 1
    ]
    values = column.buffers()[2]
    data = (
        np.frombuffer(values, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if values is not None
        else np.empty(0, dtype=np.uint8)
    )
    digits = np.empty(data.size * 2, dtype=np.uint8)
    digits[0::2] = _HEX_DIGITS[data >> 4]
    digits[1::2] = _HEX_DIGITS[data & 0x0F]
    hexed = pa.LargeStringArray.from_buffers(
        len(column), pa.py_buffer((offsets - offsets[0]) * 2), pa.py_buffer(digits)
    )
    prefixed = pc.binary_join_element_wise(
        pa.scalar("\\x", pa.large_string()), hexed, pa.scalar("", pa.large_string())
    )
    return pc.if_else(column.is_null(), pa.scalar(None, pa.large_string()), prefixed).cast(
        pa.string()
    )


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Rewrite columns the CSV writer cannot express the way PostgreSQL reads them."""
    arrays = []
    changed = False
    for column in batch.columns:
        t = column.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            arrays.append(_bytea_text(column))
            changed = True
        elif pa.types.is_timestamp(t) and t.tz is not None:
            # Arrow's CSV writer (and strftime) are slow on zoned timestamps: ~2 s per million.
            # A plain cast of the UTC value to text is ~10x faster; load sessions run with
            # TimeZone = UTC, so PostgreSQL reads the zone-less text as UTC.
            arrays.append(pc.cast(column.cast(pa.timestamp("us")), pa.string()))
            changed = True
        elif pa.types.is_dictionary(t):
            arrays.append(pc.cast(column, t.value_type))
            changed = True
        else:
            arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch
