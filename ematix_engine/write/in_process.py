"""Cross-database loads prepared in-process: only the rows that change reach the target.

A backend with ``PREPARES_IN_PROCESS`` (PostgreSQL) receives cross-database batches that an
in-memory DuckDB session normalized, de-duplicated and (for the rows it inserts) hashed. This
module holds the plans that then avoid copying every source row into the target:

* **First load** (:func:`copy_into_empty_target`): the prepared rows are COPYed straight into
  the empty target. When this load created the table, the columns holding one value for the
  whole batch are added after the rows (see :func:`batch_constant_columns`).
* **Later merge and snapshot-SCD2 loads** (:func:`load_in_process`): the target's current
  keys and compare columns are read into the DuckDB session (binary, through ADBC), new,
  changed and absent keys are found there (:mod:`ematix_engine.write.plans.changes`), and the target
  receives only the keys to close or delete, the changed rows (merge) and the new rows. A 10%
  change to 1,000,000 rows moves about 110,000 rows instead of 1,000,000, and the comparison
  runs off the server.

The target is locked against other writers (``SHARE ROW EXCLUSIVE``, readers still pass), then
read at the snapshot the load's transaction exports, so the rows compared are the rows the load
then updates. When that read cannot be done exactly or promptly, :class:`CompareUnavailable`
sends the load back to the staged SQL plan; nothing has been written by then.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from ematix_engine.modes import mode_of
from ematix_engine.schema.ddl import TableColumn
from ematix_engine.specs import Deletes, LoadMode, TargetSpec
from ematix_engine.write.context import BATCH, CHANGES, SOURCE, Counts, LoadContext
from ematix_engine.write.plans.changes import ABSENT, CHANGED, KIND, NEW_KEY, changes_sql
from ematix_engine.write.plans.scd2 import (
    close_current_sql,
    insert_tombstones,
    snapshot_changes_sql,
)

__all__ = [
    "CompareUnavailable",
    "add_batch_constant_columns",
    "batch_constant_columns",
    "compares_in_process",
    "copy_into_empty_target",
    "load_in_process",
]

_CURRENT = "_ematix_cur"
_CLOSING = "_ematix_close"
_CHANGED_ROWS = "_ematix_upd"
# Type families whose values survive the round trip target → Arrow → DuckDB exactly, so a
# comparison in DuckDB equals the comparison the target would make. JSON is not among them:
# PostgreSQL's jsonb equality ignores key order and spacing, text comparison does not.
_EXACT_FAMILIES = frozenset(
    {"int", "text", "bool", "float", "decimal", "date", "timestamp", "timestamptz", "bytes"}
)


def batch_constant_columns(
    target: TargetSpec, physical: Sequence[TableColumn]
) -> tuple[TableColumn, ...]:
    """Managed columns that hold one value for a whole first load (``per_batch`` ones)."""
    names = {c.name for c in mode_of(target).managed_columns_of(target) if c.per_batch}
    return tuple(c for c in physical if c.name in names)


def compares_in_process(ctx: LoadContext, ddl: Sequence[str]) -> bool:
    """Whether :func:`load_in_process` can load this (non-empty) target.

    Merge, or snapshot SCD2 without TTL; no DDL run by this load (its lock would block the
    separate read connection); keys and compare columns whose values compare the same in DuckDB.
    """
    target = ctx.target
    if ddl or not mode_of(target).compares_off_target(target):
        return False
    if ctx.slice is not None and target.deletes is not Deletes.IGNORE:
        return False  # the current rows read back lack the partition column to retire within
    by_name = {c.name: c for c in ctx.columns}
    names = [*target.keys, *ctx.compare_columns]
    return all(
        name in by_name and by_name[name].type.hash_family in _EXACT_FAMILIES for name in names
    )


def load_in_process(prep: LoadContext, ctx: LoadContext) -> Counts:
    """Load a non-empty merge or snapshot-SCD2 target, compared in the preparing session."""
    if ctx.target.mode is LoadMode.MERGE:
        return _load_merge(prep, ctx)
    return _load_scd2(prep, ctx)


def copy_into_empty_target(
    prep: LoadContext, ctx: LoadContext, *, late: Sequence[TableColumn] = ()
) -> int:
    """COPY every prepared row into the empty target; return the rows copied.

    ``late`` columns (a table this load created) are added after the COPY with the batch's
    value as default: PostgreSQL evaluates a non-volatile default once and keeps it in the
    catalog, so COPY carries the data and ``row_hash`` alone and no row stores them. The
    defaults read transaction-local settings written with bound parameters and are dropped
    right after, so later inserts must name every column.
    """
    copied = _copy_versions(
        prep, ctx, f"{prep.q(SOURCE)} AS s", with_constants=not late, freeze=bool(late)
    )
    if late:
        add_batch_constant_columns(ctx, late)
    return copied


class CompareUnavailable(Exception):
    """The target's rows could not be read back exactly; nothing was written yet."""


