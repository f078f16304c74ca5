"""``@ematix.table``: a class with annotated columns becomes a :class:`TableSpec`."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Union

from ematix_engine.errors import ConfigError
from ematix_engine.schema.normalize import Normalizer
from ematix_engine.schema.types import ColumnType
from ematix_engine.specs import ColumnSpec, TableSpec

__all__ = ["NaturalKey", "PrimaryKey", "natural_key", "pk", "table", "table_spec", "to_snake_case"]

_TABLE_ATTRIBUTE = "__ematix_table__"


@dataclass(frozen=True, slots=True)
class PrimaryKey:
    """Marker: the column is part of the primary key. Create with :func:`pk`."""


@dataclass(frozen=True, slots=True)
class NaturalKey:
    """Marker: the column belongs to natural-key group ``group``. Create with :func:`natural_key`."""

    group: str = "default"


def pk() -> PrimaryKey:
    """Mark a column as part of the table's primary key.

    Example:
        >>> from typing import Annotated
        >>> from ematix_engine.types import BigInt
        >>> EventId = Annotated[BigInt, pk()]
    """
    return PrimaryKey()


def natural_key(group: str = "default") -> NaturalKey:
    """Mark a column as part of a natural (business) key; columns sharing ``group`` form it."""
    return NaturalKey(group)


def to_snake_case(name: str) -> str:
    """``CustomerDim`` → ``customer_dim``; ``HTTPLog`` → ``http_log``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


def _column_from_annotation(table: str, attribute: str, annotation: Any) -> ColumnSpec:
    nullable = False
    metadata: list[Any] = []
    current = annotation
    for _ in range(8):  # unwrap Annotated / Optional in any nesting order
        origin = typing.get_origin(current)
        if origin is Annotated:
            metadata.extend(current.__metadata__)
            current = current.__origin__
            continue
        if origin in (Union, types.UnionType):
            members = [m for m in typing.get_args(current) if m is not type(None)]
            if len(members) != len(typing.get_args(current)):
                nullable = True
            if len(members) != 1:
                raise ConfigError(
                    f"table {table}: column {attribute!r} has annotation {annotation!r}; "
                    f"use one column type, optionally `| None`"
                )
            current = members[0]
            continue
        break
    if not (isinstance(current, type) and issubclass(current, ColumnType)):
        raise ConfigError(
            f"table {table}: column {attribute!r} is annotated {annotation!r}; use a type from "
            f"ematix_engine.types such as BigInt, Text or String[256]"
        )
    primary_key = any(isinstance(m, PrimaryKey) for m in metadata)
    groups = [m.group for m in metadata if isinstance(m, NaturalKey)]
    normalizers = tuple(m for m in metadata if isinstance(m, Normalizer))
    unknown = [m for m in metadata if not isinstance(m, PrimaryKey | NaturalKey | Normalizer)]
    if unknown:
        raise ConfigError(
            f"table {table}: column {attribute!r} has unknown marker {unknown[0]!r}; expected "
            f"pk(), natural_key(...) or a normalizer from ematix_engine.normalize"
        )
    if primary_key and nullable:
        raise ConfigError(f"table {table}: primary key column {attribute!r} cannot be nullable")
    return ColumnSpec(
        name=attribute,
        type=current,
        nullable=nullable,
        primary_key=primary_key,
        natural_key_group=groups[0] if groups else None,
        normalizers=normalizers,
    )


def table(
    cls: type | None = None,
    *,
    schema: str = "public",
    name: str | None = None,
    connection: Any = None,
):
    """Declare a target table from a class whose annotations are the columns.

    Args:
        cls: the class (when used without parentheses).
        schema: database schema; Delta uses it as a folder, SQLite ignores it.
        name: table name; defaults to the class name in snake_case.
        connection: default connection (name or typed connection) for pipelines writing here.

    Returns:
        The class, carrying its :class:`TableSpec` (read it with :func:`table_spec`).

    Example:
        >>> from typing import Annotated
        >>> from ematix_engine import ematix, pk
        >>> from ematix_engine.types import BigInt, Text
        >>> @ematix.table(schema="analytics")
        ... class PageViews:
        ...     view_id: Annotated[BigInt, pk()]
        ...     url: Text | None
        >>> table_spec(PageViews).qualified_name
        'analytics.page_views'
    """

    def decorate(klass: type) -> type:
        qualified = f"{schema}.{name or to_snake_case(klass.__name__)}"
        try:
            hints = typing.get_type_hints(klass, include_extras=True)
        except Exception as error:  # unresolvable forward references
            raise ConfigError(f"table {qualified}: cannot read annotations: {error}") from error
        own = [k for k in getattr(klass, "__annotations__", {}) if not k.startswith("_")]
        columns = tuple(_column_from_annotation(qualified, a, hints[a]) for a in own)
        spec = TableSpec(
            schema=schema,
            name=name or to_snake_case(klass.__name__),
            columns=columns,
            connection=connection,
            python_name=f"{klass.__module__}.{klass.__qualname__}",
        )
        setattr(klass, _TABLE_ATTRIBUTE, spec)
        return klass

    return decorate(cls) if cls is not None else decorate


def table_spec(obj: Any) -> TableSpec:
    """Return the :class:`TableSpec` of a declared table class (or pass a spec through).

    Raises:
        ConfigError: when ``obj`` was not declared with ``@ematix.table``.
    """
    if isinstance(obj, TableSpec):
        return obj
    spec = getattr(obj, _TABLE_ATTRIBUTE, None)
    if spec is None:
        raise ConfigError(f"{obj!r} is not a table; decorate the class with @ematix.table(...)")
    return spec
