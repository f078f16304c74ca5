"""``Pipeline.preview()``: describe a load's plan without touching any table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ematix_engine.backends import same_database
from ematix_engine.batch.context import RAW, SOURCE
from ematix_engine.batch.result import PreviewResult, TargetPreview
from ematix_engine.batch.runner import _copies_straight_in, _source_connection, _target_connection
from ematix_engine.specs import LoadMode

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline
    from ematix_engine.specs import TargetSpec

__all__ = ["preview_pipeline"]


def preview_pipeline(pipeline: Pipeline) -> PreviewResult:
    """Describe what ``run()`` would do, without writing anything.

    The source SQL is rendered for the source connection; each target's plan lists its mode and
    whether it runs inside one database or stages across databases. (Use ``dry_run()`` to run
    the real statements and roll them back.)
    """
    from ematix_engine.connections import get_connection

    spec = pipeline.spec
    previews = []
    source_sql = ""
    for target in spec.targets:
        source_conn = _source_connection(spec, target)
        source_sql = spec.source(get_connection(source_conn))
        same = same_database(source_conn, _target_connection(target))
        kind = get_connection(_target_connection(target)).kind
        if not same and kind == "postgres":
            steps = _in_process_steps(target)
        else:
            steps = [
                f"stage source into {RAW} "
                f"({'CREATE TEMP VIEW AS SELECT' if same else 'Arrow batches'})",
                "ensure_table (create / add columns)",
                f"prepare {SOURCE}: normalize, cast, row_hash, dedupe",
                f"{target.mode.value} into {target.label}",
            ]
        if spec.incremental_column:
            steps.append(f"advance watermark on {spec.incremental_column} in the same transaction")
        previews.append(
            TargetPreview(
                target=target.label,
                mode=target.mode.value,
                backend={"delta_local": "delta"}.get(kind, kind),
                same_database=same,
                statements=tuple(steps),
            )
        )
    return PreviewResult(pipeline=spec.name, source_sql=source_sql, targets=tuple(previews))


def _in_process_steps(target: TargetSpec) -> list[str]:
    """Steps of a cross-database load into PostgreSQL (see ``batch/in_process.py``)."""
    steps = [
        f"stage source into {RAW} (Arrow batches into an in-memory DuckDB session)",
        "ensure_table (create / add columns)",
        f"prepare {SOURCE} in DuckDB: normalize, cast, dedupe",
    ]
    if _copies_straight_in(target):
        steps.append(
            f"empty target: COPY the rows (hashed on the way) straight into {target.label}"
        )
    compares = target.mode is LoadMode.MERGE or (
        target.mode is LoadMode.SCD2
        and target.event_timestamp_column is None
        and target.ttl_seconds is None
    )
    if compares:
        steps.append(
            "otherwise: lock the target against writers, read its current keys and compare "
            "columns into DuckDB, compare there, send only the keys to close or delete and "
            "the new rows"
        )
    else:
        steps.append(f"otherwise: COPY {SOURCE} into a temp table, then {target.mode.value}")
    return steps
