"""The write core: the one way rows reach a target.

:func:`apply_rows` takes rows — Arrow record batches (:class:`ArrowRows`) or a query the target
can run itself (:class:`QueryRows`) — and writes them into one target in its load mode, in one
transaction (or Delta commit) together with an optional :class:`Checkpoint`:

1. **plan** — :func:`~ematix_engine.write.planner.plan_write` picks same-database SQL,
   in-process preparation or staging (``preview()`` asks the same planner);
2. **open a write** on the target's table store (``write_session``): everything below runs in
   its transaction;
3. **stage** the raw rows in ``_ematix_raw`` (a view over the query, or the Arrow batches);
4. **ensure DDL** — create the table or add new columns, refusing incompatible drift;
5. **prepare** ``_ematix_src``: normalize, cast, de-duplicate, hash where the plan needs it;
6. **plan** — the mode's set-based SQL (:data:`ematix_engine.modes.MODES`), or the in-process
   compare-and-copy for PostgreSQL;
7. **checkpoint** — a batch watermark (``MAX`` of a column over the rows) or a given value
   (stream offsets), committed with the rows; an error anywhere rolls everything back.

Batch pipelines call it once per target (:mod:`ematix_engine.batch.runner`); streaming
micro-batches will call it per batch with their offsets as the checkpoint.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa
    >>> from ematix_engine import DuckDBConnection
    >>> from ematix_engine.specs import ColumnSpec, LoadMode, TableSpec, TargetSpec
    >>> from ematix_engine.types import BigInt, Text
    >>> from ematix_engine.write import ArrowRows, Checkpoint, apply_rows
    >>> folder = tempfile.mkdtemp()
    >>> events = TableSpec(schema="main", name="events", columns=(
    ...     ColumnSpec(name="id", type=BigInt, primary_key=True),
    ...     ColumnSpec(name="name", type=Text, nullable=True)))
    >>> target = TargetSpec(table=events, mode=LoadMode.MERGE, keys=("id",))
    >>> duck = DuckDBConnection(name="doc", path=os.path.join(folder, "w.duckdb"))
    >>> rows = ArrowRows.of(pa.table({"id": [1, 2], "name": ["a", "b"]}))
    >>> result = apply_rows(duck, target, rows, writer="doc", batch_id="b1",
    ...     checkpoint=Checkpoint(name="doc", scope="main.events", value="offset-2"))
    >>> result.counts.inserted, result.checkpoint, result.row_count
    (2, 'offset-2', 2)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ematix_engine.backends import open_backend
from ematix_engine.backends.base import SqlBackend
from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.errors import (
    ConfigError,
    EmatixError,
    SchemaDriftError,
    SourceError,
    load_error,
)
from ematix_engine.modes import mode_of
from ematix_engine.schema.ddl import ensure_table
from ematix_engine.specs import LoadMode
from ematix_engine.write.context import BATCH, RAW, SOURCE, Counts, LoadContext
from ematix_engine.write.direct import direct_append
from ematix_engine.write.in_process import (
    CompareUnavailable,
    add_batch_constant_columns,
    batch_constant_columns,
    compares_in_process,
    copy_into_empty_target,
    load_in_process,
)
from ematix_engine.write.planner import WritePath, WritePlan, plan_write
from ematix_engine.write.prepare import (
    create_batch_table,
    managed_columns,
    prepare_source,
    raw_schema,
    resolve_columns,
)
from ematix_engine.write.progress import (
    COMMITTED,
    PREPARING,
    READING,
    ROLLED_BACK,
    WRITING,
    ProgressReporter,
)
from ematix_engine.write.slices import SliceFilter, slice_condition

if TYPE_CHECKING:
    from ematix_engine.backends.store import WriteSession
    from ematix_engine.schema.types import ColumnType
    from ematix_engine.specs import TargetSpec

__all__ = ["ArrowRows", "Checkpoint", "QueryRows", "WriteResult", "apply_rows", "redact_error"]

#: Loads have always logged under ``ematix.batch``; the core keeps that name for its users.
log = logging.getLogger("ematix.batch.write")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A named position committed together with the rows of a write.

    Exactly one of ``value``, ``column`` and ``update`` says what to commit.

    Attributes:
        name: the checkpoint's name (a pipeline's name).
        scope: what it is the position of (the target's ``schema.table``).
        value: commit this text (e.g. a stream's offsets).
        column: commit the largest value of this column among the written rows, or keep the
            stored one when there are none (a batch watermark).
        update: commit what this returns given the stored value (None before the first
            commit), read inside the write's transaction: stream offsets merged into what
            other consumers of the same group committed.
        value_type: the column type of the value, so SQL compares it as such.
        initial: the value before the first commit (below every real value).
    """

    name: str
    scope: str
    value: str | None = None
    column: str | None = None
    update: Callable[[str | None], str] | None = None
    value_type: type[ColumnType] | None = None
    initial: str | None = None


