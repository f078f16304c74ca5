"""A tiny shop that changes over time: customers, products and orders in SQLite.

The shop lives in ``${EMATIX_DATA_DIR}/shop.db``. Time moves in *ticks* (one simulated day):
tick 0 is the opening state; every :func:`advance_shop` adds one tick in which customers
move tier or change e-mail, a product changes price, new orders arrive and older ones move
from placed to shipped to delivered (a few are cancelled). Each tick is generated from its own
seed, so the shop after N ticks is always the same, however it got there; :func:`ensure_shop`
creates tick 0 only when the file is new.

The ``shop_source`` multi-asset advances the shop by one tick per run; the ematix pipelines
read its tables (``FROM customers`` on connection ``shop`` becomes the dep ``shop/customers``).
"""

import random
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from ematix_dagster.constants import DAGSTER_KEY_ROW_COUNT, DAGSTER_KEY_TABLE_NAME
from example_project import data_dir

OPENING = datetime(2024, 1, 1, tzinfo=UTC)
TIERS = ("bronze", "silver", "gold")
STATUSES = ("placed", "shipped", "delivered", "cancelled")
COUNTRIES = ("FR", "DE", "ES", "IT", "NL")
CATEGORIES = ("books", "games", "music", "garden")
SHOP_TABLES = ("customers", "products", "orders")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country TEXT NOT NULL,
    tier TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
    product_id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
    price NUMERIC NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL, unit_price NUMERIC NOT NULL, status TEXT NOT NULL,
    ordered_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shop_state (id INTEGER PRIMARY KEY CHECK (id = 1), tick INTEGER);
"""


def shop_path() -> Path:
    """Where the shop database lives."""
    return data_dir() / "shop.db"


def _ts(tick: int, rng: random.Random) -> str:
    moment = OPENING + timedelta(days=tick, seconds=rng.randrange(0, 86_400))
    return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")


def _new_customers(db: sqlite3.Connection, rng: random.Random, tick: int, count: int) -> None:
    (start,) = db.execute("SELECT COALESCE(MAX(customer_id), 0) FROM customers").fetchone()
    for customer_id in range(start + 1, start + count + 1):
        db.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            (
                customer_id,
                f"Customer {customer_id}",
                f"customer{customer_id}@example.com",
                rng.choice(COUNTRIES),
                rng.choice(TIERS),
                _ts(tick, rng),
            ),
        )


def _new_orders(db: sqlite3.Connection, rng: random.Random, tick: int, count: int) -> None:
    (start,) = db.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders").fetchone()
    customers = [r[0] for r in db.execute("SELECT customer_id FROM customers ORDER BY 1")]
    products = db.execute("SELECT product_id, price FROM products ORDER BY 1").fetchall()
    for order_id in range(start + 1, start + count + 1):
        product_id, price = rng.choice(products)
        at = _ts(tick, rng)
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, 'placed', ?, ?)",
            (order_id, rng.choice(customers), product_id, rng.randint(1, 4), price, at, at),
        )


def _open(db: sqlite3.Connection, rng: random.Random) -> None:
    _new_customers(db, rng, 0, 20)
    for product_id in range(1, 9):
        db.execute(
            "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
            (
                product_id,
                f"Product {product_id}",
                CATEGORIES[product_id % len(CATEGORIES)],
                round(rng.uniform(5, 80), 2),
                _ts(0, rng),
            ),
        )
    _new_orders(db, rng, 0, 40)


def _tick(db: sqlite3.Connection, rng: random.Random, tick: int) -> None:
    customers = [r[0] for r in db.execute("SELECT customer_id FROM customers ORDER BY 1")]
    for customer_id in rng.sample(customers, k=3):
        if rng.random() < 0.5:
            (tier,) = db.execute(
                "SELECT tier FROM customers WHERE customer_id = ?", (customer_id,)
            ).fetchone()
            db.execute(
                "UPDATE customers SET tier = ?, updated_at = ? WHERE customer_id = ?",
                (rng.choice([t for t in TIERS if t != tier]), _ts(tick, rng), customer_id),
            )
        else:
            db.execute(
                "UPDATE customers SET email = ?, updated_at = ? WHERE customer_id = ?",
                (f"c{customer_id}.t{tick}@example.com", _ts(tick, rng), customer_id),
            )
    product_id = rng.randint(1, 8)
    db.execute(
        "UPDATE products SET price = ROUND(price * ?, 2), updated_at = ? WHERE product_id = ?",
        (rng.choice((0.9, 1.1, 1.2)), _ts(tick, rng), product_id),
    )
    for order_id, status in db.execute(
        "SELECT order_id, status FROM orders WHERE status IN ('placed', 'shipped') ORDER BY 1"
    ).fetchall():
        if status == "placed":
            new = "cancelled" if rng.random() < 0.05 else "shipped"
        else:
            new = "delivered"
        db.execute(
            "UPDATE orders SET status = ?, updated_at = ? WHERE order_id = ?",
            (new, _ts(tick, rng), order_id),
        )
    _new_customers(db, rng, tick, 2)
    _new_orders(db, rng, tick, 10)


def _current_tick(db: sqlite3.Connection) -> int | None:
    row = db.execute("SELECT tick FROM shop_state WHERE id = 1").fetchone()
    return None if row is None else int(row[0])


def ensure_shop(path: Path | None = None) -> int:
    """Create the shop at tick 0 unless it exists; return its current tick."""
    return advance_shop(path, ticks=0)


def advance_shop(path: Path | None = None, ticks: int = 1) -> int:
    """Advance the shop by ``ticks`` simulated days (creating tick 0 first if needed).

    Args:
        path: The SQLite file (default :func:`shop_path`).
        ticks: Days to add; 0 only makes sure the shop exists.

    Returns:
        The tick the shop is at afterwards.
    """
    path = path or shop_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            tick = _current_tick(db)
            if tick is None:
                _open(db, random.Random(0))
                tick = 0
            for _ in range(ticks):
                tick += 1
                _tick(db, random.Random(tick), tick)
            db.execute("INSERT OR REPLACE INTO shop_state (id, tick) VALUES (1, ?)", (tick,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return tick


def table_counts(path: Path | None = None) -> dict[str, int]:
    """Rows per shop table."""
    with closing(sqlite3.connect(path or shop_path())) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in SHOP_TABLES}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["shop", table],
            group_name="shop",
            kinds={"sqlite", "python"},
            description=f"The shop's {table} (SQLite), advanced one simulated day per run.",
            metadata={DAGSTER_KEY_TABLE_NAME: f"main.{table}"},
        )
        for table in SHOP_TABLES
    ],
    name="shop_source",
)
def shop_source(context: dg.AssetExecutionContext):
    tick = advance_shop()
    counts = table_counts()
    context.log.info(f"shop advanced to day {tick}: {counts}")
    for table in SHOP_TABLES:
        yield dg.MaterializeResult(
            asset_key=["shop", table],
            metadata={DAGSTER_KEY_ROW_COUNT: counts[table], "shop/day": tick},
        )
