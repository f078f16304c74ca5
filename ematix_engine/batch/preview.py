"""``Pipeline.preview()``: describe a load's plan without touching any table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ematix_engine.batch.result import PreviewResult, TargetPreview
from ematix_engine.batch.runner import plan_target, source_connection

if TYPE_CHECKING:
    from ematix_engine.api.pipeline import Pipeline

__all__ = ["preview_pipeline"]


def preview_pipeline(pipeline: Pipeline) -> PreviewResult:
    """Describe what ``run()`` would do, without writing anything.

    The source SQL is rendered for the source connection; each target's steps come from the
    same :class:`~ematix_engine.write.WritePlan` a run follows (same database, in-process or
    staged). Use ``dry_run()`` to run the real statements and roll them back.
    """
    from ematix_engine.connections import get_connection

    spec = pipeline.spec
    previews = []
    source_sql = ""
    for target in spec.targets:
        source_sql = spec.source.render(get_connection(source_connection(spec, target)))
        plan = plan_target(spec, target)
        steps = list(plan.steps())
        if spec.incremental_column:
            steps.append(f"advance watermark on {spec.incremental_column} in the same transaction")
        if spec.partitions is not None:
            column = spec.partitions.column
            steps.append(
                f"one partition per run, rows filtered on {column}: "
                + (
                    f"delete the partition's rows on {column}, then insert, in the same transaction"
                    if target.mode.value in ("append", "replace")
                    else f"merge the partition; absent keys retire only within it ({column})"
                )
            )
        previews.append(
            TargetPreview(
                target=target.label,
                mode=target.mode.value,
                backend=plan.store,
                same_database=plan.same_database,
                statements=tuple(steps),
                path=plan.path.value,
            )
        )
    return PreviewResult(pipeline=spec.name, source_sql=source_sql, targets=tuple(previews))
