"""What every SQL backend offers the write core.

A backend wraps one open database session. The write core (``ematix_engine.write``) asks it to
quote names, map column types, run statements inside one transaction, stream query results out
as Arrow, and stage Arrow batches into a temporary table. Differences between systems are data:
capability flags, a type map, cast and ``row_hash`` SQL templates on each subclass
(``backends/<system>.py``), in the manner of sqlglot's dialect classes. Nothing outside
``backends/`` asks which system it talks to.

Every backend is also a :class:`~ematix_engine.backends.store.TableStore`: a write opens a
:meth:`SqlBackend.write_session` whose transaction commits the rows together with a named
checkpoint (:mod:`ematix_engine.backends.checkpoints`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from sqlglot import exp

from ematix_engine.errors import UnsupportedError
from ematix_engine.schema.types import ColumnType, column_type_from_arrow

if TYPE_CHECKING:
    from ematix_engine.specs import LoadMode

__all__ = ["SqlBackend", "SqlWriteSession"]

#: Canonical text of each hash family, shared by the dialects that agree (``{c}``: the column,
#: ``{scale}``: a decimal's scale). See :mod:`ematix_engine.schema.hashing` for the rules.
COMMON_HASH_TEXT: Mapping[str, str] = {
    "text": "CAST({c} AS TEXT)",
    "json": "CAST({c} AS TEXT)",
    "int": "CAST({c} AS TEXT)",
    "bool": "CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN 'true' ELSE 'false' END",
    "decimal": "CAST({c} AS TEXT)",
    "date": "CAST({c} AS TEXT)",
    "timestamp": "CAST({c} AS TEXT)",
    "timestamptz": "CAST({c} AS TEXT)",
    "bytes": "CASE WHEN {c} IS NULL THEN NULL ELSE lower(hex({c})) END",
}

log = logging.getLogger("ematix.backends")


class SqlBackend(ABC):
    """A database session the batch engine can plan against.

    Subclasses set the class attributes and implement the abstract methods.
    """

    #: Short system name used in messages and Dagster kinds.
    name: ClassVar[str] = ""
    #: sqlglot dialect name.
    dialect: ClassVar[str] = ""
    #: The system's name as people write it, for messages.
    DISPLAY_NAME: ClassVar[str] = ""
    #: Whether ``schema.table`` names are real namespaces (SQLite: no, everything in main).
    SUPPORTS_SCHEMAS: ClassVar[bool] = True
    #: Whether ``FULL JOIN`` works (SQLite before 3.39 has none).
    SUPPORTS_FULL_JOIN: ClassVar[bool] = True
    #: Whether targets get a PRIMARY KEY constraint (DuckDB: no; its ART index slows bulk
    #: loads and rejects some UPDATEs of indexed tables).
    CREATES_PRIMARY_KEY: ClassVar[bool] = True
    #: Whether cross-database loads should be normalized, de-duplicated and hashed in-process
    #: (DuckDB over the Arrow stream) before they reach this backend, because doing it in the
    #: target costs more (PostgreSQL hashes ~6x slower than DuckDB).
    PREPARES_IN_PROCESS: ClassVar[bool] = False
    #: Whether a stream may keep one session open between its writes (PostgreSQL, DuckDB;
    #: SQLite reconnects per write, which costs little).
    STAYS_OPEN_BETWEEN_WRITES: ClassVar[bool] = False
    #: Whether an open session keeps other processes from opening the database (a DuckDB
    #: file): a stream then closes its kept session whenever it goes idle, and after holding
    #: it for a while when it never does.
    LOCKS_FILE_WHILE_OPEN: ClassVar[bool] = False
    #: Whether the database joins by nested loops only (SQLite): a plan then copies a large
    #: subquery it joins into an indexed temp table instead of joining the subquery itself.
    JOINS_BY_NESTED_LOOPS: ClassVar[bool] = False
    #: Whether a first load into a table it created adds the primary key after the rows (an
    #: index builds faster than it updates; PostgreSQL).
    ADDS_PRIMARY_KEY_AFTER_FIRST_LOAD: ClassVar[bool] = False
    #: Whether the database enforces integer widths and VARCHAR lengths (SQLite: no), so a
    #: narrower existing column is schema drift.
    ENFORCES_TYPE_WIDTHS: ClassVar[bool] = True
    #: Whether timestamps are stored as canonical text (SQLite), so parameters are sent so.
    TIMESTAMPS_AS_TEXT: ClassVar[bool] = False
    #: NULL-safe "differs" operator.
    NULL_SAFE_DISTINCT: ClassVar[str] = "IS DISTINCT FROM"
    #: Statement prefix that asks for a query plan without running the query.
    EXPLAIN: ClassVar[str] = "EXPLAIN"
    #: Whether SQL runs in the store itself (a SQL database: yes).
    RUNS_SQL: ClassVar[bool] = True
    #: DDL type overrides by ``ColumnType.sql_name``; others render through sqlglot.
    TYPE_MAP: ClassVar[Mapping[str, str]] = {}
    #: Cast templates by hash family where a plain ``CAST({value} AS {type})`` is not enough.
    CAST_TEMPLATES: ClassVar[Mapping[str, str]] = {}
    #: Per hash family, a predicate true when text ``{value}`` is not a value of the type
    #: ``{type}`` although this backend's cast would accept it (coercing it). Families whose
    #: cast fails loudly on bad text need no entry.
    INVALID_TEXT: ClassVar[Mapping[str, str]] = {}
    #: Per hash family, a predicate like ``INVALID_TEXT`` for text the cast refuses, too slow
    #: to run on every row (PostgreSQL's date and time casts, checked by a function per row):
    #: it runs only after :meth:`cast_fails` saw the cast fail, to find the row.
    LOCATE_INVALID_TEXT: ClassVar[Mapping[str, str]] = {}
    #: Canonical-text SQL per hash family (``{c}`` the column, ``{scale}`` a decimal scale).
    HASH_TEXT: ClassVar[Mapping[str, str]] = COMMON_HASH_TEXT
    #: One hashed part from its canonical text ``{text}``: ``<UTF-8 byte length>:<text>``, and
    #: ``N`` for NULL (or, where the digest is a registered function, the text itself).
    HASH_PART: ClassVar[str] = "{text}"
    #: Text placed between two parts (concatenation; a function's argument separator).
    HASH_JOIN: ClassVar[str] = ", "
    #: The parts of a row with no compare column.
    HASH_EMPTY: ClassVar[str] = ""
    #: The digest of the joined parts ``{joined}`` as 64 lowercase hex characters.
    HASH_DIGEST: ClassVar[str] = "{joined}"

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        #: Target schemas this session made sure exist, with the checkpoint table: a session
        #: kept between writes checks them once.
        self._ensured: set[str] = set()

    @classmethod
    @abstractmethod
    def open(cls, connection: Any, *, read_only: bool = False) -> SqlBackend:
        """Open a session on a resolved typed connection (``read_only``: for reading only)."""

    # ----------------------------------------------------------------- naming and types
    def quote(self, name: str) -> str:
        """Quote an identifier for this dialect (always quoted, whatever the characters)."""
        return exp.to_identifier(name, quoted=True).sql(self.dialect)

    def table_sql(self, schema: str | None, name: str) -> str:
        """Quoted, qualified table name (schema dropped where schemas are not supported)."""
        if schema and self.SUPPORTS_SCHEMAS:
            return f"{self.quote(schema)}.{self.quote(name)}"
        return self.quote(name)

    def column_type_sql(self, column_type: type[ColumnType]) -> str:
        """DDL type of ``column_type`` on this backend."""
        override = self.TYPE_MAP.get(column_type.sql_name)
        if override is not None:
            return override
        return column_type.sql_type().sql(self.dialect)

    def columns_sql(
        self, schema: pa.Schema, column_types: Mapping[str, type[ColumnType]] | None = None
    ) -> str:
        """Column definitions for a table shaped like ``schema`` (``column_types`` win)."""
        declared = column_types or {}
        return ", ".join(
            f"{self.quote(f.name)} "
            f"{self.column_type_sql(declared.get(f.name) or column_type_from_arrow(f.type))}"
            for f in schema
        )

    def cast_sql(self, value_sql: str, column_type: type[ColumnType]) -> str:
        """SQL casting ``value_sql`` (an expression) to ``column_type`` on this backend."""
        template = self.CAST_TEMPLATES.get(column_type.hash_family, "CAST({value} AS {type})")
        return template.format(value=value_sql, type=self.column_type_sql(column_type))

    @classmethod
    def canonical_text_sql(cls, column_sql: str, family: str, scale: int = 0) -> str:
        """SQL rendering ``column_sql`` as the canonical text of its hash family.

        Raises:
            ValueError: ``family`` is not a hash family.
        """
        template = cls.HASH_TEXT.get(family)
        if template is None:
            raise ValueError(f"unknown hash family {family!r}")
        return template.format(c=column_sql, scale=scale)

    @classmethod
    def row_hash_sql(cls, columns: Sequence[tuple[str, str, int]]) -> str:
        """SQL computing ``row_hash`` over ``(column sql, hash family, scale)`` in order."""
        parts = [
            cls.HASH_PART.format(text=cls.canonical_text_sql(c, family, scale))
            for c, family, scale in columns
        ]
        return cls.HASH_DIGEST.format(joined=cls.HASH_JOIN.join(parts) if parts else cls.HASH_EMPTY)

    def timestamp_param(self, value: datetime) -> Any:
        """A timestamp as this backend takes it as a bound parameter."""
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if self.TIMESTAMPS_AS_TEXT else value

    def table_options_sql(self, *, update_heavy: bool = False) -> str:
        """Storage options appended to ``CREATE TABLE`` (none by default)."""
        return ""

    def literal_sql(self, value: str) -> str:
        """A string literal, escaped by sqlglot."""
        return exp.Literal.string(value).sql(self.dialect)

    # --------------------------------------------------------------- statements and data
    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> int:
        """Run one statement; return the affected row count (-1 when unknown)."""

    @abstractmethod
    def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple]:
        """Run a query and return every row."""

    @abstractmethod
    def read_arrow(
        self, sql: str, params: Sequence[Any] | None = None, batch_size: int = 100_000
    ) -> pa.RecordBatchReader:
        """Stream a query's result as Arrow record batches."""

    @abstractmethod
    def stage_arrow(
        self,
        table: str,
        reader: pa.RecordBatchReader,
        column_types: Mapping[str, type[ColumnType]] | None = None,
    ) -> int:
        """Create temporary table ``table`` shaped like ``reader`` and load every batch into it.

        Args:
            table: the temporary table's name.
            reader: the rows.
            column_types: column types to use instead of the ones derived from Arrow (e.g. a
                JSON column that arrives as Arrow strings), by column name.

        Returns:
            The number of rows staged.
        """

    def copy_arrow(
        self,
        table_sql: str,
        reader: pa.RecordBatchReader,
        columns: Sequence[str] | None = None,
        *,
        freeze: bool = False,
    ) -> int:
        """Append every batch of ``reader`` to the existing table ``table_sql``.

        Needed by backends with ``PREPARES_IN_PROCESS``, whose prepared rows arrive as Arrow.

        Args:
            table_sql: the quoted table.
            reader: the rows.
            columns: the table's columns the reader's columns fill, in order (default: the
                reader's names).
            freeze: the table was created in this transaction; its rows may be written
                frozen (no later hint-bit writes).

        Returns:
            The number of rows appended.

        Raises:
            UnsupportedError: the backend cannot append Arrow batches (the default).
        """
        raise UnsupportedError(self.name, "appending Arrow batches to an existing table")

    def lock_and_read(self, table_sql: str, sql: str) -> Callable[[], pa.Table]:
        """Lock ``table_sql`` against other writers (readers pass), then prepare to read ``sql``.

        Needed by backends with ``PREPARES_IN_PROCESS``: the in-process compare reads the
        target's current rows while the load's transaction holds the lock.

        Returns:
            A call that reads the whole result exactly as the load's transaction sees it.

        Raises:
            UnsupportedError: the backend cannot read its own transaction's view elsewhere.
        """
        raise UnsupportedError(self.name, "reading a locked table in-process")

    @abstractmethod
    def begin(self) -> None:
        """Open a transaction."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the open transaction."""

    @abstractmethod
    def rollback(self) -> None:
        """Roll the open transaction back."""

    @abstractmethod
    def table_columns(self, schema: str | None, name: str) -> dict[str, str] | None:
        """Existing columns of a table as ``{name: lower-case type}``, or None when absent."""

    @abstractmethod
    def close(self) -> None:
        """Close the session."""

    # ------------------------------------------------------------------------ helpers
    def param_placeholder(self, index: int) -> str:
        """Positional parameter marker for source queries (``?`` unless overridden)."""
        return "?"

    def result_schema(self, sql: str) -> pa.Schema:
        """Arrow schema of a query's result, computed in this session (sees temp tables)."""
        return self.read_arrow(f"SELECT * FROM ({sql}) AS _ematix_q LIMIT 0").schema

    def source_placeholder(self) -> str:
        """Marker that replaces ``$watermark`` in SQL read with :meth:`read_arrow`."""
        return self.param_placeholder(0)

    def watermark_params(self, value: Any, occurrences: int) -> list[Any]:
        """Parameters for a source query holding ``occurrences`` watermark markers."""
        return [value] * occurrences

    def source_marker(self, index: int) -> str:
        """Marker of the ``index``-th (0-based) parameter of SQL read with :meth:`read_arrow`.

        Each marker is bound once, in order (partition bounds in a source query).
        """
        return "?"

    def escape_user_sql(self, sql: str) -> str:
        """Make user SQL safe to send together with parameters (psycopg doubles ``%``)."""
        return sql

    def prepare_load_session(self) -> None:  # noqa: B027 - optional hook
        """Session settings a load needs (e.g. PostgreSQL's UTC time zone for ``row_hash``)."""

    def cast_fails(self, sql: str) -> bool:
        """Whether query ``sql`` (casts of a staged column) fails on a value the cast refuses.

        The open transaction stays usable either way. Only backends with
        ``LOCATE_INVALID_TEXT`` entries are asked.
        """
        raise NotImplementedError(f"{self.DISPLAY_NAME} locates invalid text with INVALID_TEXT")

    def index_for_joins(self, table: str, columns: Sequence[str]) -> None:  # noqa: B027
        """Index a temp table the plan joins on ``columns``, where the planner needs it.

        Databases with hash joins need nothing; SQLite joins by nested loops and would scan a
        temp table once per row of the other side without an index (quadratic).
        """

    def analyze(self, table: str) -> None:  # noqa: B027 - optional hook
        """Refresh statistics of ``table`` where the planner needs them (no-op by default)."""

    def create_schema(self, schema: str) -> None:
        """Create ``schema`` if it does not exist (no-op without schema support)."""
        if schema and self.SUPPORTS_SCHEMAS:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def drop_temp(self, table: str) -> None:
        """Drop a temporary table if it exists."""
        self.execute(f"DROP TABLE IF EXISTS {self.quote(table)}")

    @contextlib.contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[None]:
        """Run the block in one transaction; roll back on error or when ``rollback``."""
        self.begin()
        try:
            yield
        except BaseException as error:
            try:
                self.rollback()
            except Exception as failed:  # a dead connection: keep the error that happened first
                error.add_note(f"(the rollback failed too: {type(failed).__name__})")
            raise
        if rollback:
            self.rollback()
        else:
            self.commit()

    # ------------------------------------------------------------------ table store
    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """The checkpoint ``(name, scope)`` last committed with rows, or None."""
        from ematix_engine.backends.checkpoints import read_checkpoint

        return read_checkpoint(self, name, scope)

    @contextlib.contextmanager
    def write_session(
        self,
        schema: str,
        table: str,
        *,
        mode: LoadMode,
        version_key: Sequence[str],
        batch_id: str,
        writer: str = "",
        dry_run: bool = False,
    ) -> Iterator[SqlWriteSession]:
        """One write into ``schema.table``: a transaction committing rows and checkpoints.

        Args:
            schema: the table's schema.
            table: the table's name.
            mode: the load mode (backends that store changes rather than run SQL use it).
            version_key: the columns identifying a row version (keys, plus ``valid_from``).
            batch_id: the write's id, stored in ``_batch_id``.
            writer: who writes (a pipeline's name), for stores that record it.
            dry_run: roll back at the end instead of committing.

        Yields:
            The session: run DDL and the plan on ``session.sql``; ``put_checkpoint`` commits
            with the rows. An exception rolls everything back.
        """
        from ematix_engine.backends.checkpoints import ensure_checkpoint_table, write_checkpoint
        from ematix_engine.backends.locks import TargetBusy, busy_error, target_lock

        session = SqlWriteSession(self)
        self.prepare_load_session()
        # Shared objects are created before, and outside, the write's transaction: two first
        # writes into different tables must not race on creating one schema or table (the
        # loser of such a race finds the object there on its second try).
        for attempt in (1, 2):
            if schema in self._ensured:
                break
            try:
                self.create_schema(schema)
                ensure_checkpoint_table(self)
                self._ensured.add(schema)
                break
            except Exception:
                if attempt == 2:
                    raise
        label = f"{schema}.{table}" if self.SUPPORTS_SCHEMAS else table
        with (
            target_lock(f"{self.store_id}/{label}", label, writer),
            self.transaction(rollback=dry_run),
        ):
            try:
                self.lock_target(schema, table)
            except TargetBusy as busy:
                raise busy_error(writer, label) from busy
            yield session
            for (name, scope), value in session.pending.items():
                write_checkpoint(self, name, scope, value)

    @property
    def store_id(self) -> str:
        """What identifies this backend's database across sessions (a path, a DSN)."""
        path = getattr(self, "path", None)
        return f"{self.name}:{os.path.abspath(path) if path else id(self)}"

    def lock_target(self, schema: str, table: str) -> None:  # noqa: B027 - optional hook
        """Take the database's own lock on a target for the open transaction.

        A write holds it until it commits, so other processes' writes into the same table
        wait their turn (:mod:`ematix_engine.backends.locks`). Backends whose transactions
        already exclude other writers (SQLite's ``BEGIN IMMEDIATE``, DuckDB's file lock) need
        nothing more.
        """

    @contextlib.contextmanager
    def query_session(self) -> Iterator[SqlBackend]:
        """A session in which the stored tables can be queried with SQL (this one)."""
        yield self

    def __enter__(self) -> SqlBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_parent_dir(path: str) -> None:
    """Create the folder of a database file (nothing for ``:memory:``)."""
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


class SqlWriteSession:
    """The open write of a SQL backend: its session, and the checkpoints to commit with it.

    Attributes:
        sql: where DDL and the mode's plan run, inside the write's transaction.
        pending: checkpoints to store just before the commit, by ``(name, scope)``.
    """

    def __init__(self, backend: SqlBackend) -> None:
        self.sql = backend
        self.pending: dict[tuple[str, str], str] = {}

    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """The committed checkpoint, read inside the write's transaction."""
        return self.sql.read_checkpoint(name, scope)

    def put_checkpoint(self, name: str, scope: str, value: str) -> None:
        """Commit ``value`` as checkpoint ``(name, scope)`` together with the rows."""
        self.pending[(name, scope)] = value
