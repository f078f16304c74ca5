"""Delta Lake (local path, delta-rs): target and source, with DuckDB as the compute engine.

Delta has no SQL engine of its own, so a load runs the ordinary set-based plan in an in-memory
DuckDB session and then commits the *difference* to the Delta table in **one** commit:

* append  → the new rows, ``mode="append"`` (a partition's append that deleted the
  partition's old rows first commits the new table, ``mode="overwrite"``);
* replace → the new table, ``mode="overwrite"``;
* merge / scd2 → one Delta ``MERGE`` keyed on the version key (keys, plus ``valid_from`` for
  SCD2) whose source is every row the plan inserted or changed, plus the keys it deleted.

New source columns (schema drift) are added by that same commit. When no row changed but the
schema or the watermark did, the commit is an empty append; when nothing changed at all there is
no commit. A load that fails commits nothing. The Delta schema keeps NOT NULL (non-nullable
fields), and the plan enforces it on every load as the SQL backends do.

The watermark of an incremental pipeline rides in that commit's metadata
(``ematix.watermark.<pipeline>``), so it advances exactly when the rows do. Tables live at
``<root>/<schema>/<table>``; as a source, every table under the root is visible to the SQL as
``schema.table``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from ematix_engine.backends.duckdb import DuckDBBackend
from ematix_engine.specs import LoadMode

__all__ = ["DeltaBackend"]

_WATERMARK_KEY = "ematix.watermark."
_ORIGINAL = "_ematix_original"


@dataclass(frozen=True, slots=True)
class _Target:
    """The table a write goes to, and how its rows are identified."""

    schema: str
    table: str
    mode: LoadMode
    version_key: tuple[str, ...]


@dataclass(slots=True)
class _DeltaWrite:
    """An open Delta write: the DuckDB session the plan runs in, and the checkpoints."""

    sql: DuckDBBackend
    snapshot: DeltaTable | None
    read: dict[str, str | None] = dataclasses.field(default_factory=dict)
    pending: dict[str, str] = dataclasses.field(default_factory=dict)

    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """The checkpoint in the metadata of the version this write started from."""
        if name not in self.read:
            self.read[name] = (
                _watermark_in(self.snapshot, name) if self.snapshot is not None else None
            )
        return self.read[name]

    def put_checkpoint(self, name: str, scope: str, value: str) -> None:
        """Record ``value`` in the metadata of this write's commit."""
        self.pending[name] = value


