"""DuckDB: an embedded target and source; also the compute engine behind Delta loads."""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from typing_extensions import override

from ematix_engine.backends.base import COMMON_HASH_TEXT, SqlBackend, make_parent_dir
from ematix_engine.schema.types import ColumnType

__all__ = ["DuckDBBackend"]

_DML = ("INSERT", "UPDATE", "DELETE")
# One folder per OS user: a shared one would belong to whoever created it first.
_SCRATCH = os.path.join(tempfile.gettempdir(), f"ematix-duckdb-{getpass.getuser()}")


def _connect(path: str, config: dict, read_only: bool, name: str) -> duckdb.DuckDBPyConnection:
    """Open ``path``; read-only sessions share the file with other readers.

    DuckDB lets one process write a file, or any number of processes read it. A read-only
    session is refused when this process already has the file open for writing (DuckDB wants
    one configuration per file and process): it then shares that read-write database instead.
    When another process is writing the file, reading it is impossible: the error says so.
    """
    if not read_only:
        return _connect_for_writing(path, config)
    try:
        return duckdb.connect(path, read_only=True, config=config)
    except duckdb.ConnectionException as error:
        if "different configuration" not in str(error):
            raise
        return duckdb.connect(path, config=config)  # this process writes it: share that
    except duckdb.IOException as error:
        if "lock" not in str(error).lower():
            raise
        from ematix_engine.errors import ConnectionFailedError

        raise ConnectionFailedError(
            name,
            f"the DuckDB file {path} is open for writing in another process, and DuckDB lets "
            f"no other process read a file while one writes it; retry when that process has "
            f"finished (ematix opens DuckDB sources read-only, so readers never block each "
            f"other). DuckDB said: {error}",
        ) from None


#: The in-memory database behind :meth:`DuckDBBackend.scratch` sessions, by process id (a
#: forked child opens its own rather than use a copy of its parent's).
_SCRATCH_DATABASES: dict[int, duckdb.DuckDBPyConnection] = {}
_SCRATCH_LOCK = threading.Lock()


def _scratch_database() -> duckdb.DuckDBPyConnection:
    """This process's in-memory database for preparing loads."""
    with _SCRATCH_LOCK:
        pid = os.getpid()
        if pid not in _SCRATCH_DATABASES:
            _SCRATCH_DATABASES.clear()
            _SCRATCH_DATABASES[pid] = duckdb.connect(
                ":memory:", config={"temp_directory": _SCRATCH}
            )
        return _SCRATCH_DATABASES[pid]