@dataclass(frozen=True, slots=True)
class ArrowRows:
    """Rows that arrive as Arrow record batches.

    Attributes:
        open: given the checkpoint value the write starts from (or None), a context manager
            yielding the reader; it is entered inside the write's transaction.
        connection: where the rows come from (named in errors, credentials redacted).
        schema: the batches' schema when known before they are read (rows already in hand);
            an append whose types already match the target's then goes straight in
            (:mod:`ematix_engine.write.direct`).
        data: the rows, when in hand (:meth:`of`).
    """

    open: Callable[[str | None], AbstractContextManager[pa.RecordBatchReader]]
    connection: Any = None
    schema: pa.Schema | None = None
    data: pa.Table | None = None

    @classmethod
    def of(cls, data: pa.Table | pa.RecordBatchReader | pa.RecordBatch) -> ArrowRows:
        """Rows from an Arrow table, batch or reader already in hand."""
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        table = data if isinstance(data, pa.Table) else None
        if table is not None:
            data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())

        @contextlib.contextmanager
        def opened(_: str | None) -> Iterator[pa.RecordBatchReader]:
            yield data

        return cls(opened, schema=data.schema, data=table)


@dataclass(frozen=True, slots=True)
class QueryRows:
    """Rows that a query selects on the target's own database.

    Attributes:
        select: given the target's SQL session and the SQL expression of the checkpoint value,
            the ``SELECT`` returning the rows.
        connection: the connection the query belongs to (planning: same database or not).
    """

    select: Callable[[SqlBackend, str], str]
    connection: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """What one write did.

    Attributes:
        plan: the planner's choice the write followed.
        store: the target system.
        counts: inserted, updated, unchanged, closed and deleted rows.
        checkpoint: the checkpoint after the write (None when there is none).
        row_count: rows in the target after the write.
    """

    plan: WritePlan
    store: str
    counts: Counts = field(default_factory=Counts)
    checkpoint: str | None = None
    row_count: int | None = None


#: Rows, or a callable returning the rows and their checkpoint once the write has begun (a
#: batch pipeline renders its SQL only then, after the target is locked or snapshotted).
Rows = ArrowRows | QueryRows | Callable[[], "tuple[ArrowRows | QueryRows, Checkpoint | None]"]


