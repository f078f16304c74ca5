"""The one error tree of ematix.

Every error the engine raises on purpose is an :class:`EmatixError`. Constructors take the
offending names (pipeline, table, column, connection, …), keep them as attributes and build a
message that says what went wrong, where, and how to fix it. Two mixins tell callers whether a
retry can help: :class:`TerminalError` (fix the config or the data first) and
:class:`TransientError` (a retry may succeed). Errors stay picklable so they cross process
boundaries (Dagster run workers, subprocess executors) intact.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "ConfigError",
    "ConnectionFailedError",
    "CycleError",
    "DuplicateKeyError",
    "EmatixError",
    "LoadError",
    "SchemaDriftError",
    "SourceError",
    "TerminalError",
    "TransientError",
    "UnknownNameError",
    "UnsupportedError",
    "closest_match",
]


def closest_match(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or ``None`` when nothing is close.

    Example:
        >>> closest_match("warehous", ["warehouse", "kafka"])
        'warehouse'
    """
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class TerminalError:
    """Mixin: retrying will not help until the configuration or the data changes."""


class TransientError:
    """Mixin: the failure may go away on its own; a retry can succeed."""


class EmatixError(Exception):
    """Base class of every error ematix raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # keep subclasses with keyword constructors picklable
        return (_rebuild_error, (type(self), self.__dict__.copy()))

    def __str__(self) -> str:
        return self.message


def _rebuild_error(cls: type[EmatixError], state: dict) -> EmatixError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class ConfigError(EmatixError, TerminalError):
    """A declaration, connection or configuration value is invalid or missing."""


class UnknownNameError(ConfigError):
    """A name (connection, pipeline, column, …) was looked up and not found."""

    def __init__(self, kind: str, name: str, known: Sequence[str] = ()) -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        hint = closest_match(name, self.known)
        message = f"unknown {kind} {name!r}"
        if hint:
            message += f"; did you mean {hint!r}?"
        elif self.known:
            message += f"; known: {', '.join(sorted(self.known))}"
        else:
            message += f"; no {kind} is registered"
        super().__init__(message)


class ConnectionFailedError(EmatixError, TransientError):
    """A connection could not be opened or dropped mid-way. The message is redacted."""

    def __init__(self, connection: str, reason: str) -> None:
        self.connection = connection
        self.reason = reason
        super().__init__(f"connection {connection!r} failed: {reason}")


class SchemaDriftError(EmatixError, TerminalError):
    """A source column does not fit the declared or existing target column."""

    def __init__(self, table: str, column: str, detail: str) -> None:
        self.table = table
        self.column = column
        self.detail = detail
        super().__init__(
            f"schema drift on {table}.{column}: {detail}. Change the declared type or migrate "
            f"the target column by hand; ematix only adds columns automatically."
        )


class DuplicateKeyError(EmatixError, TerminalError):
    """One batch holds two different rows for the same key (and event time)."""

    def __init__(self, pipeline: str, key: dict, detail: str = "") -> None:
        self.pipeline = pipeline
        self.key = key
        rendered = ", ".join(f"{k}={v!r}" for k, v in key.items())
        message = (
            f"pipeline {pipeline!r}: the source returned more than one row for key ({rendered})"
        )
        if detail:
            message += f" {detail}"
        message += (
            ". Deduplicate the source query, or set event_timestamp_column so the newest row wins."
        )
        super().__init__(message)


class CycleError(ConfigError):
    """``depends_on`` links form a ring."""

    def __init__(self, ring: Sequence[str]) -> None:
        self.ring = tuple(ring)
        super().__init__("pipelines depend on each other in a cycle: " + " -> ".join(self.ring))


class SourceError(EmatixError):
    """Reading from a source failed (query error, malformed message, …)."""

    def __init__(self, pipeline: str, detail: str) -> None:
        self.pipeline = pipeline
        self.detail = detail
        super().__init__(f"pipeline {pipeline!r}: source failed: {detail}")


class LoadError(EmatixError):
    """Writing to a target failed; the target and its watermark were left as they were."""

    def __init__(self, pipeline: str, target: str, detail: str) -> None:
        self.pipeline = pipeline
        self.target = target
        self.detail = detail
        super().__init__(f"pipeline {pipeline!r}: load into {target} failed: {detail}")


class UnsupportedError(ConfigError):
    """A backend cannot do what the declaration asks (never degraded silently)."""

    def __init__(self, backend: str, feature: str, hint: str = "") -> None:
        self.backend = backend
        self.feature = feature
        message = f"{backend} does not support {feature}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)