def _pull_current(prep: LoadContext, ctx: LoadContext, *, tombstones: bool) -> None:
    """Lock the target against writers, then read its current keys and compare columns.

    The backend's :meth:`~ematix_engine.backends.base.SqlBackend.lock_and_read` reads exactly
    what the load's statements will update (PostgreSQL: on a second, binary connection at the
    snapshot the load exports right after its lock). Text columns are read as ``TEXT``:
    ``character(n)`` then compares without its padding, as PostgreSQL compares it.

    Raises:
        CompareUnavailable: the read failed before anything was written: it waited for a
            lock longer than a moment (an ``ALTER TABLE`` queued behind this load would
            otherwise block it for good), or a value has no Arrow form (``numeric`` NaN).
    """
    q, target = ctx.q, ctx.target
    by_name = {c.name: c for c in ctx.columns}
    names = [*target.keys, *(c for c in ctx.compare_columns if c not in target.keys)]
    selects = [
        f"CAST(t.{q(n)} AS TEXT) AS {q(n)}"
        if by_name[n].type.hash_family == "text"
        else f"t.{q(n)}"
        for n in names
    ]
    where = ""
    deleted = target.column_name("is_deleted")
    if tombstones:
        selects.append(f"t.{q(deleted)}")
        where = f" WHERE t.{ctx.managed('is_current')}"
    current_sql = f"SELECT {', '.join(selects)} FROM {ctx.table} AS t{where}"
    reader = ctx.backend.lock_and_read(ctx.table, current_sql)
    ctx.statements.append(current_sql)
    expected = pa.schema(
        [pa.field(n, by_name[n].type.arrow_type()) for n in names]
        + ([pa.field(deleted, pa.bool_())] if tombstones else [])
    )
    try:
        # Read to the end first, so the read's connection is closed (and its snapshot released)
        # whatever the cast below finds.
        rows = reader()
        prep.backend.stage_arrow(_CURRENT, rows.cast(expected).to_reader())
    except Exception as error:  # nothing was written: the caller compares in the target
        prep.backend.drop_temp(_CURRENT)
        raise CompareUnavailable(str(error).strip() or type(error).__name__) from error


def _kind_counts(prep: LoadContext) -> dict[int, int]:
    """Keys per :data:`KIND` in the change table (one scan)."""
    kind = prep.q(KIND)
    rows = prep.rows(f"SELECT {kind}, COUNT(*) FROM {prep.q(CHANGES)} GROUP BY {kind}")
    return {int(k): int(n) for k, n in rows}


def _stage_in_target(prep: LoadContext, ctx: LoadContext, table: str, select: str) -> None:
    """Copy the rows of ``select`` (on the preparing session) into temp table ``table``."""
    types = {c.name: c.type for c in ctx.physical_columns}
    ctx.backend.stage_arrow(table, prep.backend.read_arrow(select), column_types=types)
    ctx.analyze(table)


