"""``@ematix.pipeline`` and ``ematix.target``: a SQL-returning function becomes a Pipeline.

Everything is validated here, at import time, before any database is touched: unknown columns,
missing keys, modes that need options they lack. A bad declaration fails the import with a
``ConfigError`` that names the pipeline and the field.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ematix_engine import registry
from ematix_engine.api.table import table_spec
from ematix_engine.api.validity import (
    current_valid_to_from,
    refuse_clashes,
    validity_columns_from,
)
from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.modes import MODES
from ematix_engine.specs import (
    Deletes,
    FrozenMapping,
    LoadMode,
    PipelineSpec,
    RetryPolicy,
    SqlSource,
    TargetSpec,
)

if TYPE_CHECKING:
    from datetime import date, datetime

    from ematix_engine.batch.result import PreviewResult, RunResult, TargetResult
    from ematix_engine.partitions import Partition, Partitions
    from ematix_engine.runlog.base import RunLog
    from ematix_engine.write.progress import LoadProgress

__all__ = ["Pipeline", "TargetDeclaration", "pipeline", "target"]


class TargetDeclaration:
    """What ``ematix.target(Table, mode=...)`` returns; completed into a TargetSpec later."""

    __slots__ = ("options", "table")

    def __init__(self, table: Any, options: dict[str, Any]) -> None:
        self.table = table
        self.options = options

    def __repr__(self) -> str:
        return f"target({table_spec(self.table).qualified_name}, {self.options})"


def target(table: Any, **options: Any) -> TargetDeclaration:
    """Declare one target of a fan-out pipeline.

    Args:
        table: a class declared with ``@ematix.table``.
        **options: per-target load options: ``mode``, ``keys``, ``compare_columns``,
            ``event_timestamp_column``, ``deletes``, ``ttl_seconds``, ``retire_within``,
            ``row_version_column``, ``validity_columns``, ``current_valid_to``,
            ``connection``, ``asset_key``. Options not given fall back to the pipeline's.

    Returns:
        A declaration to pass in ``@ematix.pipeline(targets=[...])``.
    """
    unknown = set(options) - set(_TARGET_OPTIONS)
    if unknown:
        key = sorted(unknown)[0]
        hint = closest_match(key, _TARGET_OPTIONS)
        raise ConfigError(
            f"ematix.target({table_spec(table).qualified_name}): unknown option {key!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
        )
    return TargetDeclaration(table, options)


_TARGET_OPTIONS = (
    "retire_within",
    "validity_columns",
    "current_valid_to",
    "row_version_column",
    "mode",
    "keys",
    "compare_columns",
    "event_timestamp_column",
    "deletes",
    "ttl_seconds",
    "connection",
    "asset_key",
)


class Pipeline:
    """A declared batch pipeline: call ``run()``, ``preview()`` or ``dry_run()``.

    A thin handle on one frozen :class:`PipelineSpec` (what the registry holds); every method
    hands the spec to the engine. :meth:`of` returns the one handle of a spec.

    Attributes:
        spec: the frozen :class:`PipelineSpec` every layer reads.
    """

    _handles: ClassVar[weakref.WeakValueDictionary[PipelineSpec, Pipeline]] = (
        weakref.WeakValueDictionary()
    )

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.__doc__ = spec.description or None
        self.__name__ = spec.name

    @classmethod
    def of(cls, spec: PipelineSpec) -> Pipeline:
        """The handle of ``spec`` (the same object for the same spec while it lives)."""
        handle = cls._handles.get(spec)
        if handle is None or handle.spec is not spec:
            handle = cls(spec)
            cls._handles[spec] = handle
        return handle

    @property
    def name(self) -> str:
        """The pipeline's unique name."""
        return self.spec.name

    def __call__(self, connection: Any) -> str:
        """Return the source SQL for ``connection`` (calls the decorated function)."""
        return self.spec.source.render(connection)

    def __repr__(self) -> str:
        targets = ", ".join(f"{t.label} ({t.mode})" for t in self.spec.targets)
        return f"<Pipeline {self.name!r} → {targets}>"

    def run(
        self,
        run_log: RunLog | None = None,
        *,
        batch_size: int = 100_000,
        on_target: Callable[[TargetResult], None] | None = None,
        on_progress: Callable[[LoadProgress], None] | None = None,
        partition: str | Partition | None = None,
        as_of: datetime | None = None,
        full_refresh: bool = False,
    ) -> RunResult:
        """Load every target once and return the counts.

        Args:
            run_log: where to record the firing (nothing is recorded when None).
            batch_size: rows per Arrow batch on cross-database loads.
            on_target: called with each target's result as it completes.
            on_progress: called with a :class:`~ematix_engine.write.progress.LoadProgress`
                as each target enters a phase and, while a source streams from another
                database, after every batch.
            partition: the partition to load (a key such as ``"2024-01-02"``, or
                ``"2024-01-01..2024-01-07"`` for a range of time windows); required exactly
                when the pipeline declares ``partitions=``.
            as_of: the time the source's rows stand for (dlt's ``boundary_timestamp``,
                a timezone-aware datetime): SCD2 versions open and absent keys close at it
                instead of now. It must not precede the newest version in the target.
            full_refresh: rebuild every target from the source instead of loading the
                changes: each target is emptied (an SCD2 table's history too; its columns
                stay) and loaded from the pipeline's SQL with the watermark reset, all in the
                target's one transaction.

        Raises:
            EmatixError: the load failed; the target and its watermark are unchanged.
        """
        from ematix_engine.batch.runner import run_pipeline

        return run_pipeline(
            self,
            run_log=run_log,
            batch_size=batch_size,
            on_target=on_target,
            on_progress=on_progress,
            partition=partition,
            as_of=as_of,
            full_refresh=full_refresh,
        )

    def preview(self) -> PreviewResult:
        """Plan the load and return the SQL it would run, without touching any table."""
        from ematix_engine.batch.preview import preview_pipeline

        return preview_pipeline(self)

    def dry_run(
        self,
        *,
        on_progress: Callable[[LoadProgress], None] | None = None,
        full_refresh: bool = False,
        partition: str | Partition | None = None,
    ) -> RunResult:
        """Run the real SQL inside a transaction that is rolled back; report the counts.

        Args:
            on_progress: as for :meth:`run`; the last phase is ``"rolled back"``.
            full_refresh: rehearse a full refresh (see :meth:`run`).
            partition: as for :meth:`run`.
        """
        from ematix_engine.batch.runner import run_pipeline

        return run_pipeline(
            self,
            dry_run=True,
            on_progress=on_progress,
            full_refresh=full_refresh,
            partition=partition,
        )


