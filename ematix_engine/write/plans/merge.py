"""Merge (upsert on keys), set-based.

Unchanged rows are never rewritten: the UPDATE only touches keys whose compare columns differ
(NULL-safe). With ``deletes="close"`` the source is a full snapshot and target keys it lacks
are deleted. Duplicate keys were resolved when the source was prepared (newest event wins).
"""

from __future__ import annotations

from ematix_engine.specs import Deletes
from ematix_engine.write.context import SOURCE, Counts, LoadContext

__all__ = ["load_merge"]


def load_merge(ctx: LoadContext) -> Counts:
    """Upsert the prepared source into the target; return the counts."""
    src = ctx.q(SOURCE)
    names = ctx.data_columns
    if ctx.target_empty:  # first load: a plain insert, nothing to compare or delete
        return Counts(
            inserted=ctx.run(
                f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {ctx.q('_loaded_at')}, "
                f"{ctx.q('_batch_id')}) SELECT {ctx.cols(names, 's')}, {ctx.const('loaded_at')}, "
                f"{ctx.const('batch_id')} FROM {src} AS s"
            )
        )
    total = ctx.scalar(f"SELECT COUNT(*) FROM {src}")
    updates = ctx.non_key_columns
    updated = 0
    if updates:
        assignments = ", ".join(f"{ctx.q(c)} = s.{ctx.q(c)}" for c in updates)
        updated = ctx.run(
            f"UPDATE {ctx.table} AS t SET {assignments}, "
            f"{ctx.q('_loaded_at')} = {ctx.const('loaded_at')}, "
            f"{ctx.q('_batch_id')} = {ctx.const('batch_id')} "
            f"FROM {src} AS s WHERE {ctx.match('t', 's')} "
            f"AND {ctx.distinct('t', 's', ctx.compare_columns)}"
        )
    inserted = ctx.run(
        f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {ctx.q('_loaded_at')}, {ctx.q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 's')}, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
        f"FROM {src} AS s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {ctx.table} AS t WHERE {ctx.match('t', 's')})"
    )
    deleted = 0
    if ctx.target.deletes is Deletes.CLOSE:
        deleted = ctx.run(
            f"DELETE FROM {ctx.table} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {src} AS s WHERE {ctx.match(ctx.table, 's')}) "
            f"AND {ctx.retirable(ctx.table, src)}"
        )
    return Counts(
        inserted=inserted,
        updated=updated,
        unchanged=max(total - inserted - updated, 0),
        deleted=deleted,
    )
