"""The one error tree of ematix.

Every error the engine raises on purpose is an :class:`EmatixError`. Constructors take the
offending names (pipeline, table, column, connection, …), keep them as attributes and build a
message that says what went wrong, where, and how to fix it. Two mixins tell callers whether a
retry can help: :class:`TerminalError` (fix the config or the data first) and
:class:`TransientError` (a retry may succeed). Errors stay picklable so they cross process
boundaries (Dagster run workers, subprocess executors) intact.

Retries follow :func:`is_retryable`; ``run-due`` and the Dagster resource give up at once on an
error it calls terminal, whatever attempts the retry policy has left:

* **Terminal** (fix something first): ``ConfigError`` and its subclasses (``UnknownNameError``,
  ``CycleError``, ``UnsupportedError``), ``SchemaDriftError``, ``DuplicateKeyError``; PEP 249
  ``ProgrammingError`` (a SQL error in the query: syntax, unknown column or function,
  privileges; DuckDB ``ParserException``, ``BinderException``, …); ``DataError``,
  ``IntegrityError`` and ``NotSupportedError`` (a value does not fit: a failed cast, division
  by zero, a constraint).
* **Transient** (a retry may succeed): ``ConnectionFailedError``, ``ConnectionLostError``;
  ``ConnectionError`` and ``TimeoutError``; PEP 249 ``OperationalError`` (refused or dropped
  connections, server shutdown, serialization failures, deadlocks; DuckDB ``IOException``).
* **By cause**: ``SourceError`` and ``LoadError`` take the verdict of the driver error they
  wrap (``raise SourceError(...) from error``), retried when they wrap none; the verdict
  survives pickling.
* **Unknown, retried per policy as before**: everything else, including a missing table
  (DuckDB ``CatalogException``, SQLSTATE 42P01 or 3F000), which an upstream load may create.

Driver errors are recognised by their PEP 249 class names and SQLSTATE, so this module imports no
driver. :func:`load_error` wraps a driver error raised while writing a target into a
:class:`LoadError`, or a :class:`ConnectionLostError` when the connection was lost or refused.
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Iterable, Sequence

__all__ = [
    "BadValueError",
    "ConfigError",
    "ConnectionFailedError",
    "ConnectionLostError",
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
    "is_retryable",
    "load_error",
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
        state = self.__dict__.copy()
        if self.__cause__ is not None and "_cause_retryable" not in state:
            # ``__cause__`` does not survive pickling; keep the retry verdict drawn from it.
            state["_cause_retryable"] = is_retryable(self.__cause__)
        return (_rebuild_error, (type(self), state))

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


class BadValueError(EmatixError, TerminalError):
    """A source value would be changed by the load (truncated, rounded, coerced): refused."""

    def __init__(
        self,
        pipeline: str,
        target: str,
        column: str,
        key: dict,
        reason: str,
        remedy: str = "fix the source, or widen the declared type",
    ) -> None:
        self.pipeline = pipeline
        self.target = target
        self.column = column
        self.key = key
        self.reason = reason
        where = ", ".join(f"{k}={v!r}" for k, v in key.items()) or "a row without key columns"
        super().__init__(
            f"pipeline {pipeline!r}: load into {target} refused the row with key ({where}): "
            f"column {column!r} is {reason}; {remedy}"
        )


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


class ConnectionLostError(LoadError, TransientError):
    """Writing to a target failed because its connection was lost or refused; retry later.

    The transaction was rolled back, so the target and its watermark are as they were.
    """

    def __init__(self, pipeline: str, target: str, detail: str) -> None:
        super().__init__(pipeline, target, detail)
        self.message += (
            "; the connection was lost or refused and the load was rolled back. Check that the "
            "server is up and reachable; a retry may succeed"
        )
        self.args = (self.message,)


def load_error(
    pipeline: str, target: str, error: BaseException, detail: str | None = None
) -> LoadError:
    """Wrap a driver error raised while loading ``target`` into the right ematix error.

    Args:
        pipeline: Name of the pipeline that was loading.
        target: Label of the target (``schema.table``).
        error: The driver's exception; it becomes the result's ``__cause__``.
        detail: The (redacted) text to show; default: ``str(error)``.

    Returns:
        A :class:`ConnectionLostError` (transient) when ``error`` is a lost or refused
        connection, otherwise a :class:`LoadError` whose retry verdict follows ``error``
        (see :func:`is_retryable`). Raise it with ``raise load_error(...) from error``.

    Example:
        >>> lost = load_error("orders", "an.orders", ConnectionResetError("peer reset"))
        >>> type(lost).__name__, is_retryable(lost)
        ('ConnectionLostError', True)
    """
    text = detail if detail is not None else (str(error).strip() or type(error).__name__)
    wrapped = (ConnectionLostError if _is_connection_lost(error) else LoadError)(
        pipeline, target, text
    )
    wrapped.__cause__ = error
    return wrapped


def is_retryable(error: BaseException) -> bool:
    """Whether retrying the work that raised ``error`` may succeed (table in the module doc).

    Args:
        error: Any exception: an ematix error, a driver error or anything else.

    Returns:
        ``False`` for terminal errors (configuration, schema drift, duplicate keys, SQL and data
        errors), ``True`` for transient ones and for errors nothing is known about.

    Example:
        >>> is_retryable(ConfigError("bad declaration")), is_retryable(TimeoutError())
        (False, True)
    """
    if isinstance(error, TerminalError):
        return False
    if isinstance(error, TransientError):
        return True
    if isinstance(error, EmatixError):
        verdict = error.__dict__.get("_cause_retryable")
        if verdict is None and error.__cause__ is not None and error.__cause__ is not error:
            return is_retryable(error.__cause__)
        return True if verdict is None else bool(verdict)
    verdict = _driver_verdict(error)
    return True if verdict is None else verdict


_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")  # connection exception; shutdowns
_MISSING_RELATION_SQLSTATES = ("42P01", "3F000")  # undefined table; invalid schema name


def _class_names(error: BaseException) -> tuple[str, set[str]]:
    """The driver package (``psycopg``, ``duckdb``, …) and the class names of ``error``'s MRO."""
    return type(error).__module__.split(".")[0], {c.__name__ for c in type(error).__mro__}


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def _is_connection_lost(error: BaseException) -> bool:
    """Whether ``error`` says a connection was refused, reset, timed out or shut down."""
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    package, names = _class_names(error)
    if package == "duckdb":
        return bool(names & {"ConnectionException", "HTTPException"})
    if package in ("sqlite3", "_sqlite3") or "OperationalError" not in names:
        return False
    state = _sqlstate(error)
    return state is None or state.startswith(_CONNECTION_SQLSTATES)


def _driver_verdict(error: BaseException) -> bool | None:
    """Retry verdict for a foreign (driver or built-in) error; ``None`` when unknown."""
    if _is_connection_lost(error):
        return True
    _, names = _class_names(error)
    if names & {"DataError", "IntegrityError", "NotSupportedError"}:
        return False
    if "ProgrammingError" in names:
        missing = "CatalogException" in names or _sqlstate(error) in _MISSING_RELATION_SQLSTATES
        return None if missing else False
    if "OperationalError" in names:
        return True
    return None
