"""A :class:`TableSpec` for a target nobody declared, inferred from the rows' Arrow schema.

Streaming pipelines may write into ``(schema, name)`` without an ``@ematix.table`` class: the
first batch's schema then defines the table. Every column is nullable except the primary key;
nested Arrow types (lists, structs, maps) become ``Json``. Columns that later batches add are
carried by the write core as extra source columns and added to the table (``ALTER``), as for
batch loads; a column whose type clashes is a schema-drift error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from ematix_engine.errors import ConfigError
from ematix_engine.modes import all_managed_names
from ematix_engine.schema.types import column_type_from_arrow
from ematix_engine.specs import ColumnSpec, TableSpec

__all__ = ["table_from_arrow"]


def table_from_arrow(
    schema: str,
    name: str,
    arrow_schema: pa.Schema,
    *,
    primary_key: Sequence[str] = (),
    connection: object = None,
) -> TableSpec:
    """The table that holds rows of ``arrow_schema``.

    Args:
        schema: the table's schema.
        name: the table's name.
        arrow_schema: the rows' schema (columns ematix manages, such as ``_loaded_at``, are
            left out: the load mode adds them).
        primary_key: key columns (NOT NULL, primary key).
        connection: the table's connection, if any.

    Returns:
        The table spec.

    Raises:
        ConfigError: a key column is missing, or a column has no ematix type.

    Example:
        >>> import pyarrow as pa
        >>> spec = table_from_arrow("public", "events",
        ...     pa.schema([("id", pa.int64()), ("tags", pa.list_(pa.string()))]),
        ...     primary_key=["id"])
        >>> [(c.name, c.type.type_name(), c.nullable, c.primary_key) for c in spec.columns]
        [('id', 'BigInt', False, True), ('tags', 'Json', True, False)]
    """
    qualified = f"{schema}.{name}"
    missing = [k for k in primary_key if k not in arrow_schema.names]
    if missing:
        raise ConfigError(
            f"table {qualified}: primary key column {missing[0]!r} is not in the rows "
            f"(columns: {', '.join(arrow_schema.names)})"
        )
    managed = all_managed_names()
    columns = []
    for field in arrow_schema:
        if field.name in managed:
            continue
        try:
            column_type = column_type_from_arrow(field.type)
        except TypeError as error:
            raise ConfigError(f"table {qualified}: column {field.name!r}: {error}") from None
        is_key = field.name in primary_key
        columns.append(
            ColumnSpec(name=field.name, type=column_type, nullable=not is_key, primary_key=is_key)
        )
    return TableSpec(schema=schema, name=name, columns=tuple(columns), connection=connection)
