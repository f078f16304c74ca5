"""Build asset specs from pipelines, and ``@ematix_assets`` over ``multi_asset``.

One pipeline is one ``multi_asset`` (``can_subset=True``) with one spec per target, so a
fan-out pipeline is a single op that can still load any subset of its targets. Deps are the
``depends_on`` pipelines' assets plus the tables sqlglot finds in the source SQL: a table that
some ematix pipeline loads (same name and schema, same database) maps to that asset; any other
becomes an external key ``[schema, table]`` (``[source connection name, table]`` when the SQL
gives no schema, so ``FROM customers`` on connection ``shop`` is ``shop/customers``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dagster as dg

from ematix_dagster.checks import build_check_specs
from ematix_dagster.constants import DAGSTER_KEY_COLUMN_LINEAGE
from ematix_dagster.lineage import (
    SourceAnalysis,
    TableRef,
    analyze_source,
    connection_name,
    same_store,
    target_connection,
)
from ematix_dagster.metadata import declared_table_schema
from ematix_dagster.partitions import backfill_policy_for
from ematix_dagster.refs import EmatixAssetRef, register_ref
from ematix_dagster.retry import dagster_retry_policy
from ematix_dagster.translator import EmatixTranslator, EmatixTranslatorData
from ematix_engine import (
    ConfigError,
    Pipeline,
    TargetSpec,
    UnknownNameError,
    backend_kind,
    registry,
)
from ematix_engine.checks import checks_for_target

__all__ = [
    "EmatixAssetPlan",
    "PipelinesLike",
    "build_ematix_asset_specs",
    "ematix_assets",
    "plan_assets",
    "resolve_pipelines",
]

PipelinesLike = str | ModuleType | Pipeline | Iterable[str | ModuleType | Pipeline]
"""A module (or its dotted name), a pipeline, or any iterable mixing them."""

_UNSET: Any = object()


def _module_pipelines(module: ModuleType) -> list[Pipeline]:
    found = [value for value in vars(module).values() if isinstance(value, Pipeline)]
    found += [
        p for p in registry.pipelines() if p.spec.module == module.__name__ and p not in found
    ]
    return found


def resolve_pipelines(value: PipelinesLike) -> list[Pipeline]:
    """Expand modules and module names into their pipelines, keeping declaration order.

    Args:
        value: A module, a dotted module name, a pipeline, or an iterable of those.

    Returns:
        The pipelines, each once.

    Raises:
        ConfigError: Two different pipelines share a name, or an item is of the wrong type.
    """
    items = [value] if isinstance(value, str | ModuleType | Pipeline) else list(value)
    found: dict[str, Pipeline] = {}
    for item in items:
        if isinstance(item, Pipeline):
            pipelines = [item]
        elif isinstance(item, str):
            registry.load_module(item)
            pipelines = _module_pipelines(importlib.import_module(item))
        elif isinstance(item, ModuleType):
            pipelines = _module_pipelines(item)
        else:
            raise ConfigError(
                f"expected a pipeline, a module or a module name, got {type(item).__name__}"
            )
        for pipeline in pipelines:
            existing = found.get(pipeline.name)
            if existing is not None and existing is not pipeline:
                raise ConfigError(
                    f"two pipelines are named {pipeline.name!r} ({existing.spec.module} and "
                    f"{pipeline.spec.module}); rename one of them"
                )
            found[pipeline.name] = pipeline
    return list(found.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class EmatixAssetPlan:
    """The asset spec of one target together with its reference."""

    spec: dg.AssetSpec
    ref: EmatixAssetRef


class _Planner:
    """Two passes over every target: keys first, then deps resolved against those keys."""

    def __init__(self, pipelines: Sequence[Pipeline], translator: EmatixTranslator) -> None:
        self.pipelines = list(pipelines)
        self.translator = translator
        chosen = {p.name for p in self.pipelines}
        self.universe = self.pipelines + [p for p in registry.pipelines() if p.name not in chosen]
        self.by_name = {p.name: p for p in self.universe}
        self.keys: dict[tuple[str, str], dg.AssetKey] = {}

    def data(self, pipeline: Pipeline, target: TargetSpec, source: SourceAnalysis, deps=()):
        conn = target_connection(target)
        try:
            backend = backend_kind(conn)
        except Exception as error:
            raise ConfigError(
                f"pipeline {pipeline.name!r}, target {target.label}: its connection "
                f"{connection_name(conn)!r} cannot be resolved ({error})"
            ) from error
        return EmatixTranslatorData(
            pipeline=pipeline.spec,
            target=target,
            backend=backend,
            connection=connection_name(conn),
            source=source,
            deps=tuple(deps),
        )

    def key_of(self, pipeline: Pipeline, target: TargetSpec) -> dg.AssetKey:
        ident = (pipeline.name, target.label)
        if ident not in self.keys:
            empty = SourceAnalysis(
                connection=None, connection_name="", dialect=None, sql=None, tables=()
            )
            spec = self.translator.get_asset_spec(self.data(pipeline, target, empty))
            self.keys[ident] = spec.key
        return self.keys[ident]

    def table_keys(self, owner: Pipeline, source: SourceAnalysis, ref: TableRef):
        """Keys of the ematix assets ``ref`` names; ``[]`` for the pipeline's own targets."""
        matches: list[dg.AssetKey] = []
        own = False
        for pipeline in self.universe:
            for target in pipeline.spec.targets:
                if target.table.name != ref.name:
                    continue
                if ref.schema is not None and ref.schema != target.table.schema:
                    continue
                if not same_store(source.connection, target_connection(target)):
                    continue
                if pipeline is owner:
                    own = True
                else:
                    matches.append(self.key_of(pipeline, target))
        if matches or own:
            return matches
        return [dg.AssetKey([ref.schema or source.connection_name, ref.name])]

    def deps(self, pipeline: Pipeline, source: SourceAnalysis) -> list[dg.AssetKey]:
        deps: list[dg.AssetKey] = []
        for upstream in pipeline.spec.depends_on:
            up = self.by_name.get(upstream)
            if up is None:
                raise UnknownNameError("pipeline", upstream, list(self.by_name))
            deps += [self.key_of(up, t) for t in up.spec.targets]
        for ref in source.tables:
            deps += self.table_keys(pipeline, source, ref)
        return list(dict.fromkeys(deps))

    def lineage(self, pipeline: Pipeline, source: SourceAnalysis) -> dg.TableColumnLineage | None:
        deps_by_column: dict[str, list[dg.TableColumnDep]] = {}
        for column, sources in source.column_sources.items():
            column_deps = []
            for ref, source_column in sources:
                keys = self.table_keys(pipeline, source, ref)
                if keys:
                    column_deps.append(
                        dg.TableColumnDep(asset_key=keys[0], column_name=source_column)
                    )
            if column_deps:
                deps_by_column[column] = column_deps
        return dg.TableColumnLineage(deps_by_column=deps_by_column) if deps_by_column else None

    def plan(self) -> dict[str, list[EmatixAssetPlan]]:
        plans: dict[str, list[EmatixAssetPlan]] = {}
        for pipeline in self.pipelines:
            plans[pipeline.name] = []
            for target in pipeline.spec.targets:
                source = analyze_source(pipeline.spec, target)
                data = self.data(pipeline, target, source, self.deps(pipeline, source))
                try:
                    spec = self.translator.get_asset_spec(data)
                except dg.DagsterError as error:
                    raise ConfigError(
                        f"pipeline {pipeline.name!r}, target {target.label}: Dagster rejected "
                        f"its asset spec: {error}"
                    ) from error
                lineage = self.lineage(pipeline, source)
                ref = EmatixAssetRef(
                    key=spec.key,
                    pipeline=pipeline,
                    target=target,
                    backend=data.backend,
                    checks=checks_for_target(pipeline.spec, target),
                    column_schema=declared_table_schema(target, data.dialect),
                    column_lineage=lineage,
                )
                if lineage is not None and DAGSTER_KEY_COLUMN_LINEAGE not in spec.metadata:
                    spec = spec.merge_attributes(metadata={DAGSTER_KEY_COLUMN_LINEAGE: lineage})
                register_ref(ref)
                plans[pipeline.name].append(EmatixAssetPlan(spec=spec, ref=ref))
        self._check_unique_keys(plans)
        return plans

    @staticmethod
    def _check_unique_keys(plans: Mapping[str, list[EmatixAssetPlan]]) -> None:
        seen: dict[dg.AssetKey, str] = {}
        for name, items in plans.items():
            for item in items:
                other = seen.get(item.spec.key)
                if other is not None:
                    raise ConfigError(
                        f"pipelines {other!r} and {name!r} both produce asset "
                        f"{item.spec.key.to_user_string()!r}; give one target asset_key=..."
                    )
                seen[item.spec.key] = name