def _load_scd2(prep: LoadContext, ctx: LoadContext) -> Counts:
    q, pq = ctx.q, prep.q
    target = ctx.target
    keys = list(target.keys)
    _pull_current(prep, ctx, tombstones=True)
    src, chg = pq(SOURCE), pq(CHANGES)
    total = prep.scalar(f"SELECT COUNT(*) FROM {src}")
    prep.run(snapshot_changes_sql(prep, src, pq(_CURRENT)))
    kinds = _kind_counts(prep)
    absent = kinds.get(ABSENT, 0)
    closing = absent + kinds.get(CHANGED, 0)

    counts = Counts(deleted=absent)
    if closing:
        _stage_in_target(
            prep,
            ctx,
            _CLOSING,
            f"SELECT {prep.cols(keys)}, {pq(KIND)} FROM {chg} WHERE {pq(KIND)} <> {NEW_KEY}",
        )
        counts.closed = ctx.run(close_current_sql(ctx, q(_CLOSING)))
        if absent and target.deletes is Deletes.NEW_RECORD:
            counts.inserted += insert_tombstones(ctx, q(_CLOSING))
        ctx.run(f"DROP TABLE {q(_CLOSING)}")
    versions = _copy_versions(
        prep, ctx, f"{src} AS s JOIN {chg} AS c ON {prep.match('s', 'c')}", with_constants=True
    )
    counts.inserted += versions
    counts.unchanged = max(total - versions, 0)
    for table in (CHANGES, _CURRENT):
        prep.run(f"DROP TABLE {pq(table)}")
    return counts


def _load_merge(prep: LoadContext, ctx: LoadContext) -> Counts:
    """Upsert: changed rows are staged for one ``UPDATE``, new rows COPYed straight in."""
    q, pq = ctx.q, prep.q
    target = ctx.target
    keys = list(target.keys)
    _pull_current(prep, ctx, tombstones=False)
    src, cur, chg = pq(SOURCE), pq(_CURRENT), pq(CHANGES)
    tracked = target.deletes is Deletes.CLOSE
    total = prep.scalar(f"SELECT COUNT(*) FROM {src}")
    prep.run(changes_sql(prep, src, cur, tracked=tracked, tombstones=False))

    def of_kind(kind: int) -> str:
        return f"{src} AS s JOIN {chg} AS c ON {prep.match('s', 'c')} AND c.{pq(KIND)} = {kind}"

    counts = Counts()
    updates = ctx.non_key_columns
    kinds = _kind_counts(prep)
    if updates and kinds.get(CHANGED):
        _stage_in_target(
            prep,
            ctx,
            _CHANGED_ROWS,
            f"SELECT {prep.cols(ctx.data_columns, 's')} FROM {of_kind(CHANGED)}",
        )
        assignments = ", ".join(f"{q(c)} = u.{q(c)}" for c in updates)
        counts.updated = ctx.run(
            f"UPDATE {ctx.table} AS t SET {assignments}, "
            f"{q('_loaded_at')} = {ctx.const('loaded_at')}, {q('_batch_id')} = {ctx.const('batch_id')} "
            f"FROM {q(_CHANGED_ROWS)} AS u WHERE {ctx.match('t', 'u')}"
        )
        ctx.run(f"DROP TABLE {q(_CHANGED_ROWS)}")
    if tracked and kinds.get(ABSENT):
        _stage_in_target(
            prep,
            ctx,
            _CLOSING,
            f"SELECT {prep.cols(keys)} FROM {chg} WHERE {pq(KIND)} = {ABSENT}",
        )
        counts.deleted = ctx.run(
            f"DELETE FROM {ctx.table} AS t USING {q(_CLOSING)} AS g WHERE {ctx.match('t', 'g')}"
        )
        ctx.run(f"DROP TABLE {q(_CLOSING)}")
    counts.inserted = _copy_versions(prep, ctx, of_kind(NEW_KEY), with_constants=True)
    counts.unchanged = max(total - counts.inserted - counts.updated, 0)
    for table in (CHANGES, _CURRENT):
        prep.run(f"DROP TABLE {pq(table)}")
    return counts