class DeltaBackend:
    """Delta tables under one root folder (a :class:`~ematix_engine.backends.store.TableStore`)."""

    name: ClassVar[str] = "delta"
    dialect: ClassVar[str] = "duckdb"
    DISPLAY_NAME: ClassVar[str] = "Delta Lake"
    SUPPORTS_SCHEMAS: ClassVar[bool] = True
    PREPARES_IN_PROCESS: ClassVar[bool] = False
    RUNS_SQL: ClassVar[bool] = False
    TYPE_MAP = DuckDBBackend.TYPE_MAP

    def __init__(self, root: str, *, connection: Any = None) -> None:
        self.root = Path(root)
        self.connection = connection

    @classmethod
    def open(cls, connection: Any, *, read_only: bool = False) -> DeltaBackend:
        """Open the Delta tables under a ``DeltaLocalConnection``'s path."""
        return cls(connection.path, connection=connection)

    # --------------------------------------------------------------------------- paths
    def table_path(self, schema: str, table: str) -> Path:
        """Folder of ``schema.table``."""
        return self.root / schema / table

    def tables(self) -> list[tuple[str, str]]:
        """Every Delta table under the root as ``(schema, table)``."""
        found = []
        if self.root.is_dir():
            for schema_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                for table_dir in sorted(p for p in schema_dir.iterdir() if p.is_dir()):
                    if (table_dir / "_delta_log").is_dir():
                        found.append((schema_dir.name, table_dir.name))
        return found

    def compute_session(
        self, snapshots: dict[tuple[str, str], DeltaTable] | None = None
    ) -> DuckDBBackend:
        """An in-memory DuckDB session with every table under the root as ``schema.table``.

        Args:
            snapshots: filled with the ``DeltaTable`` (at the version read) of each table.
        """
        duck = DuckDBBackend(":memory:")
        for schema, table in self.tables():
            duck.create_schema(schema)
            delta = DeltaTable(str(self.table_path(schema, table)))
            if snapshots is not None:
                snapshots[(schema, table)] = delta
            dataset = delta.to_pyarrow_dataset()
            view = f"_ematix_delta_{len(schema)}_{schema}_{table}"
            duck.register_arrow(view, dataset)
            duck.execute(
                f"CREATE VIEW {duck.table_sql(schema, table)} AS SELECT * FROM {duck.quote(view)}"
            )
        return duck

    # --------------------------------------------------------------------------- source
    def read_arrow(
        self, sql: str, params: Any = None, batch_size: int = 100_000
    ) -> pa.RecordBatchReader:
        """Run ``sql`` over the tables under the root (DuckDB dialect) as Arrow batches."""
        duck = self.compute_session()
        table = duck.con.sql(sql, params=params).to_arrow_table()
        duck.close()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_size))

    def param_placeholder(self, index: int) -> str:
        """Positional parameter marker (DuckDB)."""
        return "?"

    def source_placeholder(self) -> str:
        """Marker replacing ``$watermark`` in source SQL."""
        return "?"

    def watermark_params(self, value: Any, occurrences: int) -> list[Any]:
        """One parameter per marker."""
        return [value] * occurrences

    def source_marker(self, index: int) -> str:
        """Positional marker (DuckDB), bound in order."""
        return "?"

    def quote(self, name: str) -> str:
        """Quote an identifier (DuckDB dialect)."""
        return DuckDBBackend.quote(self, name)  # type: ignore[arg-type]

    def table_sql(self, schema: str | None, name: str) -> str:
        """Quoted ``schema.table`` as the DuckDB sessions over the root name it."""
        return DuckDBBackend.table_sql(self, schema, name)  # type: ignore[arg-type]

    def column_type_sql(self, column_type: Any) -> str:
        """DDL type on the DuckDB compute engine."""
        return DuckDBBackend.column_type_sql(self, column_type)  # type: ignore[arg-type]

    def escape_user_sql(self, sql: str) -> str:
        """Nothing to escape for DuckDB."""
        return sql

    def close(self) -> None:
        """Nothing is held open between loads."""

    # --------------------------------------------------------------------------- store
    @contextlib.contextmanager
    def query_session(self) -> Iterator[DuckDBBackend]:
        """An in-memory DuckDB session with every table under the root as ``schema.table``."""
        session = self.compute_session()
        # DuckDB 2.0 pushes string filters into the pyarrow datasets behind the Delta views as
        # string_view scalars, which pyarrow cannot compare with string columns ("no kernel
        # matching input types (string, string_view)"). Queries over this read-only session
        # scan whole tables anyway, so that pushdown is off here.
        session.execute("SET disabled_optimizers = 'filter_pushdown'")
        try:
            yield session
        finally:
            session.close()

    def read_checkpoint(self, name: str, scope: str) -> str | None:
        """Latest checkpoint ``name`` in the commit metadata of the table labelled ``scope``."""
        for schema, table in self.tables():
            if f"{schema}.{table}" == scope:
                return self.read_watermark(name, schema, table)
        return None

    def read_watermark(self, spec_name: str, schema: str, table: str) -> str | None:
        """Latest watermark recorded for ``spec_name`` in the table's commit metadata."""
        path = self.table_path(schema, table)
        if not (path / "_delta_log").is_dir():
            return None
        return _watermark_in(DeltaTable(str(path)), spec_name)

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
    ) -> Iterator[_DeltaWrite]:
        """One write: the plan runs in DuckDB over a copy of the table; one commit follows.

        The commit holds the difference the plan made to the copy, plus every checkpoint in
        its metadata (see the module docstring). It is made against the version the plan
        read, so a concurrent commit to the table is a conflict (the write fails) instead of
        a silently stale difference.
        """
        from ematix_engine.backends.locks import file_lock, target_lock

        label = f"{schema}.{table}"
        path = self.table_path(schema, table)
        # Writers of this table take turns: the plan below reads the table's newest version
        # only once the previous writer committed (a concurrent commit by anyone else is a
        # Delta conflict, and the write fails).
        lock_file = path.parent / f".{table}.ematix-lock"
        with (
            target_lock(f"delta:{path.resolve()}", label, writer),
            file_lock(lock_file, label, writer),
        ):
            yield from self._write(schema, table, mode, version_key, batch_id, writer, dry_run)

    def _write(
        self,
        schema: str,
        table: str,
        mode: LoadMode,
        version_key: Sequence[str],
        batch_id: str,
        writer: str,
        dry_run: bool,
    ) -> Iterator[_DeltaWrite]:
        from ematix_engine.errors import LoadError

        snapshots: dict[tuple[str, str], DeltaTable] = {}
        duck = self.compute_session(snapshots)
        snapshot = snapshots.get((schema, table))
        write = _DeltaWrite(duck, snapshot)
        try:
            self._copy_into_session(duck, schema, table, snapshot)
            duck.prepare_load_session()
            with duck.transaction(rollback=dry_run):
                yield write
            if dry_run:
                return
            metadata = {"ematix.batch_id": batch_id, "ematix.pipeline": writer}
            for checkpoint, value in {**write.read, **write.pending}.items():
                if value is not None:
                    metadata[_WATERMARK_KEY + checkpoint] = value
            changed = any(write.read.get(k) != v for k, v in write.pending.items())
            commit = CommitProperties(custom_metadata=metadata)
            target = _Target(schema, table, mode, tuple(version_key))
            try:
                self._commit(duck, snapshot, target, commit, batch_id, changed)
            except Exception as error:  # e.g. a concurrent commit: nothing was written
                raise LoadError(
                    writer, f"{schema}.{table}", f"Delta commit failed: {error}"
                ) from error
        finally:
            duck.close()

    def _copy_into_session(
        self, duck: DuckDBBackend, schema: str, table: str, snapshot: DeltaTable | None
    ) -> None:
        """Turn the table's view into a table the plan may change, and keep the original."""
        duck.create_schema(schema)
        if snapshot is None:
            return
        table_sql = duck.table_sql(schema, table)
        duck.execute(f"DROP VIEW IF EXISTS {table_sql}")
        duck.execute(
            f"CREATE TABLE {table_sql} AS SELECT * FROM "
            f"{duck.quote(f'_ematix_delta_{len(schema)}_{schema}_{table}')}"
        )
        # CREATE TABLE AS drops NOT NULL: restore the Delta schema's, so the plan refuses
        # NULLs in a NOT NULL column as it does on the SQL backends.
        for field in snapshot.schema().to_arrow():
            if not field.nullable:
                duck.execute(
                    f"ALTER TABLE {table_sql} ALTER COLUMN {duck.quote(field.name)} SET NOT NULL"
                )
        duck.execute(f"CREATE TABLE {duck.quote(_ORIGINAL)} AS SELECT * FROM {table_sql}")

    def _commit(
        self,
        duck: DuckDBBackend,
        snapshot: DeltaTable | None,
        target: _Target,
        commit: CommitProperties,
        batch_id: str,
        watermark_changed: bool,
    ) -> None:
        """Write the load's one commit (or none when nothing changed)."""
        path = self.table_path(target.schema, target.table)
        table_sql = duck.table_sql(target.schema, target.table)
        if snapshot is None:  # a new table; "error" if another writer created it meanwhile
            path.parent.mkdir(parents=True, exist_ok=True)
            table = _arrow(duck, f"SELECT * FROM {table_sql}", table_sql)
            write_deltalake(str(path), table, mode="error", commit_properties=commit)
        elif target.mode is LoadMode.REPLACE or (
            target.mode is LoadMode.APPEND and _lost_rows(duck, table_sql, batch_id)
        ):
            # replace, or an append that first deleted a partition's rows: the new table
            table = _arrow(duck, f"SELECT * FROM {table_sql}", table_sql)
            write_deltalake(
                snapshot,
                table,
                mode="overwrite",
                schema_mode="overwrite",
                commit_properties=commit,
            )
        elif target.mode is LoadMode.APPEND:
            new_rows = _arrow(
                duck,
                f"SELECT * FROM {table_sql} WHERE {duck.quote('_batch_id')} = ?",
                table_sql,
                params=[batch_id],
            )
            if new_rows.num_rows or watermark_changed or _new_columns(duck, snapshot, table_sql):
                write_deltalake(
                    snapshot,
                    new_rows,
                    mode="append",
                    schema_mode="merge",
                    commit_properties=commit,
                )
        else:
            self._merge_difference(duck, snapshot, target, commit, always_commit=watermark_changed)

    def _merge_difference(
        self,
        duck: DuckDBBackend,
        snapshot: DeltaTable,
        target: _Target,
        commit: CommitProperties,
        *,
        always_commit: bool = False,
    ) -> None:
        """Commit what the plan changed as one Delta MERGE (or one empty append).

        New columns (schema drift) ride in the same commit (``merge_schema``). When no row
        changed but the schema or the watermark did, an empty append records them, so a load
        is always exactly one commit, or none when nothing at all changed.
        """
        table_sql = duck.table_sql(target.schema, target.table)
        original = duck.quote(_ORIGINAL)
        version_key = list(target.version_key)
        key_match = " AND ".join(f"o.{duck.quote(k)} = n.{duck.quote(k)}" for k in version_key)
        op = duck.quote("_ematix_op")
        # Columns added by this load (schema drift) are NULL on the rows it did not touch: pad
        # the original with NULLs so EXCEPT compares like with like.
        names = [r[0] for r in duck.con.sql(f"DESCRIBE {table_sql}").fetchall()]
        before = {r[0] for r in duck.con.sql(f"DESCRIBE {original}").fetchall()}
        now_cols = ", ".join(duck.quote(c) for c in names)
        old_cols = ", ".join(
            duck.quote(c) if c in before else f"NULL AS {duck.quote(c)}" for c in names
        )
        changes = _arrow(
            duck,
            f"SELECT *, 'upsert' AS {op} FROM (SELECT {now_cols} FROM {table_sql} EXCEPT "
            f"SELECT {old_cols} FROM {original}) "
            f"UNION ALL BY NAME "
            f"SELECT o.*, 'delete' AS {op} FROM {original} AS o WHERE NOT EXISTS "
            f"(SELECT 1 FROM {table_sql} AS n WHERE {key_match})",
            table_sql,
        )
        new_columns = _new_columns(duck, snapshot, table_sql)
        if changes.num_rows == 0:
            if new_columns or always_commit:
                empty = _arrow(duck, f"SELECT * FROM {table_sql} LIMIT 0", table_sql)
                write_deltalake(
                    snapshot,
                    empty,
                    mode="append",
                    schema_mode="merge",
                    commit_properties=commit,
                )
            return
        quote = _datafusion_quote
        predicate = " AND ".join(f"target.{quote(k)} = source.{quote(k)}" for k in version_key)
        columns = [n for n in changes.schema.names if n != "_ematix_op"]
        assignments = {quote(c): f"source.{quote(c)}" for c in columns}
        (
            snapshot.merge(
                changes,
                predicate=predicate,
                source_alias="source",
                target_alias="target",
                merge_schema=bool(new_columns),
                commit_properties=commit,
            )
            .when_matched_update(updates=assignments, predicate="source._ematix_op = 'upsert'")
            .when_matched_delete(predicate="source._ematix_op = 'delete'")
            .when_not_matched_insert(updates=assignments, predicate="source._ematix_op = 'upsert'")
            .execute()
        )