def apply_rows(
    target_connection: Any,
    target: TargetSpec,
    rows: Rows,
    *,
    writer: str,
    batch_id: str,
    checkpoint: Checkpoint | None = None,
    dry_run: bool = False,
    batch_size: int = 100_000,
    progress: ProgressReporter | None = None,
    plan: WritePlan | None = None,
    slice_: SliceFilter | None = None,
    valid_at: datetime | None = None,
    rebuild: bool = False,
    count_rows: bool = True,
    store: Any = None,
) -> WriteResult:
    """Write ``rows`` into ``target`` in its mode, atomically with ``checkpoint``.

    Args:
        target_connection: the target's connection (name or typed connection).
        target: the target and its load options.
        rows: the rows to write, or a callable returning them and their checkpoint, called
            inside the write (then ``plan`` is required and ``checkpoint`` is ignored).
        writer: who writes (a pipeline's name): named in messages and Delta commit metadata.
        batch_id: this write's id, stored in ``_batch_id``.
        checkpoint: the position to commit with the rows, if any.
        dry_run: do everything, then roll back.
        batch_size: rows per Arrow batch where the write moves rows between systems.
        progress: receives the phases and the rows read.
        plan: the planner's choice (default: :func:`plan_write` for these rows).
        slice_: the partition this write owns (:mod:`ematix_engine.write.slices`): append and
            replace first delete the target's rows in it (replace keeps the rest of the
            table); merge and SCD2 retire absent keys only within it.
        valid_at: the time the rows stand for (dlt's ``boundary_timestamp``): SCD2 versions
            open and absent keys close at it instead of now. It must not precede the newest
            version already in the target; ``_loaded_at`` stays the wall-clock time.
        rebuild: a full refresh: empty the target inside the write (its schema is kept and
            widened as usual) and start from ``checkpoint.initial`` instead of the stored
            checkpoint, so the rows come from the source as on a first load; emptying,
            loading and the reset checkpoint commit together (see :func:`_rebuild`).
        count_rows: report the target's rows after the write (``row_count``): the rows
            inserted when the target was empty, else counted (a scan of the whole table,
            which a stream's micro-batches skip).
        store: an open session on ``target_connection`` to write through and leave open (a
            stream's; see ``STAYS_OPEN_BETWEEN_WRITES``). By default a session is opened for
            this write and closed after it. After a failed write, close the given one.

    Returns:
        What the write did.

    Raises:
        SourceError: the rows could not be read (the source is named, credentials redacted).
        LoadError: the target refused the write; nothing was committed.
        EmatixError: a declared rule was broken (schema drift, duplicate keys, …).
    """
    progress = progress or ProgressReporter(None, writer, target.label)
    if plan is None:
        if not isinstance(rows, ArrowRows | QueryRows):
            raise TypeError("apply_rows: rows given as a callable need plan=")
        rows_in = rows.connection if isinstance(rows, QueryRows) else None
        plan = plan_write(target, target_connection, rows_in=rows_in)
    owned = store is None
    if store is None:
        store = open_backend(target_connection)
    try:
        with store.write_session(
            target.table.schema,
            target.table.name,
            mode=_rebuild_mode(target, rebuild),
            version_key=mode_of(target).primary_key(target) or target.keys,
            batch_id=batch_id,
            writer=writer,
            dry_run=dry_run,
        ) as write:
            result = _write(
                write,
                plan,
                rows,
                checkpoint,
                _Job(
                    writer,
                    target,
                    batch_id,
                    batch_size,
                    progress,
                    slice_,
                    valid_at,
                    rebuild,
                    count_rows,
                ),
            )
    finally:
        if owned:
            store.close()
    progress.phase(ROLLED_BACK if dry_run else COMMITTED)
    counts = result.counts
    log.info(
        "%s → %s: %d inserted, %d updated, %d unchanged, %d closed, %d deleted%s",
        writer,
        target.label,
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.closed,
        counts.deleted,
        " (dry run, rolled back)" if dry_run else "",
    )
    return result


@dataclass(frozen=True, slots=True)
class _Job:
    """The fixed facts of one write, passed down together."""

    writer: str
    target: TargetSpec
    batch_id: str
    batch_size: int
    progress: ProgressReporter
    slice: SliceFilter | None = None
    valid_at: datetime | None = None
    rebuild: bool = False
    count_rows: bool = True


