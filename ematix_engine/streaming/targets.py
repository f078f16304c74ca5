"""Streaming targets: database and Delta tables through the write core, and file folders.

A :class:`TableTarget` writes each batch with :func:`~ematix_engine.write.apply_rows` in one
transaction (or Delta commit). Its table is the declared ``@ematix.table`` when there is one;
otherwise it is inferred from the first batch's Arrow schema
(:func:`~ematix_engine.write.inferred.table_from_arrow`), and later batches' new fields are
added by the write core. In exactly-once pipelines the batch's source positions are committed
with the rows as the checkpoint ``(pipeline, schema.table)`` — the Delta store keys checkpoints
by its table label, so the scope is the table and the JSON value holds every source — merged
with what other consumers of the group stored.

File targets (``ObjectStoreLocalConnection``) are written by
:class:`~ematix_engine.backends.files.FileTableWriter`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pyarrow as pa
import sqlglot

from ematix_engine.errors import (
    ConfigError,
    EmatixError,
    LoadError,
    TerminalError,
    UnsupportedError,
)
from ematix_engine.specs import LoadMode, TableSpec, TargetSpec
from ematix_engine.streaming.config import Target
from ematix_engine.streaming.nested import nested_to_json

if TYPE_CHECKING:
    from ematix_engine.write import WritePlan, WriteResult

__all__ = ["StreamTarget", "TableTarget", "open_target", "parse_offsets"]

log = logging.getLogger("ematix.streaming")

T = TypeVar("T")
#: Attempts of one batch's write into one table (conflicts between group members).
_WRITE_ATTEMPTS = 6
#: How long a busy stream keeps a file that its open session locks (DuckDB) before letting
#: other processes in, and how long it then waits before opening it again: longer than a
#: waiting write's longest pause between tries (0.5 s, ``backends/duckdb.py``), so a batch load
#: of the same file gets its turn. Closing (a checkpoint) and the wait cost about 3% of a
#: stream that never idles.
_HOLD_FILE_AT_MOST_S = 30.0
_HAND_OVER_S = 0.6
#: Offsets by source label, then by partition key.
SourceOffsets = dict[str, dict[str, int]]


class StreamTarget(Protocol):
    """What the runner writes batches into."""

    label: str
    #: Whether the target can store source positions with its rows (exactly-once).
    STORES_POSITIONS: bool

    def stored_positions(self) -> SourceOffsets:
        """Positions committed with the rows, by source label (empty when none)."""

    def write(self, rows: pa.Table, *, batch_id: str, positions: SourceOffsets | None) -> int:
        """Write ``rows`` (with ``positions`` in the same commit when given); rows written."""

    def close(self) -> None:
        """Release resources."""


def parse_offsets(value: str | None) -> SourceOffsets:
    """Read a stored positions checkpoint (empty for None)."""
    if not value:
        return {}
    data = json.loads(value)
    return {
        source: {key: int(offset) for key, offset in offsets.items()}
        for source, offsets in data.get("offsets", {}).items()
    }


def merge_offsets(stored: str | None, new: SourceOffsets) -> str:
    """``stored`` with ``new`` laid over it, as checkpoint text (stable key order)."""
    merged = parse_offsets(stored)
    for source, offsets in new.items():
        merged.setdefault(source, {}).update(offsets)
    return json.dumps({"offsets": merged}, sort_keys=True, separators=(",", ":"))


def _resolve(connection: Any) -> Any:
    from ematix_engine.connections import get_connection

    return get_connection(connection)


def open_target(target: Target, pipeline: str) -> StreamTarget:
    """Open the writer of one target (validates the options against the connection).

    Raises:
        ConfigError: an option does not fit the connection, or the connection cannot be a
            streaming target.
    """
    connection = _resolve(target.connection)
    target.validate_for(connection.kind, getattr(connection, "format", None))
    if connection.kind == "object_store_local":
        from ematix_engine.backends.files import FileTableWriter

        return FileTableWriter(target, connection, pipeline)
    if connection.kind == "object_store_s3":
        raise UnsupportedError(
            "the streaming runtime", "S3 file targets yet", "use ObjectStoreLocalConnection"
        )
    return TableTarget(target, connection, pipeline)


class TableTarget:
    """A database or Delta table written through the write core."""

    STORES_POSITIONS = True

    def __init__(self, target: Target, connection: Any, pipeline: str) -> None:
        from ematix_engine.api.table import table_spec
        from ematix_engine.backends import backend_class

        backend_class(connection)  # refuses kinds that hold no tables
        self.connection = connection
        self.pipeline = pipeline
        self.declared: TableSpec | None = None
        table = target.table
        if isinstance(table, type | TableSpec):
            self.declared = table_spec(table)
            self.schema, self.name = self.declared.schema, self.declared.name
        elif isinstance(table, str):
            schema, _, name = table.rpartition(".")
            self.schema, self.name = schema or "public", name
        else:
            self.schema, self.name = table
        declared_key = self.declared.primary_key if self.declared else ()
        self.keys = tuple(target.primary_key) or declared_key
        mode = target.mode or ("merge" if declared_key else "append")
        self.mode = LoadMode(mode)
        if self.mode is LoadMode.MERGE and not self.keys:
            raise ConfigError(
                f"streaming pipeline {pipeline!r}: target {target.label} is in merge mode but "
                f"has no primary key; set primary_key= (target_primary_key) or declare pk()"
            )
        if self.declared is not None:
            for key in self.keys:
                self.declared.column(key)
        self.label = f"{connection.name}:{self.schema}.{self.name}"
        self._spec: TargetSpec | None = None
        self._write_plan: WritePlan | None = None
        self._store: Any = None  # a session kept open between writes, where that is safe
        self._store_since = 0.0  # when it was opened (time.monotonic())
        self._store_written = False  # a write went through it
        self._reopen_at = 0.0  # after letting a busy file go: not before (time.monotonic())

    @property
    def scope(self) -> str:
        """The checkpoint scope: the table's ``schema.name``."""
        return f"{self.schema}.{self.name}"

    def spec_for(self, rows: pa.Table) -> TargetSpec:
        """The target spec (inferring the table from ``rows`` on first use)."""
        if self._spec is None:
            from ematix_engine.write.inferred import table_from_arrow

            table = self.declared or table_from_arrow(
                self.schema, self.name, rows.schema, primary_key=self.keys
            )
            self._spec = TargetSpec(
                table=table, mode=self.mode, keys=self.keys, connection=self.connection
            )
        return self._spec

    def payload_hint(self) -> tuple[pa.Schema, tuple[str, ...]] | None:
        """The types payload fields must have and the fields they must carry, once known.

        Known for a declared table from the start; for an undeclared one, from the table
        when it already exists (a restart), else after the first batch. JSON columns and
        columns the runtime adds (``_event_ts``, …) are left out.
        """
        table = self.declared or (self._spec.table if self._spec is not None else None)
        if table is None:
            return self._existing_hint()
        fields, required = [], []
        for column in table.columns:
            if column.name.startswith("_") or column.type.hash_family == "json":
                continue
            fields.append(pa.field(column.name, column.type.arrow_type()))
            if not column.nullable:
                required.append(column.name)
        return pa.schema(fields), tuple(required)

    def _existing_hint(self) -> tuple[pa.Schema, tuple[str, ...]] | None:
        """Field types from an existing table (text columns left out: they may hold JSON)."""
        from ematix_engine.backends import open_backend
        from ematix_engine.modes import all_managed_names

        store = None
        try:
            store = open_backend(self.connection)
            with store.query_session() as sql:
                exists = sql.table_columns(self.schema if sql.SUPPORTS_SCHEMAS else None, self.name)
                if exists is None:
                    return None
                table_sql = sql.table_sql(self.schema, self.name)
            schema = store.read_arrow(f"SELECT * FROM {table_sql} LIMIT 0").schema
        except Exception as error:  # a hint only: the write reports real problems
            from ematix_engine.write import redact_error

            shown = redact_error(error, self.connection)
            log.debug("%s: no payload hint from %s: %s", self.pipeline, self.label, shown)
            return None
        finally:
            if store is not None:
                store.close()
        managed = all_managed_names()
        fields = [
            pa.field(f.name, f.type)
            for f in schema
            if not f.name.startswith("_")
            and f.name not in managed
            and not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            and not pa.types.is_null(f.type)
        ]
        return pa.schema(fields), tuple(k for k in self.keys if k in schema.names)

    def _plan(self, spec: TargetSpec) -> WritePlan:
        """The write core's plan; comparing modes staged rather than prepared in-process.

        Appending in-process (PostgreSQL) prepares the batch in DuckDB and COPYs it straight
        into the target. Merging in-process would also read a snapshot of the target per
        write: right for one large batch load, wrong for a micro-batch every second, so a
        merge stages the batch into a temporary table and runs its SQL there.
        """
        if self._write_plan is None or self._write_plan.target is not spec:
            from ematix_engine.modes import mode_of
            from ematix_engine.write import WritePath, plan_write

            plan = plan_write(spec, self.connection)
            if plan.path is WritePath.IN_PROCESS and not mode_of(spec).only_inserts:
                plan = dataclasses.replace(plan, path=WritePath.STAGED)
            self._write_plan = plan
        return self._write_plan

    def stored_positions(self) -> SourceOffsets:
        """The positions committed with this table's rows."""
        from ematix_engine.backends import open_backend

        def read() -> str | None:
            store = open_backend(self.connection)
            try:
                return store.read_checkpoint(self.pipeline, self.scope)
            finally:
                store.close()

        return parse_offsets(self._retrying(read))

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action``, again after a short pause when it fails for a passing reason.

        Another consumer of the group committing to the same table at the same time (a write
        conflict) or a blip of the target rolls the write back whole, so trying again is safe.
        A longer outage is the supervisor's to wait out.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return action()
            except Exception as error:
                if isinstance(error, TerminalError):
                    raise
                if attempt + 1 == _WRITE_ATTEMPTS:
                    if isinstance(error, EmatixError):
                        raise
                    from ematix_engine.write import redact_error

                    raise LoadError(
                        self.pipeline, self.label, redact_error(error, self.connection)
                    ) from error
                from ematix_engine.write import redact_error

                shown = redact_error(error, self.connection)
                log.warning("%s: %s: %s; retrying", self.pipeline, self.label, shown)
                time.sleep(random.uniform(0.5, 1.0) * 0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def write(self, rows: pa.Table, *, batch_id: str, positions: SourceOffsets | None) -> int:
        """One write-core call: the rows, and the positions when given, in one commit."""
        from ematix_engine.write import ArrowRows, Checkpoint, apply_rows

        checkpoint = None
        if positions is not None:
            checkpoint = Checkpoint(
                name=self.pipeline,
                scope=self.scope,
                update=lambda stored: merge_offsets(stored, positions),
            )
        if rows.num_rows == 0:  # the positions ride with the next rows
            return 0
        spec = self.spec_for(rows)
        rows = nested_to_json(rows, spec.table)

        def attempt() -> WriteResult:
            store = self._session()
            try:
                return apply_rows(
                    self.connection,
                    spec,
                    ArrowRows.of(rows),
                    writer=self.pipeline,
                    batch_id=batch_id,
                    checkpoint=checkpoint,
                    plan=self._plan(spec),
                    count_rows=False,
                    store=store,
                )
            except BaseException:
                self.close()  # the session may be broken: the next attempt opens another
                raise

        counts = self._retrying(attempt).counts
        self._store_written = self._store is not None
        held = time.monotonic() - self._store_since
        if self._store_written and held > _HOLD_FILE_AT_MOST_S and self.release():
            self._reopen_at = time.monotonic() + _HAND_OVER_S
        return counts.inserted + counts.updated

    def warm(self) -> None:
        """Load what the first write needs (modules, the session) before the first batch.

        Called on the writer thread while the source is still joining its group, so the
        first batch does not wait for it. Failing here costs nothing: the write reports it.
        """
        from ematix_engine.backends import backend_class
        from ematix_engine.write import apply_rows  # noqa: F401  (imports the write core)

        pa.array([0])  # pyarrow looks for pandas on its first conversion
        sqlglot.Dialect.get_or_raise(backend_class(self.connection).dialect)
        self._session()

    def _session(self) -> Any:
        """The open session to write through, or None when each write opens its own."""
        from ematix_engine.backends import backend_class, open_backend

        if self._store is None and getattr(
            backend_class(self.connection), "STAYS_OPEN_BETWEEN_WRITES", False
        ):
            time.sleep(max(0.0, self._reopen_at - time.monotonic()))  # another writer's turn
            self._store = open_backend(self.connection)
            self._store_since = time.monotonic()
            self._store_written = False
        return self._store

    def release(self) -> bool:
        """Let other processes open a file the kept session locks (DuckDB), once written to.

        Called on the writer thread when the stream goes idle, and after a write once the
        session has been held for ``_HOLD_FILE_AT_MOST_S``; the next write opens it again.
        A session that holds no lock between writes (PostgreSQL) stays open.

        Returns:
            Whether a session was closed.
        """
        from ematix_engine.backends import backend_class

        if self._store_written and getattr(
            backend_class(self.connection), "LOCKS_FILE_WHILE_OPEN", False
        ):
            self.close()
            return True
        return False

    def close(self) -> None:
        """Close the session kept between writes, if any."""
        store, self._store = self._store, None
        self._store_written = False
        if store is not None:
            store.close()
