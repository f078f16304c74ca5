"""Batch watermarks: the values an incremental load starts from.

A pipeline's watermark is the maximum of its ``incremental_column`` over the rows it loaded; it
is committed as the write's checkpoint (:mod:`ematix_engine.backends.checkpoints`), so it
advances exactly when those rows commit. Values are kept as text and cast back to the column's
type when used; the next load reads rows strictly greater. Before the first load the value is a
sentinel below every real value of the column's type family.
"""

from __future__ import annotations

__all__ = ["sentinel_for"]

#: Value used before the first load: below every real value of the family.
_SENTINELS = {
    "int": "-9007199254740991",  # -(2**53 - 1): room for `$watermark - n`
    "decimal": "-99999999999999999999999999999999999999",
    "float": "-1e308",
    "text": "",
    "json": "",
    "date": "0001-01-01",
    "timestamp": "0001-01-01 00:00:00",
    "timestamptz": "0001-01-01 00:00:00+00",
    "bool": "false",
    "bytes": "",
}


def sentinel_for(hash_family: str) -> str:
    """The 'before everything' watermark for a column type family."""
    return _SENTINELS[hash_family]