def plan_assets(
    pipelines: PipelinesLike, *, translator: EmatixTranslator | None = None
) -> dict[str, list[EmatixAssetPlan]]:
    """Work out every target's asset spec and reference, grouped by pipeline name.

    Args:
        pipelines: Pipelines, modules or module names.
        translator: The translator (default :class:`EmatixTranslator`).

    Returns:
        ``{pipeline name: [plan per target]}`` in declaration order.

    Raises:
        ConfigError: A connection cannot be resolved, two targets share an asset key, a check
            is invalid, or Dagster rejects a spec.
        UnknownNameError: A ``depends_on`` names a pipeline that is nowhere declared.
    """
    return _Planner(resolve_pipelines(pipelines), translator or EmatixTranslator()).plan()


def build_ematix_asset_specs(
    pipelines: PipelinesLike, *, translator: EmatixTranslator | None = None
) -> list[dg.AssetSpec]:
    """Build the asset specs of pipelines (one per target) without any op behind them.

    Args:
        pipelines: Pipelines, modules or module names.
        translator: The translator (default :class:`EmatixTranslator`).

    Returns:
        The specs, in declaration order.

    Examples:
        >>> from typing import Annotated
        >>> from ematix_engine import ematix, pk
        >>> from ematix_engine.connections import DuckDBConnection
        >>> from ematix_engine.types import BigInt, Text
        >>> @ematix.table(schema="analytics", connection=DuckDBConnection(name="shop", path=":memory:"))
        ... class CustomerDim:
        ...     customer_id: Annotated[BigInt, pk()]
        ...     name: Text | None
        >>> @ematix.pipeline(target=CustomerDim, mode="merge")
        ... def customer_dim(conn):
        ...     return "SELECT 1 AS customer_id, 'Ada' AS name"
        >>> [spec.key.to_user_string() for spec in build_ematix_asset_specs([customer_dim])]
        ['analytics/customer_dim']
    """
    plans = plan_assets(pipelines, translator=translator)
    return [item.spec for items in plans.values() for item in items]


