"""Target-table DDL: create what is missing, add new columns, refuse incompatible changes.

``ensure_table`` compares the columns a load will write with what the database has. Missing
table → ``CREATE TABLE``; missing column → ``ALTER TABLE … ADD COLUMN`` (nullable, so existing
rows stay valid); a column whose existing type cannot hold the declared one → ``SchemaDriftError``
naming the column. Nothing is ever dropped or narrowed automatically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ematix_engine.backends.base import SqlBackend
from ematix_engine.errors import SchemaDriftError
from ematix_engine.schema.types import ColumnType

__all__ = ["TableColumn", "ensure_table", "type_family"]


@dataclass(frozen=True, slots=True)
class TableColumn:
    """A physical column a load writes: name, type, nullability."""

    name: str
    type: type[ColumnType]
    nullable: bool = True


# Families of physical type names that hold each hash family without loss.
_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "int": ("int", "serial", "numeric", "decimal", "real", "double", "float", "hugeint"),
    "text": ("char", "text", "string", "json", "clob"),
    "json": ("json", "text", "char"),
    "bool": ("bool", "int"),
    "decimal": ("numeric", "decimal", "real", "double", "float", "text"),
    "float": ("double", "float", "real", "numeric", "decimal"),
    "date": ("date", "timestamp", "text"),
    "timestamp": ("timestamp", "datetime", "text"),
    "timestamptz": ("timestamp", "datetime", "text"),
    "bytes": ("bytea", "blob", "binary"),
}


def type_family(existing_type: str) -> str:
    """Lower-case physical type name, as given by the backend."""
    return existing_type.lower()


# Type names that contain a family token ("int") but hold none of that family's values.
_FALSE_FRIENDS = re.compile(r"interval|point")


# Integer widths in bits by type name, for ``_narrower`` (names as the backends report them).
_INT_BITS = {
    "tinyint": 8, "byte": 8, "int1": 8,
    "smallint": 16, "short": 16, "int2": 16,
    "integer": 32, "int": 32, "int4": 32, "mediumint": 32,
    "bigint": 64, "long": 64, "int8": 64,
    # DuckDB's unsigned integers hold no negative value: narrower than any signed declaration
    "utinyint": 0, "usmallint": 0, "uinteger": 0, "ubigint": 0,
}  # fmt: skip
_DECLARED_INT_BITS = {"SMALLINT": 16, "INT": 32, "BIGINT": 64}
_VARCHAR_LENGTH = re.compile(r"(?:varchar|character varying|character|char)\s*\((\d+)\)")


def _compatible(existing_type: str, column_type: type[ColumnType], dialect: str) -> bool:
    existing = existing_type.lower()
    if existing == "" or existing == "null":  # SQLite columns without declared type
        return True
    if _FALSE_FRIENDS.search(existing):
        return False
    if not any(token in existing for token in _COMPATIBLE[column_type.hash_family]):
        return False
    return not _narrower(existing, column_type, dialect)


def _narrower(existing: str, column_type: type[ColumnType], dialect: str) -> bool:
    """Whether the existing column cannot hold every value of the declared type.

    An integer column narrower than the declared integer (``INTEGER`` for ``BigInt``), or a
    ``VARCHAR(m)`` shorter than a declared ``String[n]``. Never where the backend enforces no
    widths (``ENFORCES_TYPE_WIDTHS``: SQLite), whose integers are
    all 64-bit and whose ``VARCHAR(m)`` holds any length.
    """
    from ematix_engine.backends import backend_class_for_dialect

    if not backend_class_for_dialect(dialect).ENFORCES_TYPE_WIDTHS:
        return False
    declared_bits = _DECLARED_INT_BITS.get(column_type.sql_name)
    if declared_bits is not None:
        bits = _INT_BITS.get(existing.split("(")[0].strip())
        return bits is not None and bits < declared_bits
    params = getattr(column_type, "params", None)
    if column_type.sql_name == "VARCHAR" and params:
        found = _VARCHAR_LENGTH.search(existing)
        return found is not None and int(found.group(1)) < params[0]
    return False


def ensure_table(
    backend: SqlBackend,
    schema: str,
    name: str,
    columns: Sequence[TableColumn],
    *,
    primary_key: Sequence[str] = (),
    update_heavy: bool = False,
) -> list[str]:
    """Create or widen the target table so every column in ``columns`` exists.

    Args:
        backend: the target session (inside the load's transaction).
        schema: schema name (ignored where the backend has none).
        name: table name.
        columns: columns the load writes, in order.
        primary_key: columns of the PRIMARY KEY on a newly created table.
        update_heavy: later loads update rows in place (merge, SCD2 closing versions); a new
            table then gets the backend's storage options for that (PostgreSQL leaves room on
            each page, so an update need not touch the indexes).

    Returns:
        The DDL statements that ran (empty when the table was already right).

    Raises:
        SchemaDriftError: an existing column's type cannot hold the declared type.
    """
    table_sql = backend.table_sql(schema, name)
    existing = backend.table_columns(schema if backend.SUPPORTS_SCHEMAS else None, name)
    statements: list[str] = []
    if existing is None:
        backend.create_schema(schema)
        definitions = [
            f"{backend.quote(c.name)} {backend.column_type_sql(c.type)}"
            + ("" if c.nullable else " NOT NULL")
            for c in columns
        ]
        if primary_key and backend.CREATES_PRIMARY_KEY:
            definitions.append(f"PRIMARY KEY ({', '.join(backend.quote(k) for k in primary_key)})")
        options = backend.table_options_sql(update_heavy=update_heavy)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table_sql} ({', '.join(definitions)}){options}"
        )
    else:
        label = f"{schema}.{name}" if backend.SUPPORTS_SCHEMAS else name
        for column in columns:
            current = existing.get(column.name)
            if current is None:
                statements.append(
                    f"ALTER TABLE {table_sql} ADD COLUMN {backend.quote(column.name)} "
                    f"{backend.column_type_sql(column.type)}"
                )
            elif not _compatible(current, column.type, backend.dialect):
                raise SchemaDriftError(
                    label,
                    column.name,
                    f"the table has type {current} but the load writes "
                    f"{column.type.type_name()} ({backend.column_type_sql(column.type)})",
                )
    for statement in statements:
        backend.execute(statement)
    return statements