def _complete_target(
    name: str, declared: TargetDeclaration, defaults: dict[str, Any]
) -> TargetSpec:
    spec_table = table_spec(declared.table)
    options = {**{k: v for k, v in defaults.items() if v is not None}, **declared.options}
    where = f"pipeline {name!r}, target {spec_table.qualified_name}"
    try:
        mode = LoadMode(options.get("mode", "append"))
    except ValueError:
        raise ConfigError(
            f"{where}: mode must be one of {', '.join(m.value for m in LoadMode)}, "
            f"got {options.get('mode')!r}"
        ) from None
    try:
        deletes = Deletes(options.get("deletes", "ignore"))
    except ValueError:
        raise ConfigError(
            f"{where}: deletes must be one of {', '.join(d.value for d in Deletes)}, "
            f"got {options.get('deletes')!r}"
        ) from None

    def columns(option: str) -> tuple[str, ...]:
        value = options.get(option) or ()
        if isinstance(value, str):
            value = (value,)
        for column in value:
            try:
                spec_table.column(column)
            except ConfigError as error:
                raise ConfigError(f"{where}: {option}: {error}") from None
        return tuple(value)

    keys = columns("keys") or spec_table.primary_key or spec_table.natural_key()
    compare = columns("compare_columns")
    version = columns("row_version_column")
    if version:
        if compare:
            raise ConfigError(
                f"{where}: row_version_column and compare_columns both say what counts as a "
                f"change; give one of them"
            )
        if mode not in (LoadMode.MERGE, LoadMode.SCD2):
            raise ConfigError(f"{where}: row_version_column needs mode 'merge' or 'scd2'")
        compare = version  # a new version value is the one change that counts
    event_ts = options.get("event_timestamp_column")
    if event_ts is not None:
        columns_checked = columns("event_timestamp_column")
        event_ts = columns_checked[0]
    description = MODES[mode]
    if description.needs_keys and not keys:
        raise ConfigError(
            f"{where}: mode={mode.value!r} needs keys; mark key columns with pk() or pass keys=[...]"
        )
    if not description.takes_ttl and options.get("ttl_seconds") is not None:
        takes = [m.value for m, d in MODES.items() if d.takes_ttl]
        raise ConfigError(f"{where}: ttl_seconds only applies to mode={_either(takes)}")
    if deletes not in description.deletes:
        takes = [m.value for m, d in MODES.items() if deletes in d.deletes]
        raise ConfigError(f"{where}: deletes={deletes.value!r} {_needs(takes)}")
    ttl = options.get("ttl_seconds")
    if ttl is not None and (not isinstance(ttl, int) or ttl <= 0):
        raise ConfigError(f"{where}: ttl_seconds must be a positive integer, got {ttl!r}")
    if compare and set(compare) & set(keys):
        raise ConfigError(
            f"{where}: compare_columns must not repeat key columns {sorted(set(compare) & set(keys))}"
        )
    validity = validity_columns_from(where, options.get("validity_columns"))
    current_valid_to = current_valid_to_from(where, options.get("current_valid_to"))
    if mode is not LoadMode.SCD2:
        for option, given in (
            ("validity_columns", validity.renamed),
            ("current_valid_to", current_valid_to is not None),
        ):
            if given:
                raise ConfigError(f"{where}: {option} only applies to mode='scd2'")
    managed = [validity.physical(n) for n in description.managed_names]
    refuse_clashes(where, spec_table, set(managed) - {"_loaded_at", "_batch_id"}, mode.value)
    retire_within = columns("retire_within")
    if retire_within and deletes is Deletes.IGNORE:
        raise ConfigError(
            f"{where}: retire_within limits which absent keys deletes= retires; "
            f"set deletes='close' or 'new_record' too"
        )
    asset_key = options.get("asset_key")
    if isinstance(asset_key, str):
        asset_key = tuple(asset_key.split("/"))
    return TargetSpec(
        table=spec_table,
        mode=mode,
        keys=tuple(keys),
        compare_columns=compare,
        event_timestamp_column=event_ts,
        deletes=deletes,
        ttl_seconds=ttl,
        retire_within=retire_within,
        validity_columns=validity,
        current_valid_to=current_valid_to,
        connection=options.get("connection") or spec_table.connection,
        asset_key=tuple(asset_key) if asset_key else None,
    )