def _write(
    write: WriteSession,
    plan: WritePlan,
    rows: Rows,
    checkpoint: Checkpoint | None,
    job: _Job,
) -> WriteResult:
    """Steps 3 to 7 of the module docstring, inside the open write."""
    backend, target, progress = write.sql, job.target, job.progress
    if not isinstance(rows, ArrowRows | QueryRows):
        rows, checkpoint = rows()
    loaded_at = datetime.now(UTC)
    if isinstance(rows, ArrowRows):
        direct = _append_directly(write, plan, rows, checkpoint, job, loaded_at)
        if direct is not None:
            return direct
    batch_ts = job.valid_at.astimezone(UTC) if job.valid_at is not None else loaded_at
    in_process = plan.path is WritePath.IN_PROCESS
    prep: SqlBackend = DuckDBBackend.scratch() if in_process else backend
    try:
        stored = _stored_checkpoint(write, checkpoint, job.rebuild)
        start = stored if stored is not None else (checkpoint.initial if checkpoint else None)
        value_type = checkpoint.value_type if checkpoint else None
        sessions = [backend] if prep is backend else [backend, prep]
        if prep is not backend:
            prep.prepare_load_session()
        for session in sessions:
            _batch_constants(
                session, job.batch_id, batch_ts, loaded_at, start, value_type, target, job.slice
            )
        progress.phase(READING)
        _stage_raw(prep, rows, start, job)
        progress.phase(PREPARING)
        raw = raw_schema(prep)
        columns, mapping = resolve_columns(job.writer, target, raw)
        physical = columns + managed_columns(target)
        schema_arg = target.table.schema if backend.SUPPORTS_SCHEMAS else None
        existing = backend.table_columns(schema_arg, target.table.name)
        created = existing is None
        table_sql = backend.table_sql(target.table.schema, target.table.name)
        target_empty = (
            created or job.rebuild or not backend.query(f"SELECT 1 FROM {table_sql} LIMIT 1")
        )
        mode = mode_of(target)
        _refuse_rows_without_managed_columns(job.writer, target, existing, target_empty)
        if target.mode is LoadMode.SCD2:
            _refuse_open_end_after(job.writer, target, "the load's time", batch_ts)
            if existing is not None and not target_empty:
                _refuse_other_open_end(backend, target, table_sql, existing)
        if job.valid_at is not None and not target_empty:
            _refuse_time_travel(backend, job, table_sql, existing or {}, batch_ts)
        # Hash in-process only when every prepared row goes straight into an empty target;
        # otherwise the target hashes just the versions it inserts (a tenth, typically).
        # Appending never touches the rows already there: its rows go straight in whenever
        # no slice of the target is being replaced (the streaming hot path).
        straight_in = (
            in_process
            and mode.copies_straight_in(target)
            and (target_empty or (mode.only_inserts and job.slice is None))
        )
        plan_function = _slice_plan(target, job.slice, target_empty) or mode.plan_function()
        # A table this write creates and fills straight in gets its one-value-per-batch
        # columns after the rows (PostgreSQL then stores each value once, in the catalog),
        # and its primary key after the data, which builds faster than it updates.
        late = batch_constant_columns(target, physical) if straight_in and created else ()
        primary_key = mode.primary_key(target)
        defer_key = created and bool(primary_key) and backend.ADDS_PRIMARY_KEY_AFTER_FIRST_LOAD
        ddl = ensure_table(
            backend,
            target.table.schema,
            target.table.name,
            [c for c in physical if c not in late],
            primary_key=() if defer_key else primary_key,
            update_heavy=mode.update_heavy,
        )

        def context(session: SqlBackend) -> LoadContext:
            return LoadContext(
                backend=session,
                pipeline=job.writer,
                target=target,
                columns=columns,
                physical_columns=physical,
                batch_id=job.batch_id,
                batch_ts=batch_ts,
                loaded_at=loaded_at,
                target_empty=target_empty,
                slice=job.slice,
            )

        ctx = context(backend)
        ctx.statements.extend(ddl)
        if job.rebuild:
            _rebuild(ctx, created)
        try:
            prep_ctx = context(prep)
            prepare_source(prep_ctx, mapping, raw)
            if progress.active and not progress.rows_read:  # not streamed: count them
                progress.rows_read = prep_ctx.scalar(f"SELECT COUNT(*) FROM {prep.quote(SOURCE)}")
            progress.phase(WRITING)
            if straight_in:
                counts = Counts(inserted=copy_into_empty_target(prep_ctx, ctx, late=late))
            elif in_process and compares_in_process(ctx, ddl):
                try:
                    counts = load_in_process(prep_ctx, ctx)
                except CompareUnavailable as why:
                    log.info(
                        "%s: comparing in %s instead (%s)", job.writer, backend.DISPLAY_NAME, why
                    )
                    counts = _load_staged(prep, ctx, plan_function)
            elif in_process:
                counts = _load_staged(prep, ctx, plan_function)
            else:
                counts = plan_function(ctx)
            if defer_key:
                ctx.run(
                    f"ALTER TABLE {table_sql} ADD PRIMARY KEY "
                    f"({', '.join(backend.quote(k) for k in primary_key)})"
                )
        except EmatixError:
            raise
        except Exception as error:
            raise _as_load_error(job, backend, error) from error
        committed = _next_checkpoint(prep, checkpoint, start if job.rebuild else stored)
        if checkpoint is not None and committed is not None and committed != stored:
            write.put_checkpoint(checkpoint.name, checkpoint.scope, committed)
        row_count = (
            _rows_after(backend, ctx.table, counts, target_empty) if job.count_rows else None
        )
        if plan.same_database:  # the view reads _ematix_batch: drop it first
            prep.execute(f"DROP VIEW IF EXISTS {prep.quote(RAW)}")
        else:
            prep.drop_temp(RAW)
        for session in sessions:
            for temp in (SOURCE, BATCH):
                session.drop_temp(temp)
    finally:
        if prep is not backend:
            prep.close()
    return WriteResult(
        plan=plan, store=plan.store, counts=counts, checkpoint=committed, row_count=row_count
    )


