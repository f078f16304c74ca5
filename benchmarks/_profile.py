"""Attribute an ematix load's wall time to its phases, without touching ``ematix_engine``.

The benchmark child process calls :meth:`StatementProfiler.install` before it runs a pipeline.
That wraps the primitive methods of the SQL backends (connect, ``execute``, ``query``,
``read_arrow``, ``stage_arrow``, ``begin``, ``commit`` …) with timers. Only the outermost call is
recorded (``stage_arrow`` calling ``execute`` counts once), and the Arrow reader a *source*
backend returns is wrapped too, so the time spent pulling batches out of the source during
cross-database staging is split from the time spent writing them into the target.

Each recorded statement is labelled by what it does in the plan (see ``_LABELS``); whatever the
wrappers do not see (Python planning, sqlglot quoting, connection registry) is reported as
"python / other".
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["StatementProfiler"]

# First match wins; patterns run on the statement with whitespace collapsed.
_LABELS: list[tuple[str, str]] = [
    (r'^(CREATE TEMP TABLE|INSERT INTO|DROP TABLE IF EXISTS) "_ematix_batch"', "batch constants"),
    (r'CREATE TEMP TABLE "_ematix_raw" AS', "stage: same-db CTAS of the source query"),
    (r"LIMIT 0$", "raw schema probe"),
    (r"information_schema|pragma_table_info|format_type", "ensure_table: introspect"),
    (r"ADD PRIMARY KEY", "build the primary key after a first load"),
    (
        r"^ALTER TABLE \S+ (ADD COLUMN|ALTER COLUMN) .*(DEFAULT|DROP DEFAULT)",
        "first load: add batch-constant columns",
    ),
    (r"^(CREATE SCHEMA|CREATE TABLE|ALTER TABLE \S+ ADD)", "ensure_table: DDL"),
    (r"set_config\('ematix", "batch constants"),
    (r'"_ematix_pre" AS SELECT', "prepare: cast + row_hash (CTAS)"),
    (r"HAVING COUNT\(\*\) > 1", "prepare: duplicate-key check"),
    (r"ROW_NUMBER\(\)", "prepare: dedupe"),
    (r"RENAME TO", "prepare: rename"),
    (r'^SELECT COUNT\(\*\) FROM "_ematix_src"$', "count source rows"),
    (r"^LOCK TABLE", "compare: lock the target against writers"),
    (r'"_ematix_chg" AS SELECT', "find new, changed and absent keys (join)"),
    (r'COUNT\(\*\) FROM "_ematix_chg"', "count changes"),
    (r'^UPDATE .* FROM "_ematix_(chg|close)"', "close changed and absent versions"),
    (r'^UPDATE .* FROM "_ematix_upd"', "merge: update changed rows"),
    (r'^DELETE .* USING "_ematix_close"', "merge: delete absent keys"),
    (r'^INSERT INTO .* JOIN "_ematix_(chg|close)"', "insert new versions / tombstones"),
    (r'"_ematix_gone" AS SELECT', "deletes: find absent keys (anti-join)"),
    (r'COUNT\(\*\) FROM "_ematix_gone"', "deletes: count"),
    (r'^UPDATE .* FROM "_ematix_gone"', "deletes: close absent keys"),
    (r"^DROP", "drop temp tables"),
    (r"^SELECT COUNT\(\*\) FROM", "final target row count"),
    (r"^SET ", "session settings"),
    (r"^(BEGIN|COMMIT|ROLLBACK)", "begin/commit"),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), label) for p, label in _LABELS]

_METHOD_LABELS = {
    "__init__": "connect",
    "close": "close",
    "begin": "begin",
    "commit": "commit",
    "rollback": "rollback",
    "prepare_load_session": "session settings",
    "table_columns": "ensure_table: introspect",
    "stage_arrow": "stage: cross-db write into target",
    "copy_arrow": "load: COPY prepared rows into the target",
    "analyze": "analyze temp tables",
}
_SQL_METHODS = ("execute", "query", "read_arrow")
SOURCE_READ = "stage: source read (query + Arrow batches)"
#: stage_arrow labels by the temp table written (default: the method's label).
_SNAPSHOT_READ = "compare: read the target's current rows (ADBC, at the load's snapshot)"
_STAGED_LABELS = {
    "_ematix_cur": "compare: load them into DuckDB",
    "_ematix_close": "compare: send keys to close or delete",
    "_ematix_upd": "compare: send changed rows (merge)",
    "_ematix_src": "stage: prepared rows into a target temp table",
}


def _is_source_read(backend: str, sql: str) -> bool:
    """Whether ``read_arrow`` reads the pipeline's source.

    Not when it streams prepared rows out of the DuckDB session (``_ematix_*`` tables) or
    reads the PostgreSQL target's current rows (this benchmark's sources are DuckDB and SQLite
    files); those readers are consumed, and timed, inside the call that writes them.
    """
    if sql.rstrip().upper().endswith("LIMIT 0"):
        return False
    return '"_ematix_' not in sql and backend != "postgres"


def _timed(reader: pa.RecordBatchReader, add: Any) -> pa.RecordBatchReader:
    """``reader``, passing the seconds each batch (and the end) takes to ``add``."""

    def batches():
        iterator = iter(reader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                add(time.perf_counter() - started)
                return
            add(time.perf_counter() - started)
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def label_sql(sql: str) -> str:
    """The plan step a statement belongs to."""
    flat = " ".join(sql.split())
    for pattern, label in _COMPILED:
        if pattern.search(flat):
            return label
    return "other SQL"


@dataclass
class Event:
    """One outermost backend call."""

    label: str
    seconds: float
    backend: str
    sql: str = ""


@dataclass
class StatementProfiler:
    """Times every outermost backend call made while it is installed."""

    events: list[Event] = field(default_factory=list)
    source_read_s: float = 0.0
    _depth: int = 0
    _installed: bool = False

    def reset(self) -> None:
        """Forget what was recorded (after a warm-up run)."""
        self.events.clear()
        self.source_read_s = 0.0

    # ----------------------------------------------------------------------- install
    def install(self) -> None:
        """Wrap the methods of every SQL backend class (idempotent)."""
        if self._installed:
            return
        from ematix_engine.backends.duckdb import DuckDBBackend
        from ematix_engine.backends.postgres import PostgresBackend
        from ematix_engine.backends.sqlite import SQLiteBackend

        for cls in (DuckDBBackend, PostgresBackend, SQLiteBackend):
            for name in (*_METHOD_LABELS, *_SQL_METHODS):
                original = getattr(cls, name, None)
                if original is None:
                    continue
                setattr(cls, name, self._wrap(cls.name, name, original))
        self._installed = True

    def _wrap(self, backend: str, method: str, original: Any) -> Any:
        profiler = self

        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
            outermost = profiler._depth == 0
            profiler._depth += 1
            started = time.perf_counter()
            try:
                result = original(obj, *args, **kwargs)
            finally:
                profiler._depth -= 1
            elapsed = time.perf_counter() - started
            sql = ""
            if method in _SQL_METHODS:
                sql = str(args[0]) if args else str(kwargs.get("sql", ""))
            if method == "read_arrow" and _is_source_read(backend, sql):
                # A source read: time the batches as the target pulls them.
                profiler.source_read_s += elapsed
                return profiler._timed_reader(result)
            if method == "read_arrow" and kwargs.get("snapshot"):
                # The compare step's read of the target, consumed right away by read_all().
                return profiler._labelled_reader(result, elapsed, backend, sql)
            if outermost:
                label = label_sql(sql) if sql else _METHOD_LABELS[method]
                if method == "stage_arrow" and args:
                    label = _STAGED_LABELS.get(str(args[0]), label)
                profiler.events.append(Event(label, elapsed, backend, " ".join(sql.split())))
            return result

        wrapper.__name__ = getattr(original, "__name__", method)
        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        return wrapper

    def _timed_reader(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """``reader``, adding the time its batches take to the source-read total."""

        def add(seconds: float) -> None:
            self.source_read_s += seconds

        return _timed(reader, add)

    def _labelled_reader(
        self, reader: pa.RecordBatchReader, elapsed: float, backend: str, sql: str
    ) -> pa.RecordBatchReader:
        """Record the time to open ``reader`` plus the time its batches take, as one step."""
        event = Event(_SNAPSHOT_READ, elapsed, backend, " ".join(sql.split()))
        self.events.append(event)

        def add(seconds: float) -> None:
            event.seconds += seconds

        return _timed(reader, add)

    # ----------------------------------------------------------------------- report
    def breakdown(self, wall_s: float) -> dict[str, float]:
        """Seconds per plan step, largest first; the parts add up to ``wall_s``."""
        totals: dict[str, float] = defaultdict(float)
        for event in self.events:
            totals[event.label] += event.seconds
        if self.source_read_s:
            # Source batches are pulled inside the target's stage_arrow (or read_arrow itself).
            write = "stage: cross-db write into target"
            totals[write] = max(totals.get(write, 0.0) - self.source_read_s, 0.0)
            totals[SOURCE_READ] += self.source_read_s
        accounted = sum(totals.values())
        totals["python / other (planning, sqlglot, registry)"] = max(wall_s - accounted, 0.0)
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def statements(self, top: int | None = None) -> list[dict[str, Any]]:
        """Every recorded call in order (or the ``top`` slowest)."""
        events = sorted(self.events, key=lambda e: -e.seconds)[:top] if top else self.events
        return [
            {"label": e.label, "seconds": round(e.seconds, 4), "backend": e.backend, "sql": e.sql}
            for e in events
        ]