def _copy_versions(
    prep: LoadContext,
    ctx: LoadContext,
    select_from: str,
    *,
    with_constants: bool,
    freeze: bool = False,
) -> int:
    """COPY rows of ``select_from`` (aliased ``s``) into the target, hashed on the way out.

    ``row_hash`` is computed while the rows stream out of the preparing session, so hashing
    overlaps with the target ingesting the previous batch.
    """
    q = prep.q
    scd2 = ctx.target.mode is LoadMode.SCD2
    names = list(ctx.data_columns)
    selects = [f"s.{q(n)}" for n in names]
    if scd2:
        names.append("row_hash")
        selects.append(prep.row_hash_sql("s"))
    if with_constants:
        if scd2:
            target = ctx.target
            names += [target.column_name(n) for n in ("valid_from", "is_current", "is_deleted")]
            selects += [f"s.{prep.managed('valid_from')}", "TRUE", "FALSE"]
            if target.current_valid_to is not None:
                names.append(target.column_name("valid_to"))
                selects.append(prep.open_end())
        names += ["_loaded_at", "_batch_id"]
        selects += [
            f"(SELECT {q('loaded_at')} FROM {q(BATCH)})",
            f"(SELECT {q('batch_id')} FROM {q(BATCH)})",
        ]
    reader = prep.backend.read_arrow(f"SELECT {', '.join(selects)} FROM {select_from}")
    ctx.statements.append(f"COPY {ctx.table} ({ctx.cols(names)}) FROM STDIN")
    return ctx.backend.copy_arrow(ctx.table, reader, columns=names, freeze=freeze)


def add_batch_constant_columns(ctx: LoadContext, late: Sequence[TableColumn]) -> None:
    """Add ``late`` columns to the table the load created, its rows holding the batch's values.

    Each value is a default evaluated once (PostgreSQL keeps it in the catalog, not in the
    rows), dropped again right after, so later inserts must name every column.
    """
    backend, target = ctx.backend, ctx.target
    sentinel = target.current_valid_to
    backend.execute(
        "SELECT set_config('ematix.batch_id', %s, true), set_config('ematix.batch_ts', %s, true), "
        "set_config('ematix.loaded_at', %s, true), "
        "set_config('ematix.current_valid_to', %s, true)",
        (
            ctx.batch_id,
            ctx.batch_ts.isoformat(),
            ctx.loaded_at.isoformat(),
            sentinel.isoformat() if sentinel is not None else "",
        ),
    )
    batch_ts = "CAST(current_setting('ematix.batch_ts') AS TIMESTAMPTZ)"
    values = {
        "_loaded_at": "CAST(current_setting('ematix.loaded_at') AS TIMESTAMPTZ)",
        "_batch_id": "current_setting('ematix.batch_id')",
        target.column_name("valid_from"): batch_ts,
        target.column_name("is_current"): "TRUE",
        target.column_name("is_deleted"): "FALSE",
    }
    if sentinel is not None:
        values[target.column_name("valid_to")] = (
            "CAST(current_setting('ematix.current_valid_to') AS TIMESTAMPTZ)"
        )
    additions = []
    for column in late:
        definition = f"ADD COLUMN {ctx.q(column.name)} {backend.column_type_sql(column.type)}"
        if column.name in values:
            definition += f" DEFAULT {values[column.name]}"
        if not column.nullable:
            definition += " NOT NULL"
        additions.append(definition)
    ctx.run(f"ALTER TABLE {ctx.table} {', '.join(additions)}")
    defaults = [f"ALTER COLUMN {ctx.q(c.name)} DROP DEFAULT" for c in late if c.name in values]
    ctx.run(f"ALTER TABLE {ctx.table} {', '.join(defaults)}")
