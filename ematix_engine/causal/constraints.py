"""Constraints and violations: ``must_match`` and ``never`` as frozen specs.

The specs here only say *what* must hold; :mod:`ematix_engine.causal.engine` checks them
incrementally, one event at a time, without rescanning the window:

``must_match(trigger, response)``
    Every event matching ``trigger`` must be causally followed by an event matching
    ``response`` (the response has the trigger in its causal past). Open triggers are tracked per
    event as the set of *open triggers in its causal past*; a response closes exactly that set. A
    violation fires when ``within`` runs out (``within=N``: the N events processed after the
    trigger, all sources counted; ``within=timedelta(...)``: event time, i.e. once an event
    arrives whose timestamp is more than that past the trigger's), when the window would have to
    evict the still-open trigger, or at the end of the stream.

``never(pattern)``
    ``never("A")`` fires for every A. ``never(("A", "B"))`` fires for every pair where an A
    causally precedes a B. ``never(("A", "B"), within_cause="C")`` fires for every pair of
    distinct events, one matching A and one matching B, that share a common cause matching C (a C
    event in the causal past of both); the two need not be causally ordered with respect to each
    other, so two alerts fanned out from one reading are caught. Each such pair is reported once
    (when its later event arrives), with the earliest common C still retained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.causal.patterns import Pattern, as_pattern, as_spec

if TYPE_CHECKING:
    from ematix_engine.causal.events import Event

__all__ = ["MustMatch", "Never", "Violation", "ViolationKind", "must_match", "never"]

ViolationKind = str
"""One of ``"never"``, ``"timeout"``, ``"evicted"``, ``"end_of_stream"``."""

KINDS = ("never", "timeout", "evicted", "end_of_stream")


def _check_within(name: str, within: object) -> int | timedelta | None:
    if within is None:
        return None
    if isinstance(within, bool) or not isinstance(within, int | timedelta):
        raise CausalConfigError(
            f"must_match {name!r}: within= is a number of events (int) or a duration "
            f"(datetime.timedelta), got {within!r}"
        )
    if isinstance(within, int) and within < 1:
        raise CausalConfigError(f"must_match {name!r}: within={within} events must be >= 1")
    if isinstance(within, timedelta) and within <= timedelta(0):
        raise CausalConfigError(f"must_match {name!r}: within={within} must be positive")
    return within


@dataclass(frozen=True, slots=True)
class MustMatch:
    """Every ``trigger`` event must be causally followed by a ``response`` event.

    Build it with :func:`must_match`.
    """

    trigger: Pattern
    response: Pattern
    name: str
    within: int | timedelta | None = None

    def __post_init__(self) -> None:
        _check_within(self.name, self.within)


@dataclass(frozen=True, slots=True)
class Never:
    """A pattern that must never occur. Build it with :func:`never`."""

    pattern: Pattern | tuple[Pattern, Pattern]
    name: str
    within_cause: Pattern | None = None


def must_match(
    trigger: str | Pattern,
    response: str | Pattern,
    name: str | None = None,
    within: int | timedelta | None = None,
    *,
    within_ms: float | None = None,
) -> MustMatch:
    """Require every ``trigger`` to be causally followed by a ``response``.

    Args:
        trigger: Pattern of the events that open an obligation.
        response: Pattern of the events that fulfil it; a response fulfils every open trigger
            in its causal past.
        name: The constraint's name, carried by its violations; generated when ``None``.
        within: ``None`` (until the end of the stream), an ``int`` N (the response must be among
            the N events processed after the trigger) or a ``timedelta`` (event time).
        within_ms: The same as ``within=timedelta(milliseconds=within_ms)``.

    Returns:
        The constraint, to pass to :meth:`StreamProcessor.enforce`.

    Raises:
        CausalConfigError: On a bad pattern or ``within``.

    Examples:
        >>> rule = must_match("Sensor.critical_reading", "Alerter.alert", name="critical")
        >>> rule.within is None
        True
    """
    trig = as_pattern(trigger, role="must_match trigger")
    resp = as_pattern(response, role="must_match response")
    label = name or f"must_match({trig} -> {resp})"
    if within_ms is not None:
        if within is not None:
            raise CausalConfigError(f"must_match {label!r}: give within= or within_ms=, not both")
        if isinstance(within_ms, bool) or not isinstance(within_ms, int | float):
            raise CausalConfigError(
                f"must_match {label!r}: within_ms= is a number of milliseconds, got {within_ms!r}"
            )
        within = timedelta(milliseconds=within_ms)
    return MustMatch(trig, resp, label, _check_within(label, within))


def never(
    pattern: str | Pattern | tuple[str | Pattern, str | Pattern],
    within_cause: str | Pattern | None = None,
    name: str | None = None,
) -> Never:
    """Forbid a pattern.

    Args:
        pattern: ``"A"`` (every A is a violation), or ``("A", "B")`` (every A that causally
            precedes a B; with ``within_cause``, every A and B that share a common cause).
        within_cause: Pattern of the common cause that scopes a pair (see the module docs);
            with a single pattern, every A that has such a cause in its past.
        name: The constraint's name, carried by its violations; generated when ``None``.

    Returns:
        The constraint, to pass to :meth:`StreamProcessor.enforce`.

    Raises:
        CausalConfigError: On a bad pattern.

    Examples:
        >>> rule = never(("Alerter.alert", "Alerter.alert"), within_cause="Sensor.reading")
        >>> rule.within_cause.name
        'Sensor.reading'
    """
    spec = as_spec(pattern, role="never pattern")
    scope = None if within_cause is None else as_pattern(within_cause, role="within_cause")
    if name is None:
        shown = f"({spec[0]}, {spec[1]})" if isinstance(spec, tuple) else str(spec)
        name = f"never({shown}" + (f", within_cause={scope})" if scope else ")")
    return Never(spec, name, scope)


@dataclass(frozen=True, slots=True)
class Violation:
    """One violation of a constraint.

    Attributes:
        constraint: The constraint's name.
        kind: ``"never"`` (a forbidden pattern occurred), ``"timeout"`` (``within`` ran out),
            ``"evicted"`` (the window had to evict the open trigger) or ``"end_of_stream"``.
        events: The events involved: ``(trigger,)`` for ``must_match``; the matched events for
            ``never`` (``(a, b)`` for a pair, ``(cause, a, b)`` with ``within_cause``).
        seq: How many events the processor had processed when it fired.
        detected_at: Wall-clock time (``time.time()``) when it fired.
    """

    constraint: str
    kind: ViolationKind
    events: tuple[Event, ...]
    seq: int
    detected_at: float = field(default_factory=time.time)

    @property
    def constraint_name(self) -> str:
        """PyRapide's name for :attr:`constraint`."""
        return self.constraint

    @property
    def violation_type(self) -> str:
        """PyRapide's name for :attr:`kind`."""
        return self.kind

    @property
    def matched_events(self) -> list[Event]:
        """PyRapide's name for :attr:`events` (as a list)."""
        return list(self.events)

    @property
    def description(self) -> str:
        """A one-line human description."""
        ids = ", ".join(f"{e.name}#{e.id}" for e in self.events)
        what = {
            "never": "forbidden pattern occurred",
            "timeout": "trigger not matched within its limit",
            "evicted": "trigger evicted from the window unmatched",
            "end_of_stream": "trigger unmatched at the end of the stream",
        }.get(self.kind, self.kind)
        return f"{self.constraint}: {what} ({ids})"
