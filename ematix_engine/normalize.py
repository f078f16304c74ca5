"""Column normalizers (``from ematix_engine.normalize import lower, trim``)."""

from ematix_engine.schema.normalize import (
    Normalizer,
    default,
    empty_to_null,
    lower,
    parse_int,
    parse_timestamp,
    regex_replace,
    trim,
)

__all__ = [
    "Normalizer",
    "default",
    "empty_to_null",
    "lower",
    "parse_int",
    "parse_timestamp",
    "regex_replace",
    "trim",
]
