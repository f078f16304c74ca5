"""Errors of the causal processor, part of the one :class:`~ematix_engine.errors.EmatixError` tree.

Each constructor takes the offending ids or names, keeps them as attributes and builds a message
that says what went wrong and how to fix it. They stay picklable through
:meth:`EmatixError.__reduce__`.
"""

from __future__ import annotations

from ematix_engine.errors import ConfigError, EmatixError, SourceError, TerminalError

__all__ = [
    "CausalConfigError",
    "CausalCycleError",
    "CausalError",
    "CausalSourceError",
    "DuplicateEventError",
]


class CausalError(EmatixError):
    """Base class of the errors raised by :mod:`ematix_engine.causal`."""


class CausalConfigError(CausalError, ConfigError):
    """A pattern, constraint, link rule or processor setting is invalid."""


class CausalCycleError(CausalError, TerminalError):
    """An event names, directly or through waiting events, a cause that names it back."""

    def __init__(self, event_id: str, cause_id: str) -> None:
        self.event_id = event_id
        self.cause_id = cause_id
        if event_id == cause_id:
            what = f"event {event_id!r} names itself as its own cause"
        else:
            what = (
                f"event {event_id!r} names {cause_id!r} as a cause, but {cause_id!r} is "
                f"(transitively) waiting for {event_id!r} as one of its causes"
            )
        super().__init__(
            f"causal cycle: {what}. Causality must be acyclic: fix caused_by on one of them."
        )


class DuplicateEventError(CausalError, TerminalError):
    """Two events carry the same id."""

    def __init__(self, event_id: str, first_name: str | None, second_name: str) -> None:
        self.event_id = event_id
        self.first_name = first_name
        self.second_name = second_name
        first = f" (first seen as {first_name!r})" if first_name else ""
        super().__init__(
            f"duplicate event id {event_id!r}{first}, again as {second_name!r}. Event ids must "
            f"be unique: leave id=None to have one generated."
        )


class CausalSourceError(CausalError, SourceError):
    """An event source raised while the processor was reading it."""

    def __init__(self, source: str, error: BaseException) -> None:
        self.source = source
        self.error_type = type(error).__name__
        self.error_message = str(error)
        self.message = (
            f"causal source {source!r} failed: {self.error_type}: {self.error_message}. The "
            f"other sources went on; set StreamProcessor(fail_on_error=True) to stop the run."
        )
        self.pipeline = source
        self.detail = f"{self.error_type}: {self.error_message}"
        Exception.__init__(self, self.message)
