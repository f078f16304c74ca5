"""Errors of the SQL transform stage (kept here so ``ematix_engine.errors`` stays untouched).

Both classes join the engine's one error tree (:class:`~ematix_engine.errors.EmatixError`), take
the offending names as constructor arguments and stay picklable through the base class.
"""

from __future__ import annotations

from ematix_engine.errors import ConfigError, EmatixError, TerminalError, TransientError

__all__ = ["LookupLoadError", "TransformError", "TransformSqlError", "UdfTypeError"]


class TransformError(EmatixError, TerminalError):
    """``transform_sql`` failed while running on one batch (a UDF raised, a cast failed, …).

    Attributes:
        pipeline: the pipeline whose transform failed.
        detail: DataFusion's (or the UDF's) message.
        rows: how many input rows the failing batch held.
    """

    def __init__(self, pipeline: str, detail: str, rows: int = 0) -> None:
        self.pipeline = pipeline
        self.detail = detail
        self.rows = rows
        super().__init__(
            f"pipeline {pipeline!r}: transform_sql failed on a batch of {rows} rows: {detail}. "
            f'Fix the SQL or the data, or set transform_on_error="drop" / "dlq" to keep the '
            f"stream moving."
        )


class TransformSqlError(ConfigError):
    """``transform_sql`` does not parse, is not one query, or names unknown columns or tables.

    Raised when the plan is built (at the first batch of each input schema), whatever the
    ``transform_on_error`` policy: a broken query is a configuration error, not a bad batch.
    """

    def __init__(self, pipeline: str, detail: str, columns: list[str] | None = None) -> None:
        self.pipeline = pipeline
        self.detail = detail
        self.columns = list(columns or [])
        message = f"pipeline {pipeline!r}: transform_sql is invalid: {detail}"
        if self.columns:
            message += f". The source batch has columns: {', '.join(self.columns)}"
        super().__init__(message)


class UdfTypeError(ConfigError, ValueError):
    """A ``@udf`` / ``@udaf`` declaration names a type string the bridge does not support."""

    def __init__(self, function: str, field: str, type_string: object, known: list[str]) -> None:
        self.function = function
        self.field = field
        self.type_string = type_string
        super().__init__(
            f"UDF {function!r}: {field} type {type_string!r} is not supported; use one of "
            f"{', '.join(known)}"
        )


class LookupLoadError(EmatixError, TransientError):
    """A lookup table could not be loaded at start-up (the message is redacted)."""

    def __init__(self, pipeline: str, lookup: str, reason: str) -> None:
        self.pipeline = pipeline
        self.lookup = lookup
        self.reason = reason
        super().__init__(f"pipeline {pipeline!r}: lookup {lookup!r} could not be loaded: {reason}")
