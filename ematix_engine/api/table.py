"""``@ematix.table``: a class with annotated columns becomes a :class:`TableSpec`.

Every mistake in a declaration is a :class:`~ematix_engine.errors.ConfigError` whose message
starts with the table and the column, e.g. ``table Events (public.events), column 'name':
String[0]: length must be a positive integer, e.g. String[256]``. Bad type parameters and bad
normalizer arguments are only recorded where they are written (see
:mod:`ematix_engine.schema.types`) and reported here, where the table and the column are known.
"""

from __future__ import annotations

import re
import sys
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
    where = f"table {table}, column {attribute!r}"
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
                    f"{where}: annotation {annotation!r} has more than one type; use one column "
                    f"type, optionally `| None`"
                )
            current = members[0]
            continue
        break
    if not (isinstance(current, type) and issubclass(current, ColumnType)):
        raise ConfigError(
            f"{where}: annotation {annotation!r} is not a column type; use a type from "
            f"ematix_engine.types such as BigInt, Text or String[256]"
        )
    if current.problem is not None:
        raise ConfigError(f"{where}: {current.type_name()}: {current.problem}")
    primary_key = any(isinstance(m, PrimaryKey) for m in metadata)
    groups = [m.group for m in metadata if isinstance(m, NaturalKey)]
    normalizers = tuple(m for m in metadata if isinstance(m, Normalizer))
    unknown = [m for m in metadata if not isinstance(m, PrimaryKey | NaturalKey | Normalizer)]
    if unknown:
        raise ConfigError(
            f"{where}: unknown marker {unknown[0]!r}; expected pk(), natural_key(...) or a "
            f"normalizer from ematix_engine.normalize"
        )
    for normalizer in normalizers:
        problem = normalizer.problem()
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")
    if primary_key and nullable:
        raise ConfigError(
            f"{where}: a primary key column cannot be nullable; drop `| None` or pk()"
        )
    return ColumnSpec(
        name=attribute,
        type=current,
        nullable=nullable,
        primary_key=primary_key,
        natural_key_group=groups[0] if groups else None,
        normalizers=normalizers,
    )


def _type_hints(klass: type, table: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The class's resolved annotations; an unresolvable one is reported with its column.

    String annotations (``from __future__ import annotations``) are resolved in the class's
    module, then in ``scope``: the namespace where the class was defined, so a table declared
    inside a function (or a doctest) may use names imported there.
    """
    try:
        return typing.get_type_hints(klass, include_extras=True)
    except NameError:
        pass
    module = vars(sys.modules.get(klass.__module__, types.ModuleType("_")))
    localns = {**scope, **vars(klass)}
    try:
        return typing.get_type_hints(klass, globalns=module, localns=localns, include_extras=True)
    except Exception as error:  # an unresolvable forward reference (string annotation)
        for attribute, annotation in getattr(klass, "__annotations__", {}).items():
            if not isinstance(annotation, str):
                continue
            try:
                eval(annotation, module, localns)  # as get_type_hints does
            except Exception as exc:
                raise ConfigError(
                    f"table {table}, column {attribute!r}: cannot resolve the annotation "
                    f"{annotation!r} ({exc}); import the names it uses"
                ) from error
        raise ConfigError(f"table {table}: cannot read annotations: {error}") from error


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

    Raises:
        ConfigError: a column's annotation is not a valid column type (``String[0]``, …), has
            an unknown marker or a bad normalizer, or a primary key column is nullable; the
            message names the table and the column.

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

    def decorate(klass: type, depth: int = 1) -> type:
        frame = sys._getframe(depth)  # where the class was defined, for string annotations
        scope = {**frame.f_globals, **frame.f_locals}
        del frame
        label = f"{klass.__name__} ({schema}.{name or to_snake_case(klass.__name__)})"
        hints = _type_hints(klass, label, scope)
        own = [k for k in getattr(klass, "__annotations__", {}) if not k.startswith("_")]
        columns = tuple(_column_from_annotation(label, a, hints[a]) for a in own)
        spec = TableSpec(
            schema=schema,
            name=name or to_snake_case(klass.__name__),
            columns=columns,
            connection=connection,
            python_name=f"{klass.__module__}.{klass.__qualname__}",
        )
        setattr(klass, _TABLE_ATTRIBUTE, spec)
        return klass

    return decorate(cls, depth=2) if cls is not None else decorate


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
