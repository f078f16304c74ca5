"""``EmatixResource``: run the selected targets of ematix pipelines inside a Dagster asset.

An asset body is one line, ``yield from ematix.run(context=context)``. The resource runs each
pipeline's selected targets through the engine's public run iterator
(:func:`ematix_engine.iter_run`: other targets of a fan-out pipeline are left alone), logs its
progress, and for each finished target yields a ``MaterializeResult`` with the standard table
metadata and the load counts, then evaluates the asset's selected checks and yields their
``AssetCheckResult`` s. The engine records each firing in :class:`DagsterRunLog` (the same
history ``ematix status`` and the retry logic read), and the Dagster run is tagged
``ematix/pipeline``.

A run tagged ``ematix/full_refresh=true`` (or a resource configured with ``full_refresh:
true``) rebuilds its targets from the source: see ``docs/dagster.md``, "Full refresh".

On an SCD2 target ``dagster/row_count`` counts the current versions, as the
``row_count_between`` check does; ``ematix/current_versions`` and ``ematix/all_versions``
report both numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg

from ematix_dagster.checks import asset_check_result
from ematix_dagster.constants import RUN_TAG_FULL_REFRESH, RUN_TAG_PIPELINE
from ematix_dagster.event_iterator import EmatixEvent, EmatixEventIterator
from ematix_dagster.metadata import EmatixMetadata, TableMetadata, table_schema_from
from ematix_dagster.partitions import partition_of
from ematix_dagster.progress import ProgressLog
from ematix_dagster.refs import EmatixAssetRef, lookup_ref
from ematix_dagster.retry import failure_for
from ematix_dagster.runlog import DagsterRunLog
from ematix_engine import (
    ConfigError,
    EmatixError,
    LoadMode,
    LoadProgress,
    RunStarted,
    TargetResult,
    TargetSpec,
    iter_run,
)
from ematix_engine.checks import Check, CheckOutcome, check_session, evaluate_checks

__all__ = ["EmatixResource"]


class EmatixResource(dg.ConfigurableResource):
    """Loads ematix pipeline targets for the assets a Dagster step materializes.

    Attributes:
        record_runs: Record each pipeline firing in :class:`DagsterRunLog` (the RunLog over
            this Dagster instance), so attempts and history survive across runs.
        sample_size: Failing rows kept in a failed check's metadata.
        full_refresh: Rebuild every target this resource loads from its source (empty it,
            reset the watermark) instead of loading the changes. For one run, tag it
            ``ematix/full_refresh=true`` instead.

    Examples:
        >>> import os, tempfile
        >>> from typing import Annotated
        >>> import dagster as dg
        >>> from ematix_engine import ematix, pk
        >>> from ematix_engine.connections import DuckDBConnection
        >>> from ematix_engine.types import BigInt, Text
        >>> from ematix_dagster import EmatixResource, ematix_assets
        >>> shop = DuckDBConnection(name="shop", path=os.path.join(tempfile.mkdtemp(), "s.duckdb"))
        >>> @ematix.table(schema="analytics", connection=shop)
        ... class Orders:
        ...     id: Annotated[BigInt, pk()]
        ...     item: Text | None
        >>> @ematix.pipeline(target=Orders, mode="merge")
        ... def orders(conn):
        ...     return "SELECT 1 AS id, 'tea' AS item"
        >>> @ematix_assets(pipeline=orders)
        ... def orders_assets(context: dg.AssetExecutionContext, ematix: EmatixResource):
        ...     yield from ematix.run(context=context)
        >>> with dg.instance_for_test() as instance:
        ...     result = dg.materialize(
        ...         [orders_assets], resources={"ematix": EmatixResource()}, instance=instance
        ...     )
        >>> result.success
        True
    """

    record_runs: bool = True
    sample_size: int = 5
    full_refresh: bool = False

    def run(self, context: dg.AssetExecutionContext) -> EmatixEventIterator:
        """Load the selected assets' targets and evaluate their selected checks.

        Args:
            context: The asset execution context of the step.

        Returns:
            An iterator of ``MaterializeResult`` and ``AssetCheckResult`` events; see
            :class:`~ematix_dagster.event_iterator.EmatixEventIterator` for extras.

        Raises:
            ConfigError: A selected asset is not an ematix asset built in this process.
            EmatixError: A load failed (recorded in the RunLog first); for retry policies
                Dagster cannot express, a ``RetryRequested`` with the engine's delay instead.
            Failure: A load failed with a terminal error (``allow_retries=False``, recorded
                as gave_up); see :func:`~ematix_dagster.retry.failure_for`.
        """
        return EmatixEventIterator(self._events(context), context)

    # ------------------------------------------------------------------------ planning
    def _refs(self, context: dg.AssetExecutionContext) -> tuple[list[EmatixAssetRef], ...]:
        selected = set(context.selected_asset_keys)
        checked = {check_key.asset_key for check_key in context.selected_asset_check_keys}
        loads, check_only = [], []
        for key in sorted(selected | checked, key=lambda k: k.to_user_string()):
            ref = lookup_ref(key)
            if ref is None:
                raise ConfigError(
                    f"asset {key.to_user_string()!r} is not an ematix asset built in this "
                    f"process; build it with build_definitions(), @ematix_assets or "
                    f"EmatixPipelinesComponent"
                )
            (loads if key in selected else check_only).append(ref)

        def target_order(ref: EmatixAssetRef) -> int:
            return ref.pipeline.spec.targets.index(ref.target)

        return sorted(loads, key=target_order), check_only

    def _events(self, context: dg.AssetExecutionContext) -> Iterator[EmatixEvent]:
        loads, check_only = self._refs(context)
        run_log = DagsterRunLog(context.instance) if self.record_runs else None
        by_pipeline: dict[str, list[EmatixAssetRef]] = {}
        for ref in loads:
            by_pipeline.setdefault(ref.pipeline.name, []).append(ref)
        if by_pipeline:
            self._tag_run(context, list(by_pipeline))
        for refs in by_pipeline.values():
            yield from self._load(context, refs, run_log)
        for ref in check_only:
            yield from self._check_results(context, ref, None)

    @staticmethod
    def _tag_run(context: dg.AssetExecutionContext, names: Sequence[str]) -> None:
        run = context.instance.get_run_by_id(context.run.run_id)
        known = (run.tags.get(RUN_TAG_PIPELINE, "") if run else "").split(",")
        merged = ",".join(dict.fromkeys([n for n in known if n] + list(names)))
        context.instance.add_run_tags(context.run.run_id, {RUN_TAG_PIPELINE: merged})

    # ------------------------------------------------------------------------- loading
    def _load(
        self,
        context: dg.AssetExecutionContext,
        refs: list[EmatixAssetRef],
        run_log: DagsterRunLog | None,
    ) -> Iterator[EmatixEvent]:
        """Run the pipeline's selected targets through the engine's public run iterator."""
        spec = refs[0].pipeline.spec
        by_label = {ref.target.label: ref for ref in refs}
        progress = ProgressLog(context.log)
        started = time.perf_counter()
        run_id, attempt = "", context.retry_number + 1
        events = None
        try:
            # Inside the try: a bad run tag is a ConfigError, which no retry can fix.
            full_refresh = self._full_refresh(context)
            events = iter_run(
                spec,
                run_log=run_log,
                targets=list(by_label),
                attempt=None if run_log is not None else attempt,
                run_metrics={"dagster_run_id": context.run.run_id},
                full_refresh=full_refresh,
                partition=partition_of(context, spec),
            )
            for event in events:
                if isinstance(event, RunStarted):
                    run_id, attempt = event.run_id, event.attempt or attempt
                    context.log.info(
                        f"ematix: {'rebuilding' if full_refresh else 'loading'} "
                        f"{', '.join(event.targets)} (pipeline {spec.name!r}, attempt "
                        f"{attempt} of {spec.retry.max_attempts}"
                        f"{', full refresh' if full_refresh else ''})"
                    )
                elif isinstance(event, LoadProgress):
                    progress(event)
                elif isinstance(event, TargetResult):
                    elapsed, started = time.perf_counter() - started, time.perf_counter()
                    ref = by_label[event.target]
                    yield from self._after_load(
                        context, ref, event, elapsed, run_id, attempt, full_refresh
                    )
        except Exception as error:
            replacement = failure_for(error, spec.retry, attempt)
            if replacement is not None:
                raise replacement from error
            raise
        finally:
            if events is not None:
                events.close()

    def _full_refresh(self, context: dg.AssetExecutionContext) -> bool:
        """The resource's setting, or the run's ``ematix/full_refresh`` tag."""
        tag = context.run.tags.get(RUN_TAG_FULL_REFRESH, "")
        if tag.strip().lower() not in ("", "true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"run tag {RUN_TAG_FULL_REFRESH}={tag!r}: use true or false")
        return self.full_refresh or tag.strip().lower() in ("true", "1", "yes")

    def _selected_checks(
        self, context: dg.AssetExecutionContext, ref: EmatixAssetRef
    ) -> list[Check]:
        wanted = {k.name for k in context.selected_asset_check_keys if k.asset_key == ref.key}
        return [check for check in ref.checks if check.name in wanted]

    def _after_load(
        self,
        context: dg.AssetExecutionContext,
        ref: EmatixAssetRef,
        result: TargetResult,
        elapsed: float,
        run_id: str,
        attempt: int,
        full_refresh: bool = False,
    ) -> Iterator[EmatixEvent]:
        target = ref.target
        checks = self._selected_checks(context, ref)
        columns: dict[str, str] | None = None
        outcomes: list[CheckOutcome] = []
        with check_session(target) as session:
            columns = session.table_columns(target.table.schema, target.table.name)
            row_count, current, everything = _row_counts(session, target, result.row_count)
            outcomes = self._evaluate(context, ref, checks, session)
        metadata = {
            **TableMetadata(
                row_count=row_count,
                table_name=target.label,
                column_schema=table_schema_from(ref.column_schema, columns),
                column_lineage=ref.column_lineage,
                storage_kind=ref.backend,
            ),
            **EmatixMetadata(
                pipeline=ref.pipeline.name,
                target=target.label,
                mode=target.mode.value,
                backend=result.backend,
                rows_inserted=result.rows_inserted,
                rows_updated=result.rows_updated,
                rows_unchanged=result.rows_unchanged,
                rows_closed=result.rows_closed,
                rows_deleted=result.rows_deleted,
                watermark=result.watermark,
                duration_s=round(elapsed, 4),
                run_id=run_id,
                attempt=attempt,
                current_versions=current,
                all_versions=everything,
                full_refresh=True if full_refresh else None,
            ),
        }
        yield dg.MaterializeResult(asset_key=ref.key, metadata=metadata)
        for check, outcome in zip(checks, outcomes, strict=True):
            yield asset_check_result(ref.key, check, outcome)

    def _evaluate(
        self,
        context: dg.AssetExecutionContext,
        ref: EmatixAssetRef,
        checks: list[Check],
        session: Any,
    ) -> list[CheckOutcome]:
        outcomes = []
        for check in checks:
            try:
                outcomes += evaluate_checks(
                    ref.target, [check], sample_size=self.sample_size, session=session
                )
            except EmatixError as error:
                context.log.error(f"ematix: {error}")
                outcomes.append(
                    CheckOutcome(
                        check=check.name,
                        passed=False,
                        failing_count=0,
                        detail=str(error),
                        severity=check.severity,
                    )
                )
        return outcomes

    def _check_results(
        self,
        context: dg.AssetExecutionContext,
        ref: EmatixAssetRef,
        checks: list[Check] | None,
    ) -> Iterator[EmatixEvent]:
        chosen = self._selected_checks(context, ref) if checks is None else checks
        if not chosen:
            return
        with check_session(ref.target) as session:
            outcomes = self._evaluate(context, ref, chosen, session)
        for check, outcome in zip(chosen, outcomes, strict=True):
            yield asset_check_result(ref.key, check, outcome)


def _row_counts(
    session: Any, target: TargetSpec, counted: int | None
) -> tuple[int, int | None, int | None]:
    """``dagster/row_count``, and for SCD2 targets the current and all versions.

    On an SCD2 target the row count is the current versions: what the table means to its
    readers, and what the ``row_count_between`` check counts (checks on SCD2 targets look at
    current versions). Other targets: every row (the load's own count when it has one).
    """
    table = session.table_sql(target.table.schema, target.table.name)
    if target.mode is not LoadMode.SCD2:
        if counted is None:
            counted = int(session.query(f"SELECT COUNT(*) FROM {table}")[0][0])
        return counted, None, None
    current = session.quote(target.column_name("is_current"))
    everything, live = session.query(
        f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {current} THEN 1 ELSE 0 END), 0) FROM {table}"
    )[0]
    return int(live), int(live), int(everything)