def _either(modes: list[str]) -> str:
    return " or ".join(repr(m) for m in modes)


def _needs(modes: list[str]) -> str:
    if len(modes) == 1:
        return f"only applies to mode={modes[0]!r}"
    return f"needs mode {' or '.join(repr(m) for m in modes)}"


def pipeline(
    fn: Callable[[Any], str] | None = None,
    *,
    target: Any = None,
    targets: Sequence[TargetDeclaration | Any] | None = None,
    schedule: str | None = None,
    mode: str | None = None,
    keys: Sequence[str] | None = None,
    compare_columns: Sequence[str] | None = None,
    event_timestamp_column: str | None = None,
    ttl_seconds: int | None = None,
    deletes: str | None = None,
    retire_within: Sequence[str] | None = None,
    row_version_column: str | None = None,
    validity_columns: Sequence[str] | Mapping[str, str] | None = None,
    current_valid_to: str | date | None = None,
    incremental_column: str | None = None,
    source_connection: Any = None,
    target_connection: Any = None,
    depends_on: Sequence[str] = (),
    retry: dict | RetryPolicy | None = None,
    name: str | None = None,
    asset_key: str | Sequence[str] | None = None,
    group: str | None = None,
    owners: Sequence[str] = (),
    tags: dict[str, str] | None = None,
    checks: Sequence[Any] = (),
    partitions: Partitions | None = None,
):
    """Declare a batch pipeline on a function that returns the source SQL.

    Args:
        fn: the function (when used without parentheses); it receives the source connection.
        target: the target table class (single target).
        targets: several targets (``ematix.target(T, mode=...)`` or table classes) for fan-out.
        schedule: cron expression for ``ematix run-due`` and Dagster schedules.
        mode: ``append`` (default), ``merge``, ``scd2`` or ``replace``.
        keys: business key columns; default: the table's ``pk()`` columns.
        compare_columns: columns whose change counts (merge/scd2); default: all non-key ones.
        event_timestamp_column: source column that sets ``valid_from`` (scd2) or picks the
            newest duplicate (merge).
        ttl_seconds: scd2: close current versions older than this that the batch does not have.
        deletes: ``ignore`` (default), ``close`` or ``new_record`` for full-snapshot sources.
        retire_within: with ``deletes``: columns (e.g. a region or a day) whose values the
            batch covers; absent keys retire only within them (dlt's ``merge_key``).
        row_version_column: a source column that already versions each row (an update
            counter, an ``updated_at``, a hash): a change is a new value there, nothing else
            is compared (dlt's ``row_version_column_name``).
        validity_columns: scd2: other names for the validity columns (dlt's
            ``validity_column_names``, dbt's ``snapshot_meta_column_names``):
            ``("start_at", "end_at")`` renames ``valid_from`` and ``valid_to``; a mapping such
            as ``{"is_current": "current"}`` renames any of ``valid_from``, ``valid_to``,
            ``is_current`` and ``is_deleted``.
        current_valid_to: scd2: the ``valid_to`` current versions hold instead of NULL, e.g.
            ``"9999-12-31"`` (dlt's ``active_record_timestamp``, dbt's
            ``dbt_valid_to_current``); a date is its midnight UTC.
        incremental_column: column whose maximum becomes the watermark; the SQL may use
            ``$watermark`` (loads rows strictly greater than it).
        source_connection: where the SQL runs (name or typed connection); default: the target's.
        target_connection: where the target lives; default: the table's, else ``default``.
        depends_on: upstream pipeline names (must succeed first, today).
        retry: ``{max_attempts, backoff_seconds, backoff_factor, max_backoff_seconds, jitter}``.
        name: pipeline name; default: the function name.
        asset_key: Dagster asset key override (``"a/b"`` or a sequence) for a single target.
        group: Dagster asset group.
        owners: Dagster asset owners.
        tags: tags passed through to Dagster.
        checks: data checks for the Dagster layer.
        partitions: ``ematix.daily(column, start=...)``, ``ematix.hourly``, ``ematix.monthly``
            or ``ematix.static(column, [values])``: each run loads one partition
            (``run(partition=...)``), replacing that slice of the targets (see
            :mod:`ematix_engine.partitions`). The column must be declared by every target;
            time windows need a date or timestamp column. Not with ``incremental_column``.

    Returns:
        A :class:`Pipeline`, registered in ``ematix_engine.registry``.

    Raises:
        ConfigError: the declaration is invalid (names the pipeline and the field).
        CycleError: ``depends_on`` closes a ring.
    """

    def decorate(function: Callable[[Any], str]) -> Pipeline:
        pipeline_name = name or function.__name__
        declared: list[TargetDeclaration] = []
        if target is not None and targets:
            raise ConfigError(f"pipeline {pipeline_name!r}: pass target= or targets=, not both")
        for item in [target] if target is not None else list(targets or ()):
            declared.append(
                item if isinstance(item, TargetDeclaration) else TargetDeclaration(item, {})
            )
        if not declared:
            raise ConfigError(f"pipeline {pipeline_name!r}: needs target= or targets=[...]")
        if asset_key is not None and len(declared) > 1:
            raise ConfigError(
                f"pipeline {pipeline_name!r}: asset_key= applies to one target; "
                f"use ematix.target(T, asset_key=...) per target"
            )
        defaults = {
            "mode": mode,
            "keys": keys,
            "compare_columns": compare_columns,
            "event_timestamp_column": event_timestamp_column,
            "ttl_seconds": ttl_seconds,
            "deletes": deletes,
            "retire_within": retire_within,
            "row_version_column": row_version_column,
            "validity_columns": validity_columns,
            "current_valid_to": current_valid_to,
            "connection": target_connection,
            "asset_key": asset_key,
        }
        target_specs = tuple(_complete_target(pipeline_name, d, defaults) for d in declared)
        labels = [t.label for t in target_specs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"pipeline {pipeline_name!r}: a table appears twice in targets")
        if incremental_column is not None:
            snapshot = [t.label for t in target_specs if t.deletes is not Deletes.IGNORE]
            if snapshot:
                raise ConfigError(
                    f"pipeline {pipeline_name!r}: incremental_column loads only new rows, but "
                    f"deletes= on {', '.join(snapshot)} treats every load as a full snapshot and "
                    f"would close every key the increment lacks; drop one of the two"
                )
            for t in target_specs:
                try:
                    t.table.column(incremental_column)
                except ConfigError as error:
                    raise ConfigError(
                        f"pipeline {pipeline_name!r}: incremental_column: {error}"
                    ) from None
        if partitions is not None:
            _validate_partitions(pipeline_name, partitions, target_specs, incremental_column)
        if schedule is not None:
            _validate_cron(pipeline_name, schedule)
        if isinstance(depends_on, str):
            raise ConfigError(f"pipeline {pipeline_name!r}: depends_on must be a list of names")
        try:
            source_file = inspect.getsourcefile(function) or ""
            # The code object knows its first line; no need to re-parse the file (which may
            # not be Python, e.g. a docs page whose blocks are executed).
            source_line = inspect.unwrap(function).__code__.co_firstlineno
        except (OSError, TypeError, AttributeError):
            source_file, source_line = "", 0
        spec = PipelineSpec(
            name=pipeline_name,
            targets=target_specs,
            source=SqlSource(
                query=function,
                connection=source_connection,
                incremental_column=incremental_column,
            ),
            schedule=schedule,
            depends_on=tuple(depends_on),
            retry=RetryPolicy.from_value(retry, pipeline_name),
            description=inspect.cleandoc(function.__doc__ or ""),
            module=function.__module__,
            source_file=source_file,
            source_line=source_line,
            group=group,
            owners=tuple(owners),
            tags=FrozenMapping(tags or {}),
            checks=tuple(checks),
            partitions=partitions,
        )
        registry.register(spec)
        return Pipeline.of(spec)

    return decorate(fn) if fn is not None else decorate