def _append_directly(
    write: WriteSession,
    plan: WritePlan,
    rows: ArrowRows,
    checkpoint: Checkpoint | None,
    job: _Job,
    loaded_at: datetime,
) -> WriteResult | None:
    """Append Arrow batches that need no preparing straight into the target, else ``None``.

    Only for targets that append Arrow batches themselves (PostgreSQL's ``COPY``, DuckDB's
    ``INSERT`` over the batches), no slice, rebuild or ``valid_at``, a checkpoint given by
    value, and batches whose types :func:`~ematix_engine.write.direct.direct_append` accepts.
    A table that does not exist yet is created from the declaration, as the prepared path
    would create it (PostgreSQL: rows copied frozen, ``_loaded_at`` and ``_batch_id`` added
    after them with the batch's values kept in the catalog). Nothing has been read or written
    when it returns ``None``.
    """
    backend, target = write.sql, job.target
    if (
        plan.path not in (WritePath.IN_PROCESS, WritePath.STAGED)
        or type(backend).copy_arrow is SqlBackend.copy_arrow
        or rows.schema is None
        or job.slice is not None
        or job.rebuild
        or job.valid_at is not None
        or (checkpoint is not None and checkpoint.column is not None)
    ):
        return None
    direct = direct_append(job.writer, target, rows.schema)
    if direct is None or (direct.not_null and (rows.data is None or direct.refuses(rows.data))):
        return None  # the prepared path names the row a NULL is refused in
    schema_arg = target.table.schema if backend.SUPPORTS_SCHEMAS else None
    created = backend.table_columns(schema_arg, target.table.name) is None
    physical = (*direct.columns, *managed_columns(target))
    mode = mode_of(target)
    late = (
        batch_constant_columns(target, physical)
        if created and plan.path is WritePath.IN_PROCESS and mode.copies_straight_in(target)
        else ()
    )
    stored = _stored_checkpoint(write, checkpoint, rebuild=False)
    start = stored if stored is not None else (checkpoint.initial if checkpoint else None)
    table_sql = backend.table_sql(target.table.schema, target.table.name)
    try:
        ensure_table(
            backend,
            target.table.schema,
            target.table.name,
            [c for c in physical if c not in late],
            primary_key=mode.primary_key(target),
            update_heavy=mode.update_heavy,
        )
        job.progress.phase(WRITING)
        with rows.open(start) as reader:
            counted = job.progress.counting(reader) if job.progress.active else reader
            names, batches = direct.copy_input(
                counted, loaded_at=loaded_at, batch_id=job.batch_id, constants=not late
            )
            inserted = backend.copy_arrow(table_sql, batches, columns=names, freeze=bool(late))
        if late:
            add_batch_constant_columns(
                LoadContext(
                    backend=backend,
                    pipeline=job.writer,
                    target=target,
                    columns=direct.columns,
                    physical_columns=physical,
                    batch_id=job.batch_id,
                    batch_ts=loaded_at,
                    loaded_at=loaded_at,
                    target_empty=True,
                ),
                late,
            )
    except EmatixError:
        raise
    except Exception as error:
        raise _as_load_error(job, backend, error) from error
    committed = _next_checkpoint(backend, checkpoint, stored)
    if checkpoint is not None and committed is not None and committed != stored:
        write.put_checkpoint(checkpoint.name, checkpoint.scope, committed)
    row_count = (
        int(backend.query(f"SELECT COUNT(*) FROM {table_sql}")[0][0]) if job.count_rows else None
    )
    return WriteResult(
        plan=plan,
        store=plan.store,
        counts=Counts(inserted=inserted),
        checkpoint=committed,
        row_count=row_count,
    )


