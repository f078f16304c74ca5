"""The catalog pipeline, wired into Dagster only through ``defs.yaml`` (no Python Dagster code)."""

from typing import Annotated

from ematix_engine import ematix, pk
from ematix_engine.checks import not_null, row_count_between
from ematix_engine.types import BigInt, Numeric, Text, TimestampTZ
from example_project.connections import shop, warehouse


@ematix.table(schema="analytics", connection=warehouse)
class ProductDim:
    product_id: Annotated[BigInt, pk()]
    name: Text
    category: Text
    price: Numeric[10, 2]
    updated_at: TimestampTZ


@ematix.pipeline(
    target=ProductDim,
    mode="scd2",
    event_timestamp_column="updated_at",
    source_connection=shop,
    schedule="0 2 * * *",
    retry={"max_attempts": 2, "backoff_seconds": 15, "jitter": 0.1},
    checks=[not_null("price"), row_count_between(min=1, max=10_000)],
)
def product_dim(conn):
    """Products with their price history (SCD2)."""
    return "SELECT product_id, name, category, price, updated_at FROM products"
