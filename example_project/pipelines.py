"""The example's pipelines: SCD2 customers, a merged orders fact, a daily rollup, a Delta archive.

Lineage comes from the SQL: ``FROM customers`` on connection ``shop`` makes ``shop/customers``
a dep, ``FROM analytics.orders`` on the warehouse makes ``analytics/orders`` one.
"""

from typing import Annotated

from ematix_engine import ematix, pk
from ematix_engine.checks import accepted_values, not_null, row_count_between, sql_check
from ematix_engine.types import BigInt, Date, Numeric, Text, TimestampTZ
from example_project.connections import lake, shop, warehouse

ORDER_STATUSES = ["placed", "shipped", "delivered", "cancelled"]


@ematix.table(schema="analytics", connection=warehouse)
class CustomerDim:
    customer_id: Annotated[BigInt, pk()]
    name: Text
    email: Text | None
    country: Text
    tier: Text
    updated_at: TimestampTZ


@ematix.table(schema="analytics", connection=warehouse)
class Orders:
    order_id: Annotated[BigInt, pk()]
    customer_id: BigInt
    product_id: BigInt
    quantity: BigInt
    unit_price: Numeric[10, 2]
    status: Text
    ordered_at: TimestampTZ
    updated_at: TimestampTZ


@ematix.table(schema="analytics", connection=warehouse)
class DailyRevenue:
    order_date: Annotated[Date, pk()]
    country: Annotated[Text, pk()]
    orders: BigInt
    revenue: Numeric[14, 2]


@ematix.table(schema="archive", name="orders", connection=lake)
class ArchivedOrders:
    order_id: Annotated[BigInt, pk()]
    customer_id: BigInt
    status: Text
    unit_price: Numeric[10, 2]
    quantity: BigInt
    updated_at: TimestampTZ


@ematix.table(schema="archive", connection=lake)
class OrderChanges:
    order_id: BigInt
    customer_id: BigInt
    status: Text
    unit_price: Numeric[10, 2]
    quantity: BigInt
    updated_at: TimestampTZ


@ematix.pipeline(
    target=CustomerDim,
    mode="scd2",
    event_timestamp_column="updated_at",
    source_connection=shop,
    schedule="0 * * * *",
    retry={"max_attempts": 3, "backoff_seconds": 10, "jitter": 0.2},
    group="analytics",
    owners=["team:analytics"],
    tags={"domain": "customers"},
    checks=[
        not_null("email", severity="warn"),
        accepted_values("tier", ["bronze", "silver", "gold"]),
        row_count_between(min=1),
    ],
)
def customer_dim(conn):
    """Customers with their full history (SCD2, versioned by the shop's updated_at)."""
    return "SELECT customer_id, name, email, country, tier, updated_at FROM customers"


@ematix.pipeline(
    target=Orders,
    mode="merge",
    incremental_column="updated_at",
    source_connection=shop,
    schedule="*/15 * * * *",
    retry={"max_attempts": 2, "backoff_seconds": 5, "jitter": 0},
    group="analytics",
    owners=["team:analytics"],
    tags={"domain": "sales"},
    checks=[
        not_null("customer_id"),
        accepted_values("status", ORDER_STATUSES),
        row_count_between(min=1),
    ],
)
def orders(conn):
    """Orders, merged incrementally on updated_at (status changes update rows in place)."""
    return (
        "SELECT order_id, customer_id, product_id, quantity, unit_price, status, ordered_at, "
        "updated_at FROM orders WHERE updated_at > $watermark"
    )


@ematix.pipeline(
    target=DailyRevenue,
    mode="replace",
    depends_on=["customer_dim", "orders"],
    schedule="0 6 * * *",
    group="analytics",
    owners=["team:analytics"],
    tags={"domain": "sales"},
    checks=[
        row_count_between(min=1),
        sql_check(
            "revenue_not_negative",
            "SELECT * FROM {table} WHERE revenue < 0",
            description="no day has negative revenue",
        ),
    ],
)
def daily_revenue(conn):
    """Revenue and order count per day and customer country (cancelled orders excluded)."""
    return """
        SELECT CAST(o.ordered_at AS DATE) AS order_date,
               c.country AS country,
               COUNT(*) AS orders,
               SUM(o.quantity * o.unit_price) AS revenue
        FROM analytics.orders AS o
        JOIN analytics.customer_dim AS c
          ON c.customer_id = o.customer_id AND c.is_current
        WHERE o.status <> 'cancelled'
        GROUP BY CAST(o.ordered_at AS DATE), c.country
    """


@ematix.pipeline(
    targets=[
        ematix.target(ArchivedOrders, mode="merge"),
        ematix.target(OrderChanges, mode="append"),
    ],
    incremental_column="updated_at",
    source_connection=shop,
    schedule="0 * * * *",
    retry={"max_attempts": 4, "backoff_seconds": 30, "backoff_factor": 3},
    group="archive",
    tags={"domain": "sales"},
    checks=[
        not_null("order_id"),
        accepted_values("status", ORDER_STATUSES, severity="warn"),
    ],
)
def orders_archive(conn):
    """Orders archived to Delta: latest state (merge) and every change (append), one read."""
    return (
        "SELECT order_id, customer_id, status, unit_price, quantity, updated_at "
        "FROM orders WHERE updated_at > $watermark"
    )


__all__ = [
    "ArchivedOrders",
    "CustomerDim",
    "DailyRevenue",
    "OrderChanges",
    "Orders",
    "customer_dim",
    "daily_revenue",
    "orders",
    "orders_archive",
]
