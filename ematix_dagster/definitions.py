"""``build_definitions``: everything Dagster needs for a set of pipelines, in one call.

Assets (one ``multi_asset`` per pipeline, one asset per target), their checks, one
``ScheduleDefinition`` per distinct cron (or ``AutomationCondition.on_cron`` on the assets),
the ``RetryPolicy`` of each pipeline's ``retry``, the ``ematix`` resource, and, when alerters
are given, the failure and recovery alert sensors.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations to
# find its resources.
import re
from collections.abc import Iterable, Sequence

import dagster as dg

from ematix_dagster.asset_decorator import EmatixAssetPlan, PipelinesLike, plan_assets
from ematix_dagster.checks import build_check_specs
from ematix_dagster.constants import RESOURCE_KEY, RUN_TAG_PIPELINE
from ematix_dagster.partitions import backfill_policy_for, partitioned_schedule
from ematix_dagster.resource import EmatixResource
from ematix_dagster.retry import dagster_retry_policy
from ematix_dagster.sensors import build_alert_sensors
from ematix_dagster.translator import EmatixTranslator
from ematix_engine import Pipeline
from ematix_engine.ops import Alerter

__all__ = ["DEFAULT_RESOURCE", "build_assets_definition", "build_definitions", "build_schedules"]

DEFAULT_RESOURCE = EmatixResource()
"""The resource used when none is given; one shared object, so several sets of definitions
(Python and components) merge without a resource-key conflict."""


def _name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"ematix_{cleaned}"


def build_assets_definition(
    pipeline: Pipeline,
    plans: Sequence[EmatixAssetPlan],
    *,
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """The ``multi_asset`` of one pipeline: its planned specs, checks and retry policy.

    Args:
        pipeline: The pipeline.
        plans: Its targets' plans (from ``plan_assets``).
        automation_condition: Set on every asset when given.

    Returns:
        An ``AssetsDefinition`` whose body is ``yield from ematix.run(context=context)``.
    """
    specs = [plan.spec for plan in plans]
    if automation_condition is not None:
        specs = [s.replace_attributes(automation_condition=automation_condition) for s in specs]

    @dg.multi_asset(
        name=_name(pipeline.name),
        specs=specs,
        check_specs=build_check_specs(plan.ref for plan in plans),
        can_subset=True,
        retry_policy=dagster_retry_policy(pipeline.spec.retry),
        op_tags={RUN_TAG_PIPELINE: pipeline.name},
        backfill_policy=backfill_policy_for(pipeline.spec),
    )
    def _assets(context: dg.AssetExecutionContext, ematix: EmatixResource):
        yield from ematix.run(context=context)

    return _assets


def build_schedules(
    plans: dict[str, list[EmatixAssetPlan]], *, upstream: dg.AssetSelection | None = None
) -> list[dg.ScheduleDefinition]:
    """One schedule per distinct cron, targeting every asset of the pipelines that share it.

    Pipelines on the same cron run in one run, so Dagster orders them by their deps. A
    partitioned pipeline gets a schedule of its own that loads one partition per tick (the
    last complete window, or every static value: :func:`~ematix_dagster.partitions.
    partitioned_schedule`).

    Args:
        plans: ``plan_assets`` output.
        upstream: Assets (e.g. the source's ingestion assets) a schedule also materializes
            when they feed its assets directly, so a scheduled load reads new data; a
            multi-asset is taken whole.

    Returns:
        Schedules named ``<pipeline>[_and_<pipeline>…]_schedule``.
    """
    by_cron: dict[str, list[str]] = {}
    schedules: list[dg.ScheduleDefinition] = []
    for name, items in plans.items():
        spec = items[0].ref.pipeline.spec
        if spec.schedule and spec.partitions is not None:
            keys = [plan.spec.key for plan in items]
            schedules.append(
                partitioned_schedule(_name(name), spec, keys, {RUN_TAG_PIPELINE: name})
            )
        elif spec.schedule:
            by_cron.setdefault(spec.schedule, []).append(name)
    for cron, names in by_cron.items():
        keys = [plan.spec.key for name in names for plan in plans[name]]
        target = dg.AssetSelection.assets(*keys)
        if upstream is not None:
            feeding = target.upstream(depth=1, include_self=False) & upstream
            target = target | feeding.required_multi_asset_neighbors()
        schedules.append(
            dg.ScheduleDefinition(
                name=_name("_and_".join(names) + "_schedule"),
                cron_schedule=cron,
                target=target,
                description=f"ematix: {', '.join(names)} on cron {cron!r}",
                tags={RUN_TAG_PIPELINE: ",".join(names)},
            )
        )
    return schedules


def build_definitions(
    module_or_pipelines: PipelinesLike,
    *,
    translator: EmatixTranslator | None = None,
    alerters: Iterable[str | Alerter] = (),
    use_automation_conditions: bool = False,
    resource: EmatixResource | None = None,
    schedules: bool = True,
    schedule_upstream: dg.AssetSelection | None = None,
) -> dg.Definitions:
    """Build assets, checks, schedules, retry policies, the resource and alert sensors.

    Args:
        module_or_pipelines: A module, a dotted module name, pipelines, or a mix.
        translator: Customises the asset specs (default :class:`EmatixTranslator`).
        alerters: Engine alerter URLs (``"stdout://"``, ``"slack://hooks.slack.com/…"``) or
            objects; when given, failure and recovery sensors send alerts through them.
        use_automation_conditions: Put ``AutomationCondition.on_cron(schedule)`` on the assets
            instead of creating schedules.
        resource: The ``ematix`` resource (default :data:`DEFAULT_RESOURCE`).
        schedules: Create schedules (or automation conditions) from the pipelines' crons.
        schedule_upstream: Assets outside ematix that feed the pipelines (e.g.
            ``dg.AssetSelection.groups("shop")``): each schedule also materializes those that
            feed its assets directly, so a scheduled run loads new data.

    Returns:
        The ``Definitions``.

    Raises:
        ConfigError: A pipeline, check, connection or alerter URL is invalid.

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
        >>> from ematix_dagster import build_definitions
        >>> defs = build_definitions([customer_dim], alerters=["stdout://"])
        >>> sorted(sensor.name for sensor in defs.sensors)
        ['ematix_failure_alerts', 'ematix_recovery_alerts']
    """
    sensors = build_alert_sensors(alerters) if list(alerters) else []
    plans = plan_assets(module_or_pipelines, translator=translator)
    assets = []
    for items in plans.values():
        pipeline = items[0].ref.pipeline
        condition = None
        if schedules and use_automation_conditions and pipeline.spec.schedule:
            condition = dg.AutomationCondition.on_cron(pipeline.spec.schedule)
        assets.append(build_assets_definition(pipeline, items, automation_condition=condition))
    return dg.Definitions(
        assets=assets,
        schedules=(
            build_schedules(plans, upstream=schedule_upstream)
            if schedules and not use_automation_conditions
            else []
        ),
        sensors=sensors,
        resources={RESOURCE_KEY: resource or DEFAULT_RESOURCE},
    )
