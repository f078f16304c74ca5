"""Column types for ``@ematix.table`` declarations.

A column type is a class (``BigInt``, ``Text``, …) or a parametrised class (``String[256]``,
``Numeric[12, 2]``), so that ``T | None`` works for nullable columns. Each type knows its Arrow
type, its SQL type (as a sqlglot ``DataType``, rendered per dialect) and its *hash family*, which
decides how a value becomes canonical text for ``row_hash`` (see ``ematix_engine.schema.hashing``).

Bad parameters (``String[0]``, ``Numeric[40, 2]``, ``String["a"]``) are reported late, on
purpose: a subscription in a class body runs before the class exists, so it cannot know the
table or the column. ``Type[...]`` therefore returns an *invalid* type that carries its
``problem``; ``@ematix.table`` rejects it with a :class:`~ematix_engine.errors.ConfigError`
naming the table, the column and the fix, and any other use (``arrow_type()``, ``sql_type()``)
raises a ``ConfigError`` naming the type.

Example:
    >>> from ematix_engine.types import Numeric, String
    >>> Numeric[12, 2].sql_type().sql("postgres")
    'DECIMAL(12, 2)'
    >>> String[64].arrow_type()
    DataType(string)
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
from sqlglot import exp

from ematix_engine.errors import ConfigError

__all__ = [
    "BigInt",
    "Boolean",
    "Bytes",
    "ColumnType",
    "Date",
    "Double",
    "Integer",
    "Json",
    "Numeric",
    "SmallInt",
    "String",
    "Text",
    "Timestamp",
    "TimestampTZ",
    "column_type_from_arrow",
]


class ColumnType:
    """Base class of every column type. Subclasses are used as classes, never instantiated."""

    #: SQL type name as sqlglot understands it.
    sql_name: ClassVar[str] = ""
    #: How values render as canonical text for ``row_hash``: int, text, bool, decimal, float,
    #: timestamp, timestamptz, date, json, bytes.
    hash_family: ClassVar[str] = "text"
    #: Type parameters (length, precision/scale), empty for plain types.
    params: ClassVar[tuple[int, ...]] = ()
    #: Why the type is unusable (bad parameters), or ``None``; see the module docstring.
    problem: ClassVar[str | None] = None

    @classmethod
    def arrow_type(cls) -> pa.DataType:
        """Return the Arrow type values of this column are carried in."""
        raise NotImplementedError

    @classmethod
    def sql_type(cls) -> exp.DataType:
        """Return the SQL type as a sqlglot ``DataType`` (render with ``.sql(dialect)``)."""
        name = cls.sql_name
        if cls.params:
            name += "(" + ", ".join(str(p) for p in cls.params) + ")"
        return exp.DataType.build(name)

    @classmethod
    def type_name(cls) -> str:
        """Return the user-facing name, e.g. ``String[256]``."""
        if cls.problem is not None:
            return cls.__name__  # as written, e.g. String[0]
        base = cls.__dict__.get("_base_name", cls.__name__)
        if cls.params:
            return f"{base}[{', '.join(str(p) for p in cls.params)}]"
        return base


class _Parametrised(ColumnType):
    """A type that takes parameters with ``Type[...]``; results are cached subclasses."""

    _cache: ClassVar[dict] = {}
    _arity: ClassVar[tuple[int, ...]] = (1,)

    def __class_getitem__(cls, item: int | tuple[int, ...]) -> type[ColumnType]:
        """Return the type for these parameters, or an invalid type that carries the problem."""
        params = item if isinstance(item, tuple) else (item,)
        problem = cls._arity_problem() if len(params) not in cls._arity else cls._check(params)
        if problem is not None:
            return _invalid(cls, params, problem)
        key = (cls, params)
        if key not in _Parametrised._cache:
            _Parametrised._cache[key] = type(
                f"{cls.__name__}[{', '.join(map(str, params))}]",
                (cls,),
                {"params": params, "_base_name": cls.__name__, "__module__": cls.__module__},
            )
        return _Parametrised._cache[key]

    @classmethod
    def _arity_problem(cls) -> str:
        """Say what the parameters should be (the problem when their number is wrong)."""
        return f"takes {' or '.join(map(str, cls._arity))} integer parameter(s)"

    @classmethod
    def _check(cls, params: tuple) -> str | None:
        """Return why these parameters (as many as ``_arity`` wants) make no sense, or ``None``."""
        return None if all(_is_int(p) for p in params) else "parameters must be integers"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unusable(cls: type[ColumnType]) -> None:
    raise ConfigError(f"column type {cls.type_name()}: {cls.problem}")


def _invalid(cls: type[_Parametrised], params: tuple, problem: str) -> type[ColumnType]:
    """A subclass of ``cls`` that remembers ``problem``; using it raises ``ConfigError``."""
    return type(
        f"{cls.__name__}[{', '.join(map(repr, params))}]",
        (cls,),
        {
            "problem": problem,
            "__module__": cls.__module__,
            "arrow_type": classmethod(_unusable),
            "sql_type": classmethod(_unusable),
        },
    )


class BigInt(ColumnType):
    """64-bit signed integer (``BIGINT``)."""

    sql_name = "BIGINT"
    hash_family = "int"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.int64()


class Integer(ColumnType):
    """32-bit signed integer (``INTEGER``)."""

    sql_name = "INT"
    hash_family = "int"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.int32()


class SmallInt(ColumnType):
    """16-bit signed integer (``SMALLINT``)."""

    sql_name = "SMALLINT"
    hash_family = "int"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.int16()


class Text(ColumnType):
    """Unbounded text (``TEXT``)."""

    sql_name = "TEXT"
    hash_family = "text"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.string()


class String(_Parametrised):
    """Text with a maximum length: ``String[256]`` is ``VARCHAR(256)``."""

    sql_name = "VARCHAR"
    hash_family = "text"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.string()

    @classmethod
    def _arity_problem(cls) -> str:
        return "takes one parameter, the maximum length in characters, e.g. String[256]"

    @classmethod
    def _check(cls, params: tuple) -> str | None:
        if not _is_int(params[0]) or params[0] < 1:
            return "length must be a positive integer, e.g. String[256]"
        return None


class Boolean(ColumnType):
    """True/false (``BOOLEAN``)."""

    sql_name = "BOOLEAN"
    hash_family = "bool"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.bool_()


class Double(ColumnType):
    """64-bit float (``DOUBLE PRECISION``). Hashed by its IEEE-754 bits (see ``schema.hashing``)."""

    sql_name = "DOUBLE"
    hash_family = "float"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.float64()


class Numeric(_Parametrised):
    """Exact decimal: ``Numeric[12, 2]`` is ``NUMERIC(12, 2)``."""

    sql_name = "DECIMAL"
    hash_family = "decimal"
    _arity = (2,)

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        precision, scale = cls.params
        return pa.decimal128(precision, scale)

    @classmethod
    def _arity_problem(cls) -> str:
        return "takes two parameters, precision and scale, e.g. Numeric[12, 2]"

    @classmethod
    def _check(cls, params: tuple) -> str | None:
        precision, scale = params
        if not (_is_int(precision) and _is_int(scale)):
            return "precision and scale must be integers, e.g. Numeric[12, 2]"
        if not 1 <= precision <= 38:
            return "precision must be between 1 and 38, e.g. Numeric[12, 2]"
        if not 0 <= scale <= precision:
            return f"scale must be between 0 and the precision ({precision}), e.g. Numeric[12, 2]"
        return None


class Date(ColumnType):
    """Calendar date (``DATE``)."""

    sql_name = "DATE"
    hash_family = "date"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.date32()


class Timestamp(ColumnType):
    """Timestamp without time zone, microsecond precision (``TIMESTAMP``)."""

    sql_name = "TIMESTAMP"
    hash_family = "timestamp"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.timestamp("us")


class TimestampTZ(ColumnType):
    """Instant in time, microsecond precision, stored as UTC (``TIMESTAMPTZ``)."""

    sql_name = "TIMESTAMPTZ"
    hash_family = "timestamptz"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.timestamp("us", tz="UTC")


class Json(ColumnType):
    """JSON document (``JSONB`` on PostgreSQL, ``JSON`` on DuckDB, text on SQLite)."""

    sql_name = "JSON"
    hash_family = "json"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.string()


class Bytes(ColumnType):
    """Binary data (``BYTEA`` / ``BLOB``). Hashed as lowercase hex."""

    sql_name = "VARBINARY"
    hash_family = "bytes"

    @classmethod
    def arrow_type(cls) -> pa.DataType:  # noqa: D102
        return pa.binary()


def column_type_from_arrow(arrow_type: pa.DataType) -> type[ColumnType]:
    """Pick the column type that carries values of ``arrow_type`` without loss.

    Used for source columns that the target declaration does not name.

    Raises:
        TypeError: when no column type fits (nested types, for instance).
    """
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return Boolean
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return SmallInt
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return Integer
    if pa.types.is_integer(t):
        return BigInt
    if pa.types.is_floating(t):
        return Double
    if pa.types.is_decimal(t):
        return Numeric[min(t.precision, 38), t.scale]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return Text
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return Bytes
    if pa.types.is_date(t):
        return Date
    if pa.types.is_timestamp(t):
        return TimestampTZ if t.tz else Timestamp
    if (
        pa.types.is_struct(t)
        or pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_map(t)
    ):
        return Json
    if pa.types.is_null(t):
        return Text
    raise TypeError(f"no ematix column type carries Arrow type {t}")