def ematix_assets(
    *,
    pipeline: Pipeline,
    translator: EmatixTranslator | None = None,
    name: str | None = None,
    group_name: str | None = None,
    retry_policy: dg.RetryPolicy | None = _UNSET,
    automation_condition: dg.AutomationCondition | None = None,
    op_tags: Mapping[str, Any] | None = None,
    pool: str | None = None,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """Turn a function into the multi-asset of one pipeline (one asset per target).

    Args:
        pipeline: The declared pipeline.
        translator: Customises the asset specs.
        name: Op name; default the pipeline's name.
        group_name: Asset group for every target (overrides the pipeline's ``group``).
        retry_policy: Op retry policy; default derived from the pipeline's ``retry``.
        automation_condition: Set on every asset (e.g. ``AutomationCondition.on_cron``).
        op_tags: Tags of the op.
        pool: Concurrency pool of the op.

    Returns:
        A decorator producing an ``AssetsDefinition`` with ``can_subset=True`` and the
        target checks attached; a partitioned pipeline's has its partitions and backfill
        policy (:mod:`ematix_dagster.partitions`).

    Examples:
        >>> from typing import Annotated
        >>> from ematix_engine import ematix, pk
        >>> from ematix_engine.connections import DuckDBConnection
        >>> from ematix_engine.types import BigInt, Text
        >>> @ematix.table(schema="analytics", connection=DuckDBConnection(name="shop", path=":memory:"))
        ... class CustomerDim:
        ...     customer_id: Annotated[BigInt, pk()]
        ...     name: Text | None
        >>> @ematix.pipeline(target=CustomerDim, mode="merge")
        ... def customer_dim(conn):
        ...     return "SELECT 1 AS customer_id, 'Ada' AS name"
        >>> from dagster import AssetExecutionContext
        >>> from ematix_dagster import EmatixResource, ematix_assets
        >>> @ematix_assets(pipeline=customer_dim)
        ... def customer_dim_assets(context: AssetExecutionContext, ematix: EmatixResource):
        ...     yield from ematix.run(context=context)
        >>> [key.to_user_string() for key in customer_dim_assets.keys]
        ['analytics/customer_dim']
    """
    plans = plan_assets(pipeline, translator=translator)[pipeline.name]
    specs = [item.spec for item in plans]
    if group_name is not None:
        specs = [s.replace_attributes(group_name=group_name) for s in specs]
    if automation_condition is not None:
        specs = [s.replace_attributes(automation_condition=automation_condition) for s in specs]
    policy = dagster_retry_policy(pipeline.spec.retry) if retry_policy is _UNSET else retry_policy
    return dg.multi_asset(
        name=_op_name(name or pipeline.name),
        specs=specs,
        check_specs=build_check_specs(item.ref for item in plans),
        can_subset=True,
        retry_policy=policy,
        op_tags=op_tags,
        pool=pool,
        backfill_policy=backfill_policy_for(pipeline.spec),
    )


def _op_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"ematix_{cleaned}"
