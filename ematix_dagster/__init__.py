"""ematix_dagster: ematix pipelines as Dagster assets, checks, schedules and sensors.

Example:
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
    >>> [key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()]
    ['analytics/customer_dim']

In a project, pass the module that declares the pipelines:
``build_definitions("my_project.pipelines")``.

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