def _connect_for_writing(path: str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Open ``path`` to write, waiting (bounded) while another process holds DuckDB's lock.

    DuckDB lets one process write a file at a time; a second load of the same target from
    another process waits here for its turn (:mod:`ematix_engine.backends.locks`).
    """
    from ematix_engine.backends.locks import busy_error, lock_timeout_s

    deadline = time.monotonic() + lock_timeout_s()
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path, config=config)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise busy_error("", path, "the process holding the DuckDB file") from error
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


#: A DOUBLE's IEEE-754 bits as a BIGINT (``{c}``: the column).
_FLOAT_BITS = "CAST(CAST({c} AS BIT) AS BIGINT)"


class DuckDBBackend(SqlBackend):
    """A DuckDB database file (or ``:memory:``)."""

    name = "duckdb"
    DISPLAY_NAME = "DuckDB"
    dialect = "duckdb"
    CREATES_PRIMARY_KEY = False
    #: Opening a file and closing it (which checkpoints it) cost more than a micro-batch's
    #: write; a stream keeps it open while busy and lets go when idle.
    STAYS_OPEN_BETWEEN_WRITES = True
    LOCKS_FILE_WHILE_OPEN = True
    #: DuckDB's casts fail on bad text; TRY_CAST finds the row, so the error can name its key.
    INVALID_TEXT: ClassVar[Mapping[str, str]] = dict.fromkeys(
        ("int", "float", "decimal", "bool", "date", "timestamp", "timestamptz"),
        "TRY_CAST({value} AS {type}) IS NULL",
    )
    HASH_TEXT: ClassVar[Mapping[str, str]] = {
        **COMMON_HASH_TEXT,
        # IEEE-754 bits as 16 hex digits (a DOUBLE casts to its 64-bit BIT string); -0.0 hashes
        # as 0.0 and every NaN alike, as they compare (DuckDB's NaN equals itself). to_hex is
        # about twice as fast as printf('%016x'); only bits below 2^60 (doubles under ~1e-231)
        # need the leading zeros padded.
        "float": "CASE WHEN {c} IS NULL THEN NULL WHEN isnan({c}) THEN '7ff8000000000000' "
        "WHEN {c} = 0 THEN '0000000000000000' "
        f"WHEN {_FLOAT_BITS} BETWEEN 0 AND {2**60 - 1} "
        f"THEN lpad(lower(to_hex({_FLOAT_BITS})), 16, '0') "
        f"ELSE lower(to_hex({_FLOAT_BITS})) END",
        "date": "strftime(CAST({c} AS DATE), '%Y-%m-%d')",
        "timestamp": "strftime({c}, '%Y-%m-%d %H:%M:%S.%f')",
        "timestamptz": "strftime(timezone('UTC', {c}), '%Y-%m-%d %H:%M:%S.%f')",
    }
    # strlen counts bytes; concat skips the NULL text after its 'N'. A VARCHAR may hold NUL,
    # and md5 hashes its UTF-8 bytes.
    HASH_PART: ClassVar[str] = "COALESCE(CAST(strlen({text}) AS VARCHAR) || ':', 'N'), {text}"
    HASH_JOIN: ClassVar[str] = ", "
    HASH_EMPTY: ClassVar[str] = "''"
    HASH_DIGEST: ClassVar[str] = "md5(concat({joined}))"
    TYPE_MAP: ClassVar[Mapping[str, str]] = {"VARBINARY": "BLOB", "JSON": "JSON"}

    @classmethod
    @override
    def open(cls, connection: Any, *, read_only: bool = False) -> DuckDBBackend:
        if read_only and connection.path != ":memory:":
            if not os.path.exists(connection.path):  # nothing to read yet: create no file
                return cls(":memory:", connection=connection)
            return cls(connection.path, connection=connection, read_only=True)
        make_parent_dir(connection.path)
        return cls(connection.path, connection=connection)

    def __init__(
        self, path: str = ":memory:", *, connection: Any = None, read_only: bool = False
    ) -> None:
        super().__init__(connection)
        self.path = path
        self.read_only = read_only
        # An in-memory session (the preparing or planning step of a load) spills beyond its
        # memory limit into the system's temporary folder, not into ``.tmp`` under the cwd.
        config = {"temp_directory": _SCRATCH} if path == ":memory:" else {}
        self.con = _connect(path, config, read_only, getattr(connection, "name", path))
        self._catalog: dict[tuple[str, str], dict[str, str]] = {}

    @classmethod
    def scratch(cls) -> DuckDBBackend:
        """A private in-memory session for preparing one load (temporary objects only).

        Sessions are connections to one in-memory database the process keeps: opening one
        costs about a millisecond instead of the ~20 ms of a new database, which matters for a
        stream's micro-batches. Temporary tables and views are private to their session.
        """
        session = cls.__new__(cls)
        SqlBackend.__init__(session, None)
        session.path = ":memory:"
        session.read_only = False
        session.con = _scratch_database().cursor()
        session._catalog = {}
        return session

    @override
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> int:
        self._catalog.clear()  # a statement may change what a table's columns are
        result = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
        if sql.lstrip()[:6].upper() in _DML:
            row = result.fetchone()
            return int(row[0]) if row else -1
        return -1

    @override
    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple]:
        return (
            self.con.execute(sql, params).fetchall()
            if params is not None
            else self.con.execute(sql).fetchall()
        )

    @override
    def read_arrow(
        self, sql: str, params: Sequence[Any] | None = None, batch_size: int = 100_000
    ) -> pa.RecordBatchReader:
        return self.con.sql(sql, params=params).to_arrow_reader(batch_size)

    @override
    def stage_arrow(
        self,
        table: str,
        reader: pa.RecordBatchReader,
        column_types: Mapping[str, type[ColumnType]] | None = None,
    ) -> int:
        # Arrow types are kept: the plan casts to the target's types when it reads the table.
        with self._arrow_view(reader) as view:
            self.execute(
                f"CREATE TEMP TABLE {self.quote(table)} AS SELECT * FROM {self.quote(view)}"
            )
        return int(self.query(f"SELECT COUNT(*) FROM {self.quote(table)}")[0][0])

    @override
    def copy_arrow(
        self,
        table_sql: str,
        reader: pa.RecordBatchReader,
        columns: Sequence[str] | None = None,
        *,
        freeze: bool = False,
    ) -> int:
        """Append ``reader``'s batches with one ``INSERT … SELECT`` over them (no staging)."""
        names = ", ".join(self.quote(n) for n in columns or reader.schema.names)
        with self._arrow_view(reader) as view:
            return self.execute(
                f"INSERT INTO {table_sql} ({names}) SELECT * FROM {self.quote(view)}"
            )

    @contextlib.contextmanager
    def _arrow_view(self, reader: pa.RecordBatchReader) -> Iterator[str]:
        """``reader`` as a view for the statement run in the block, then unregistered.

        An error the reader raises while DuckDB pulls its batches is re-raised as itself
        (DuckDB reports it only as a generic failure).
        """
        view = f"_ematix_arrow_{uuid.uuid4().hex[:12]}"
        failures: list[BaseException] = []

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except BaseException as error:
                failures.append(error)
                raise

        self.con.register(view, pa.RecordBatchReader.from_batches(reader.schema, batches()))
        try:
            yield view
        except Exception:
            if failures:
                raise failures[0] from None
            raise
        finally:
            with contextlib.suppress(duckdb.Error):  # must not hide the error above
                self.con.unregister(view)

    def register_arrow(self, name: str, data: Any) -> None:
        """Expose an Arrow table, dataset or reader as a view named ``name``."""
        self.con.register(name, data)

    @override
    def prepare_load_session(self) -> None:
        self.con.execute("SET TimeZone = 'UTC'")

    @override
    def begin(self) -> None:
        self._catalog.clear()
        self.con.execute("BEGIN TRANSACTION")

    @override
    def commit(self) -> None:
        self._catalog.clear()
        self.con.execute("COMMIT")

    @override
    def rollback(self) -> None:
        self._catalog.clear()
        self.con.execute("ROLLBACK")

    @override
    def table_columns(self, schema: str | None, name: str) -> dict[str, str] | None:
        """The columns of a table of this database, kept until the next statement or transaction.

        A write asks twice (does the table exist, does it fit). ``duckdb_columns()`` is read
        directly (the same tables, views and temporary tables as ``information_schema.columns``,
        the view over it, in half the time): a stream's writes ask while the other core
        parses the next batch, where one read took 7-15 ms.
        """
        key = (schema or "main", name)
        found = self._catalog.get(key)
        if found is None:
            rows = self.query(
                "SELECT column_name, lower(data_type) FROM duckdb_columns() "
                "WHERE NOT internal AND schema_name = ? AND table_name = ? "
                "ORDER BY column_index",
                list(key),
            )
            if not rows:
                return None
            found = self._catalog[key] = dict(rows)
        return dict(found)

    @override
    def close(self) -> None:
        self.con.close()
