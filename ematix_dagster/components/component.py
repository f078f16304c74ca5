"""``EmatixPipelinesComponent``: load pipeline modules from ``defs.yaml``.

.. code-block:: yaml

    type: ematix_dagster.EmatixPipelinesComponent
    attributes:
      modules: [.pipelines]          # relative to this folder, or absolute module names
      select: [product_*]            # pipeline names or globs (default: all)
      exclude: [product_backfill]
      schedules: true                # ScheduleDefinitions from the pipelines' crons
      schedule_upstream_groups: [shop]  # schedules also run the assets of these groups that
                                        # feed the pipelines (the source's ingestion)
      translation:                   # goes through EmatixTranslator.get_asset_spec
        group_name: catalog
        key_prefix: warehouse
        tags: {layer: "{{ mode }}"}

Template variables in ``translation``: ``data`` (:class:`EmatixTranslatorData`), ``pipeline``,
``schema``, ``table``, ``mode`` and ``spec`` (the default asset spec).
"""

# No `from __future__ import annotations`: Resolvable reads the field annotations at runtime.
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import dagster as dg
from dagster.components import Component, ComponentLoadContext, Resolvable, scaffold_with
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver

from ematix_dagster.asset_decorator import resolve_pipelines
from ematix_dagster.components.scaffolder import EmatixPipelinesScaffolder
from ematix_dagster.definitions import build_definitions
from ematix_dagster.translator import EmatixTranslator, EmatixTranslatorData
from ematix_engine import ConfigError, Pipeline

__all__ = ["EmatixPipelinesComponent"]


def _template_vars(data: EmatixTranslatorData) -> dict[str, object]:
    return {
        "data": data,
        "pipeline": data.pipeline.name,
        "schema": data.target.table.schema,
        "table": data.target.table.name,
        "mode": data.target.mode.value,
    }


ResolvedEmatixTranslation = (
    Annotated[
        TranslationFn[EmatixTranslatorData],
        TranslationFnResolver[EmatixTranslatorData](_template_vars),
    ]
    | None
)


@scaffold_with(EmatixPipelinesScaffolder)
@dataclass
class EmatixPipelinesComponent(Component, Resolvable):
    """Expose the ematix pipelines of Python modules as Dagster assets, checks and schedules.

    Attributes:
        modules: Modules declaring pipelines; a leading ``.`` is relative to the folder of
            the ``defs.yaml``.
        select: Pipeline names or glob patterns to keep (all when empty).
        exclude: Pipeline names or glob patterns to drop.
        translation: Asset attributes applied on top of the default spec (YAML), through the
            same ``get_asset_spec`` as in Python.
        schedules: Build schedules from the pipelines' crons.
        schedule_upstream_groups: Asset groups whose assets a schedule also materializes
            when they feed its pipelines directly (e.g. the source's ingestion assets).
        use_automation_conditions: Use ``AutomationCondition.on_cron`` instead of schedules.
        alerters: Engine alerter URLs for failure and recovery sensors.
    """

    modules: Sequence[str]
    select: Sequence[str] = field(default_factory=list)
    exclude: Sequence[str] = field(default_factory=list)
    translation: ResolvedEmatixTranslation = None
    schedules: bool = True
    schedule_upstream_groups: Sequence[str] = field(default_factory=list)
    use_automation_conditions: bool = False
    alerters: Sequence[str] = field(default_factory=list)

    def get_asset_spec(self, data: EmatixTranslatorData) -> dg.AssetSpec:
        """The asset spec of one pipeline target; override to customise in Python.

        Args:
            data: The pipeline target.

        Returns:
            :class:`EmatixTranslator`'s spec, with ``translation`` applied.
        """
        spec = EmatixTranslator().get_asset_spec(data)
        return self.translation(spec, data) if self.translation is not None else spec

    def pipelines(self, context: ComponentLoadContext) -> list[Pipeline]:
        """The selected pipelines of :attr:`modules`.

        Raises:
            ConfigError: A ``select`` pattern matches no pipeline.
        """
        names = [context.normalize_component_type_str(m) for m in self.modules]
        found = resolve_pipelines(names)
        for pattern in self.select:
            if not any(fnmatch.fnmatchcase(p.name, pattern) for p in found):
                raise ConfigError(
                    f"EmatixPipelinesComponent at {context.path}: select pattern {pattern!r} "
                    f"matches no pipeline of {', '.join(names)} "
                    f"(pipelines: {', '.join(p.name for p in found) or 'none'})"
                )
        return [
            p
            for p in found
            if (not self.select or any(fnmatch.fnmatchcase(p.name, s) for s in self.select))
            and not any(fnmatch.fnmatchcase(p.name, x) for x in self.exclude)
        ]

    def build_defs(self, context: ComponentLoadContext) -> dg.Definitions:
        """Build the assets, checks, schedules and resource of the selected pipelines."""
        return build_definitions(
            self.pipelines(context),
            translator=_ComponentTranslator(self),
            alerters=list(self.alerters),
            use_automation_conditions=self.use_automation_conditions,
            schedules=self.schedules,
            schedule_upstream=(
                dg.AssetSelection.groups(*self.schedule_upstream_groups)
                if self.schedule_upstream_groups
                else None
            ),
        )


class _ComponentTranslator(EmatixTranslator):
    """Routes the translator through the component, so YAML and subclasses both apply."""

    def __init__(self, component: EmatixPipelinesComponent) -> None:
        self.component = component

    def get_asset_spec(self, data: EmatixTranslatorData) -> dg.AssetSpec:
        """Delegate to :meth:`EmatixPipelinesComponent.get_asset_spec`."""
        return self.component.get_asset_spec(data)