def _as_load_error(job: _Job, backend: SqlBackend, error: Exception) -> Exception:
    """The redacted error a write raises for a driver's ``error``, naming writer and target."""
    return load_error(job.writer, job.target.label, error, redact_error(error, backend.connection))


def _rows_after(backend: SqlBackend, table_sql: str, counts: Counts, target_empty: bool) -> int:
    """Rows in the target after the write.

    A write into an empty target (created, rebuilt or found empty) holds exactly the rows it
    inserted, so only a write into a non-empty one counts the table (a full scan).
    """
    if target_empty:
        return counts.inserted
    return int(backend.query(f"SELECT COUNT(*) FROM {table_sql}")[0][0])


def _refuse_rows_without_managed_columns(
    writer: str, target: TargetSpec, existing: dict[str, str] | None, empty: bool
) -> None:
    """Refuse a mode whose managed columns the target's existing rows lack.

    SCD2 onto a table that another mode filled would leave its rows with no validity (two
    "current" rows per key). Such rows cannot be adopted safely, so the load stops first.

    Raises:
        SchemaDriftError: naming the target and the missing columns.
    """
    if existing is None or empty:
        return
    needed = [c.name for c in mode_of(target).managed_columns_of(target) if not c.nullable]
    missing = [name for name in needed if name not in existing]
    if missing and target.mode is LoadMode.SCD2:
        raise SchemaDriftError(
            target.label,
            missing[0],
            f"the table holds rows but lacks ematix's {target.mode.value} history columns "
            f"({', '.join(missing)}): it was loaded in another mode, or with other "
            f"validity_columns. Load the history into a new table, or empty this one first",
        )


def _refuse_other_open_end(
    backend: SqlBackend, target: TargetSpec, table_sql: str, existing: dict[str, str]
) -> None:
    """Refuse an SCD2 target whose current versions hold another ``valid_to`` than declared.

    Its history was written with another ``current_valid_to`` (or none): loading on would mix
    two markers of "current". Every load writes one marker into every current version, so one
    current row tells (the probe stops at the first one).

    Raises:
        SchemaDriftError: naming the target, the column and both markers.
    """
    valid_to, current = target.column_name("valid_to"), target.column_name("is_current")
    if valid_to not in existing or current not in existing:
        return
    q, sentinel = backend.quote, target.current_valid_to
    if sentinel is None:
        same, params = f"{q(valid_to)} IS NULL", None
    else:
        same = f"COALESCE({q(valid_to)} = {backend.param_placeholder(0)}, FALSE)"
        params = (backend.timestamp_param(sentinel),)
    rows = backend.query(
        f"SELECT {same}, {q(valid_to)} IS NULL, CAST({q(valid_to)} AS TEXT) FROM {table_sql} "
        f"WHERE {q(current)} LIMIT 1",
        params,
    )
    if not rows or rows[0][0]:
        return
    stored_null, stored = bool(rows[0][1]), rows[0][2]
    declared = "NULL (no current_valid_to)" if sentinel is None else sentinel.isoformat()
    raise SchemaDriftError(
        target.label,
        valid_to,
        f"its current versions hold {valid_to} = {'NULL' if stored_null else stored}, but the "
        f"pipeline declares {declared} for current versions; a table keeps one marker of "
        f"'current'. Declare current_valid_to to match the table, or rebuild it "
        f"(run(full_refresh=True)) to switch",
    )


