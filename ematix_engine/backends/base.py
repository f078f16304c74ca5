"""What every SQL backend offers the batch engine.

A backend wraps one open database session. The planner (``ematix_engine.batch``) asks it to
quote names, map column types, run statements inside one transaction, stream query results out
as Arrow, and stage Arrow batches into a temporary table. Differences between systems are data:
capability flags and a type map on each subclass (``backends/<system>.py``), in the manner of
sqlglot's dialect classes.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pyarrow as pa
from sqlglot import exp

from ematix_engine.errors import UnsupportedError
from ematix_engine.schema.types import ColumnType, column_type_from_arrow

__all__ = ["SqlBackend"]

log = logging.getLogger("ematix.backends")


class SqlBackend(ABC):
    """A database session the batch engine can plan against.

    Subclasses set the class attributes and implement the abstract methods.
    """

    #: Short system name used in messages and Dagster kinds.
    name: ClassVar[str] = ""
    #: sqlglot dialect name.
    dialect: ClassVar[str] = ""
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
    #: DDL type overrides by ``ColumnType.sql_name``; others render through sqlglot.
    TYPE_MAP: ClassVar[Mapping[str, str]] = {}

    def __init__(self, connection: Any) -> None:
        self.connection = connection

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
        raise UnsupportedError(self.name, "appending Arrow batches to a table (copy_arrow)")

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

    def escape_user_sql(self, sql: str) -> str:
        """Make user SQL safe to send together with parameters (psycopg doubles ``%``)."""
        return sql

    def prepare_load_session(self) -> None:  # noqa: B027 - optional hook
        """Session settings a load needs (e.g. float rendering for ``row_hash``)."""

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
        except BaseException:
            self.rollback()
            raise
        if rollback:
            self.rollback()
        else:
            self.commit()

    def __enter__(self) -> SqlBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
