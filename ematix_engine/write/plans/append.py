"""Append: insert every source row."""

from __future__ import annotations

from ematix_engine.write.context import SOURCE, Counts, LoadContext

__all__ = ["load_append"]


def load_append(ctx: LoadContext) -> Counts:
    """Insert all rows of the prepared source into the target."""
    names = ctx.data_columns
    inserted = ctx.run(
        f"INSERT INTO {ctx.table} ({ctx.cols(names)}, {ctx.q('_loaded_at')}, {ctx.q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 's')}, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
        f"FROM {ctx.q(SOURCE)} AS s"
    )
    return Counts(inserted=inserted)
