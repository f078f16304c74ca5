"""What a load reports back."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PreviewResult", "RunResult", "TargetPreview", "TargetResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetResult:
    """Counts for one target of a run.

    Attributes:
        target: ``schema.table``.
        mode: the load mode.
        backend: the target system (postgres, duckdb, sqlite, delta).
        rows_inserted: rows (or SCD2 versions) inserted.
        rows_updated: rows rewritten in place (merge updates, SCD2 re-linked history).
        rows_unchanged: source rows that changed nothing.
        rows_closed: SCD2 versions closed (changed, deleted or expired).
        rows_deleted: rows deleted (merge) or keys closed because the snapshot lacked them.
        watermark: the target's watermark after the load (text), if incremental.
        row_count: rows in the target table after the load.
        duration_s: seconds this target's load took.
        path: how the rows reached the target (``same database``, ``in-process``, ``staged``;
            see :mod:`ematix_engine.write.planner`).
    """

    target: str
    mode: str
    backend: str
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_closed: int = 0
    rows_deleted: int = 0
    watermark: str | None = None
    row_count: int | None = None
    duration_s: float = 0.0
    path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """Outcome of ``Pipeline.run()``: totals over targets plus each target's counts."""

    pipeline: str
    run_id: str
    status: str
    duration_s: float
    targets: tuple[TargetResult, ...] = ()
    dry_run: bool = False
    error: str | None = None

    @property
    def rows_inserted(self) -> int:
        """Inserted rows over all targets."""
        return sum(t.rows_inserted for t in self.targets)

    @property
    def rows_updated(self) -> int:
        """Updated rows over all targets."""
        return sum(t.rows_updated for t in self.targets)

    @property
    def rows_unchanged(self) -> int:
        """Unchanged source rows over all targets."""
        return sum(t.rows_unchanged for t in self.targets)

    @property
    def rows_closed(self) -> int:
        """Closed SCD2 versions over all targets."""
        return sum(t.rows_closed for t in self.targets)

    @property
    def rows_deleted(self) -> int:
        """Deleted rows over all targets."""
        return sum(t.rows_deleted for t in self.targets)

    @property
    def watermark(self) -> str | None:
        """The watermark of the first incremental target, if any."""
        return next((t.watermark for t in self.targets if t.watermark is not None), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetPreview:
    """The plan for one target: where, how, and the statements it would run."""

    target: str
    mode: str
    backend: str
    same_database: bool
    statements: tuple[str, ...] = field(default_factory=tuple)
    path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PreviewResult:
    """``Pipeline.preview()``: the source SQL and each target's plan; nothing was written."""

    pipeline: str
    source_sql: str
    targets: tuple[TargetPreview, ...]

    def __str__(self) -> str:
        lines = [f"pipeline {self.pipeline}", "source:", f"  {self.source_sql.strip()}"]
        for target in self.targets:
            how = target.path or ("same database" if target.same_database else "staged")
            lines.append(f"target {target.target} [{target.backend}, {target.mode}, {how}]:")
            lines.extend(f"  {s};" for s in target.statements)
        return "\n".join(lines)
