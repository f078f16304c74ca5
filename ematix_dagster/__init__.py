"""ematix_dagster: ematix pipelines as Dagster assets, checks, schedules and sensors.

Example:
    >>> from ematix_dagster import build_definitions
    >>> defs = build_definitions("my_project.pipelines", alerters=["stdout://"])  # doctest: +SKIP

See ``docs/dagster.md``.
"""

from ematix_dagster.asset_decorator import build_ematix_asset_specs, ematix_assets
from ematix_dagster.components import EmatixPipelinesComponent
from ematix_dagster.definitions import build_definitions
from ematix_dagster.resource import EmatixResource
from ematix_dagster.runlog import DagsterRunLog
from ematix_dagster.translator import EmatixTranslator, EmatixTranslatorData

__all__ = [
    "DagsterRunLog",
    "EmatixPipelinesComponent",
    "EmatixResource",
    "EmatixTranslator",
    "EmatixTranslatorData",
    "build_definitions",
    "build_ematix_asset_specs",
    "ematix_assets",
]