def _refuse_open_end_after(writer: str, target: TargetSpec, what: str, at: datetime) -> None:
    """Refuse a version starting at or after the target's ``current_valid_to`` sentinel.

    It would be current with an end before its start (or equal to it).

    Raises:
        ConfigError: naming the pipeline, the target and both times.
    """
    sentinel = target.current_valid_to
    if sentinel is not None and at >= sentinel:
        raise ConfigError(
            f"pipeline {writer!r}: {what} {at.isoformat()} is not before "
            f"current_valid_to {sentinel.isoformat()} of {target.label}; a current version "
            f"would end before it starts. Pick a later current_valid_to"
        )


def _rebuild_mode(target: TargetSpec, rebuild: bool) -> LoadMode:
    """The mode the table store commits in: a rebuild replaces the table's contents."""
    return LoadMode.REPLACE if rebuild else target.mode


def _stored_checkpoint(
    write: WriteSession, checkpoint: Checkpoint | None, rebuild: bool
) -> str | None:
    """The committed checkpoint the write starts after (none for a rebuild)."""
    if checkpoint is None or rebuild:
        return None
    return write.read_checkpoint(checkpoint.name, checkpoint.scope)


def _rebuild(ctx: LoadContext, created: bool) -> None:
    """Empty the target for a full refresh, inside the write's transaction.

    Every row goes, whatever the mode (an SCD2 table's closed versions too): the load then
    writes the source's rows into an empty table, exactly as a first load would. The table
    itself, its columns (widened as usual by the DDL before) and its keys stay. Table stores
    that commit a difference (Delta) commit the rebuilt table as an overwrite instead
    (:func:`_rebuild_mode`), which their history keeps as one version.
    """
    if not created:
        removed = ctx.run(f"DELETE FROM {ctx.table}")
        log.info(
            "%s → %s: full refresh, %s old rows removed", ctx.pipeline, ctx.target.label, removed
        )


def _next_checkpoint(
    prep: SqlBackend, checkpoint: Checkpoint | None, stored: str | None
) -> str | None:
    """The checkpoint to commit: the given value, or the column's maximum over the rows."""
    if checkpoint is None:
        return None
    if checkpoint.update is not None:
        return checkpoint.update(stored)
    if checkpoint.column is None:
        return checkpoint.value if checkpoint.value is not None else stored
    rows = prep.query(
        f"SELECT CAST(MAX({prep.quote(checkpoint.column)}) AS TEXT) FROM {prep.quote(SOURCE)}"
    )
    return rows[0][0] if rows and rows[0][0] is not None else stored


def _slice_plan(
    target: TargetSpec, slice_: SliceFilter | None, target_empty: bool
) -> Callable[[LoadContext], Counts] | None:
    """The plan of a partition's append or replace: delete the slice, then insert the batch.

    None (the mode's own plan) without a slice, and for merge and SCD2, whose slice only
    limits which absent keys retire (:meth:`LoadContext.retirable`).
    """
    if slice_ is None or target.mode not in (LoadMode.APPEND, LoadMode.REPLACE):
        return None
    from ematix_engine.write.plans.append import load_append

    def replace_slice(ctx: LoadContext) -> Counts:
        deleted = 0
        if not target_empty:
            condition = slice_condition(ctx.backend, ctx.table, slice_)
            deleted = ctx.run(f"DELETE FROM {ctx.table} WHERE {condition}")
        counts = load_append(ctx)
        counts.deleted = deleted
        return counts

    return replace_slice


def _load_staged(
    prep: SqlBackend, ctx: LoadContext, plan_function: Callable[[LoadContext], Counts]
) -> Counts:
    """COPY the prepared rows into a temp table of the target, then run the mode's SQL plan."""
    ctx.backend.stage_arrow(
        SOURCE,
        prep.read_arrow(f"SELECT * FROM {prep.quote(SOURCE)}"),
        column_types={c.name: c.type for c in ctx.physical_columns},
    )
    ctx.backend.analyze(SOURCE)
    return plan_function(ctx)


