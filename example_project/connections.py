"""The example's three connections; every path lives under ``${EMATIX_DATA_DIR}``.

Like any named connection they can be repointed without touching code, e.g.
``EMATIX_DSN_WAREHOUSE=postgresql://user@host/db`` loads the warehouse tables into PostgreSQL.
"""

from ematix_engine.connections import (
    DeltaLocalConnection,
    DuckDBConnection,
    SQLiteConnection,
    register_connection,
)

shop = SQLiteConnection(name="shop", path="${EMATIX_DATA_DIR}/shop.db")
warehouse = DuckDBConnection(name="warehouse", path="${EMATIX_DATA_DIR}/warehouse.duckdb")
lake = DeltaLocalConnection(name="lake", path="${EMATIX_DATA_DIR}/lake")

CONNECTIONS = (shop, warehouse, lake)


def register() -> None:
    """Register the connections by name (so ``EMATIX_DSN_<NAME>`` overrides apply)."""
    for connection in CONNECTIONS:
        register_connection(connection)


register()