def _validate_partitions(
    pipeline_name: str,
    partitions: Any,
    targets: Sequence[TargetSpec],
    incremental_column: str | None,
) -> None:
    """Check ``partitions=`` against the targets (raises ConfigError naming what is wrong)."""
    from ematix_engine.partitions import Cadence, StaticPartitions, TimeWindowPartitions
    from ematix_engine.write.slices import is_time_type

    where = f"pipeline {pipeline_name!r}: partitions"
    if not isinstance(partitions, TimeWindowPartitions | StaticPartitions):
        raise ConfigError(
            f"{where} must be ematix.daily/hourly/monthly(...) or ematix.static(...), got "
            f"{type(partitions).__name__}"
        )
    if incremental_column is not None:
        raise ConfigError(
            f"{where}: a partitioned run loads one partition and keeps no watermark; drop "
            f"incremental_column={incremental_column!r} (use $partition_start / $partition_end)"
        )
    for target_spec in targets:
        try:
            column = target_spec.table.column(partitions.column)
        except ConfigError as error:
            raise ConfigError(f"{where}: target {target_spec.label}: {error}") from None
        if isinstance(partitions, TimeWindowPartitions):
            if not is_time_type(column.type):
                raise ConfigError(
                    f"{where}: {partitions.cadence.value} windows need a date or timestamp "
                    f"column; {target_spec.label}.{column.name} is {column.type.__name__}"
                )
            if partitions.cadence is Cadence.HOURLY and column.type.hash_family == "date":
                raise ConfigError(
                    f"{where}: hourly windows need a timestamp column; "
                    f"{target_spec.label}.{column.name} is a date"
                )


def _validate_cron(pipeline_name: str, schedule: str) -> None:
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise ConfigError(
            f"pipeline {pipeline_name!r}: schedule {schedule!r} is not a valid cron expression "
            f"(five fields: minute hour day-of-month month day-of-week)"
        )