def _batch_constants(
    session: SqlBackend,
    batch_id: str,
    batch_ts: datetime,
    loaded_at: datetime,
    checkpoint: str | None,
    checkpoint_type: type[ColumnType] | None,
    target: TargetSpec,
    slice_: SliceFilter | None = None,
) -> None:
    ttl_cutoff = batch_ts - timedelta(seconds=target.ttl_seconds or 0)
    sentinel = target.current_valid_to
    create_batch_table(
        session,
        batch_id=batch_id,
        batch_ts_value=session.timestamp_param(batch_ts),
        watermark=checkpoint,
        watermark_type=checkpoint_type,
        ttl_cutoff_value=session.timestamp_param(ttl_cutoff),
        slice_=slice_,
        loaded_at_value=session.timestamp_param(loaded_at),
        current_valid_to_value=None if sentinel is None else session.timestamp_param(sentinel),
    )


def _refuse_time_travel(
    backend: SqlBackend, job: _Job, table_sql: str, existing: dict[str, str], at: datetime
) -> None:
    """Refuse a ``valid_at`` before the newest version in an SCD2 target.

    History would run backwards: a version would close before it opened.

    Raises:
        ConfigError: naming the target, the time asked for and the newest version's.
    """
    valid_from = job.target.column_name("valid_from")
    if job.target.mode is not LoadMode.SCD2 or valid_from not in existing:
        return
    newest = backend.query(
        f"SELECT CAST(MAX({backend.quote(valid_from)}) AS TEXT) FROM {table_sql} "
        f"WHERE {backend.quote(valid_from)} > {backend.param_placeholder(0)}",
        (backend.timestamp_param(at),),
    )
    if newest and newest[0][0] is not None:
        raise ConfigError(
            f"pipeline {job.writer!r}: as_of {at.isoformat()} is before the newest version "
            f"in {job.target.label} ({valid_from} {newest[0][0]}); history cannot run backwards, "
            f"so load snapshots in time order"
        )


def _stage_raw(prep: SqlBackend, rows: ArrowRows | QueryRows, start: str | None, job: _Job) -> None:
    """Land the rows in ``_ematix_raw`` on the preparing session."""
    try:
        if isinstance(rows, QueryRows):
            checkpoint_sql = f"(SELECT {prep.quote('watermark')} FROM {prep.quote(BATCH)})"
            prep.execute(
                f"CREATE TEMP VIEW {prep.quote(RAW)} AS {rows.select(prep, checkpoint_sql)}"
            )
            # Some databases (SQLite) accept a view over a missing table; surface it here, as
            # a source error, rather than at first use.
            prep.query(f"SELECT * FROM {prep.quote(RAW)} LIMIT 0")
            return
        with rows.open(start) as reader:
            counted = job.progress.counting(reader) if job.progress.active else reader
            prep.drop_temp(RAW)
            prep.stage_arrow(RAW, counted)
        prep.analyze(RAW)
    except EmatixError:
        raise
    except Exception as error:
        raise SourceError(job.writer, redact_error(error, rows.connection)) from error


def redact_error(error: BaseException, connection: Any) -> str:
    """The error's text with ``connection``'s credentials and any copied row values masked.

    ``connection`` may be a connection (name or typed), a list of them, or ``None`` (then only
    the structural patterns apply: URL passwords, ``password=…``, row values).
    """
    from ematix_engine.connections.redaction import redact_error_text

    text = str(error).strip() or type(error).__name__
    try:
        return redact_error_text(text, _secret_holders(connection))
    except Exception:  # redaction must never hide the failure: fall back to the bare type
        return type(error).__name__


def _secret_holders(connection: Any) -> list[Any]:
    from ematix_engine.connections import get_connection

    if connection is None:
        return []
    items = connection if isinstance(connection, list | tuple | set | frozenset) else [connection]
    holders = []
    for item in items:
        if item is None:
            continue
        try:
            holders.append(get_connection(item))
        except Exception:  # an unknown name holds no secret we could know about
            continue
    return holders
