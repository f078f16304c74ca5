"""Column types for table declarations (``from ematix_engine.types import BigInt, Text``)."""

from ematix_engine.schema.types import (
    BigInt,
    Boolean,
    Bytes,
    ColumnType,
    Date,
    Double,
    Integer,
    Json,
    Numeric,
    SmallInt,
    String,
    Text,
    Timestamp,
    TimestampTZ,
)

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
]