def _arrow(duck: DuckDBBackend, sql: str, table_sql: str, params: Any = None) -> pa.Table:
    """Result of ``sql`` as Arrow, with the NOT NULL columns of ``table_sql`` non-nullable.

    DuckDB exports every column as nullable; Delta keeps (and enforces) the flag, and a
    nullable write would loosen a NOT NULL column when the schema is merged.
    """
    data = duck.con.sql(sql, params=params).to_arrow_table()
    not_null = {
        row[0] for row in duck.con.sql(f"DESCRIBE {table_sql}").fetchall() if row[2] == "NO"
    }
    if not not_null & set(data.schema.names):
        return data
    schema = pa.schema(
        [f.with_nullable(False) if f.name in not_null else f for f in data.schema],
        metadata=data.schema.metadata,
    )
    return data.cast(schema)


#: Commits read first when looking for a watermark; the whole log only when they lack it.
HISTORY_PAGE = 200


def _watermark_in(table: DeltaTable, spec_name: str) -> str | None:
    """Latest watermark of ``spec_name`` in the commit metadata of ``table``'s history.

    Every commit ematix makes carries the pipeline's current watermark, so the newest commits
    usually hold it; when other writers made more than :data:`HISTORY_PAGE` commits since,
    the whole log is read (as far as Delta's log retention keeps it).
    """
    key = _WATERMARK_KEY + spec_name
    recent = table.history(HISTORY_PAGE)
    found = next((c[key] for c in recent if c.get(key) is not None), None)
    if found is None and len(recent) >= HISTORY_PAGE:
        found = next((c[key] for c in table.history() if c.get(key) is not None), None)
    return found


def _new_columns(duck: DuckDBBackend, snapshot: DeltaTable, table_sql: str) -> list[str]:
    """Columns of the planned table that the Delta table does not have yet."""
    existing = set(snapshot.schema().to_arrow().names)
    return [r[0] for r in duck.con.sql(f"DESCRIBE {table_sql}").fetchall() if r[0] not in existing]


def _datafusion_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lost_rows(duck: DuckDBBackend, table_sql: str, batch_id: str) -> bool:
    """Whether the plan removed rows of the original table (a partition's append did)."""
    original = duck.query(f"SELECT COUNT(*) FROM {duck.quote(_ORIGINAL)}")[0][0]
    kept = duck.query(
        f"SELECT COUNT(*) FROM {table_sql} WHERE {duck.quote('_batch_id')} IS DISTINCT FROM ?",
        [batch_id],
    )[0][0]
    return int(kept) < int(original)
