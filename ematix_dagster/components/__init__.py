"""The ``EmatixPipelinesComponent``: ematix pipelines as assets from a ``defs.yaml``."""

from ematix_dagster.components.component import EmatixPipelinesComponent
from ematix_dagster.components.scaffolder import EmatixPipelinesScaffolder

__all__ = ["EmatixPipelinesComponent", "EmatixPipelinesScaffolder"]
