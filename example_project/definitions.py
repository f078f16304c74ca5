"""The example's Dagster code location, loaded by ``workspace.yaml`` (``make dev``).

Three parts merged into one ``Definitions``:

* ``shop_source``: a plain Dagster multi-asset that advances the SQLite shop by one day;
* ``build_definitions(example_project.pipelines)``: the SCD2 customers, the orders fact, the
  daily rollup and the Delta archive, with checks, schedules, retries and alert sensors;
* ``load_from_defs_folder``: the catalog pipeline, declared in ``defs/catalog/defs.yaml``
  (``dg.toml`` at the repository root makes it a ``dg`` project; ``make dev`` runs ``dg dev``).

DuckDB allows one writing process per file, so steps run in one process, one after another.
"""

from pathlib import Path

import dagster as dg

from ematix_dagster import build_definitions
from example_project import pipelines
from example_project.shop import ensure_shop, shop_source


def build_example_definitions() -> dg.Definitions:
    """Build the example's definitions (connections resolve where they are used)."""
    return dg.Definitions.merge(
        dg.Definitions(assets=[shop_source], executor=dg.in_process_executor),
        # Each schedule also runs the shop assets its pipelines read: a scheduled load gets a
        # new day of shop data, as a "Materialize all" does.
        build_definitions(
            pipelines,
            alerters=["stdout://"],
            schedule_upstream=dg.AssetSelection.groups("shop"),
        ),
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    )


# A fresh clone has no shop yet: create day 0 so any asset can be materialized first.
ensure_shop()
defs = build_example_definitions()
