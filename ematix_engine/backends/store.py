"""The table-store protocol: what every backend offers the write core, Delta included.

A store holds tables and lets the write core

* **read** them (``read_arrow``, and ``query_session`` for SQL over the stored tables),
* **write** a prepared change set: ``write_session(...)`` opens one write whose ``sql`` session
  runs DDL (ensure table, schema drift) and the mode's plan; leaving the block commits every
  row the plan wrote *together with* the checkpoints put on the session, in one transaction
  (SQL databases) or one commit (Delta); an exception commits nothing,
* **read a checkpoint** outside a write (``read_checkpoint``): a batch watermark now, source
  offsets of a stream later.

Backends describe what they can do with class attributes (capability flags) instead of being
asked which system they are. :mod:`ematix_engine.backends.conformance` is the suite every
store passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from ematix_engine.backends.base import SqlBackend
    from ematix_engine.specs import LoadMode

__all__ = ["TableStore", "WriteSession"]


@runtime_checkable
class WriteSession(Protocol):
    """One open write into a store.

    Attributes:
        sql: the SQL session in which DDL and the plan run (inside the write's transaction).
    """

    sql: SqlBackend

    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """The checkpoint committed last, as this write sees it."""

    def put_checkpoint(self, name: str, scope: str, value: str) -> None:
        """Commit ``value`` as checkpoint ``(name, scope)`` together with the rows."""


@runtime_checkable
class TableStore(Protocol):
    """A backend the write core can write through and read from."""

    #: Short system name (messages, Dagster kinds, results).
    name: ClassVar[str]
    #: sqlglot dialect of the SQL run in its sessions.
    dialect: ClassVar[str]
    #: Whether ``schema.table`` names are real namespaces.
    SUPPORTS_SCHEMAS: ClassVar[bool]
    #: Whether cross-database writes are prepared in an in-process DuckDB session first.
    PREPARES_IN_PROCESS: ClassVar[bool]
    #: Whether SQL runs in the store itself (False: in a compute session over its files).
    RUNS_SQL: ClassVar[bool]

    @classmethod
    def open(cls, connection: Any, *, read_only: bool = False) -> TableStore:
        """Open the store of a resolved typed connection (``read_only``: for reading only)."""

    def read_arrow(
        self, sql: str, params: Sequence[Any] | None = None, batch_size: int = 100_000
    ) -> pa.RecordBatchReader:
        """Stream a query over the stored tables as Arrow record batches."""

    def query_session(self) -> AbstractContextManager[SqlBackend]:
        """A SQL session over the stored tables (read-only use)."""

    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """The checkpoint ``(name, scope)`` last committed, or None."""

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
    ) -> AbstractContextManager[WriteSession]:
        """Open one write into ``schema.table`` (see the module docstring)."""

    def close(self) -> None:
        """Release the store's session."""
