"""Replace: build the new table beside the old one, then swap them in one transaction."""

from __future__ import annotations

from ematix_engine.schema.ddl import ensure_table
from ematix_engine.write.context import SOURCE, Counts, LoadContext

__all__ = ["load_replace", "staging_name"]


def staging_name(table: str) -> str:
    """Name of the table a replace builds before the swap."""
    return f"{table}__ematix_new"


def load_replace(ctx: LoadContext) -> Counts:
    """Fill a fresh table with the source and swap it in for the target atomically."""
    spec = ctx.target.table
    backend = ctx.backend
    new_name = staging_name(spec.name)
    new_table = backend.table_sql(spec.schema, new_name)
    old_rows = ctx.scalar(f"SELECT COUNT(*) FROM {ctx.table}")
    ctx.run(f"DROP TABLE IF EXISTS {new_table}")
    columns = list(ctx.physical_columns)
    if ctx.execute_writes:
        ctx.statements.extend(
            # no PRIMARY KEY: like the first load (target_primary_key), replace adds no
            # constraint a duplicate source key could trip over
            ensure_table(backend, spec.schema, new_name, columns)
        )
    names = ctx.data_columns
    inserted = ctx.run(
        f"INSERT INTO {new_table} ({ctx.cols(names)}, {ctx.q('_loaded_at')}, {ctx.q('_batch_id')}) "
        f"SELECT {ctx.cols(names, 's')}, {ctx.const('loaded_at')}, {ctx.const('batch_id')} "
        f"FROM {ctx.q(SOURCE)} AS s"
    )
    ctx.run(f"DROP TABLE {ctx.table}")
    ctx.run(f"ALTER TABLE {new_table} RENAME TO {ctx.q(spec.name)}")
    return Counts(inserted=inserted, deleted=old_rows)
