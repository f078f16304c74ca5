"""Event patterns: which events a watch, a constraint or a link rule is about.

A *single* pattern is an event name — exact (``"Sensor.reading"``) or with shell wildcards
(``"Sensor.*"``, ``"*.alert"``, ``"Sensor.?"``) — optionally narrowed by filters on the event's
``data`` (``pattern("Sensor.reading", level="critical")``, or a predicate per field, or one on the
whole event). A *pair* pattern ``(A, B)`` means "an A that causally precedes a B": A is in B's
causal past through ``caused_by`` and link rules, transitively; being merely earlier in time or
in arrival never counts.

Patterns are compiled once. The processor asks the name part of every pattern once per distinct
event name and caches the answer (an exact name is a string comparison, a wildcard a compiled
regex from :func:`fnmatch.translate`), so per event only a dict lookup remains, plus the data
filters of the patterns whose name matched.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from ematix_engine.causal.errors import CausalConfigError

if TYPE_CHECKING:
    from ematix_engine.causal.events import Event

__all__ = [
    "PairLike",
    "Pattern",
    "PatternLike",
    "SpecLike",
    "as_pattern",
    "as_spec",
    "pattern",
]

_WILDCARD = re.compile(r"[*?\[]")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Pattern:
    """A single-event pattern: a name (wildcards allowed) and optional data filters.

    Args:
        name: Exact event name or a shell-style wildcard (``"Sensor.*"``; ``"*"`` = any).
        data: Field filters: ``{field: value}`` requires ``event.data[field] == value``;
            ``{field: callable}`` requires ``callable(event.data[field])`` to be true. A missing
            field never matches.
        where: A predicate on the whole event, applied after the field filters.

    Examples:
        >>> hot = Pattern("Sensor.reading", data={"temperature": lambda t: t > 100})
        >>> hot.name
        'Sensor.reading'
    """

    name: str
    data: Mapping[str, Any] = field(default_factory=dict)
    where: Callable[[Event], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CausalConfigError(
                f"a pattern needs a non-empty event name (or wildcard), got {self.name!r}"
            )
        if not isinstance(self.data, Mapping):
            raise CausalConfigError(
                f"pattern {self.name!r}: data filters must be a mapping of field -> value or "
                f"predicate, got {type(self.data).__name__}"
            )
        if self.where is not None and not callable(self.where):
            raise CausalConfigError(f"pattern {self.name!r}: where= must be callable")

    @property
    def is_wildcard(self) -> bool:
        """Whether the name holds shell wildcards (``*``, ``?``, ``[...]``)."""
        return _WILDCARD.search(self.name) is not None

    @property
    def filtered(self) -> bool:
        """Whether matching needs the event's data, not only its name."""
        return bool(self.data) or self.where is not None

    def name_matcher(self) -> Callable[[str], bool]:
        """Return a function ``name -> bool`` for the name part of the pattern."""
        if self.name == "*":
            return lambda _name: True
        if not self.is_wildcard:
            exact = self.name
            return exact.__eq__
        regex = re.compile(fnmatch.translate(self.name))
        return lambda name: regex.match(name) is not None

    def data_matcher(self) -> Callable[[Event], bool] | None:
        """Return the data part as a predicate on the event, or ``None`` when there is none."""
        if not self.filtered:
            return None
        checks = tuple((key, value, callable(value)) for key, value in self.data.items())
        where = self.where

        def accepts(event: Event) -> bool:
            data = event.data
            for key, expected, is_predicate in checks:
                value = data.get(key, _MISSING)
                if value is _MISSING:
                    return False
                if is_predicate:
                    if not expected(value):
                        return False
                elif value != expected:
                    return False
            return where is None or bool(where(event))

        return accepts

    def key(self) -> tuple[Any, ...]:
        """A hashable identity: equal patterns share one compiled slot in the processor."""
        items = []
        for name, value in sorted(self.data.items()):
            try:
                hash(value)
                items.append((name, value))
            except TypeError:
                items.append((name, id(value)))
        return (self.name, tuple(items), id(self.where) if self.where is not None else None)

    def __str__(self) -> str:
        if not self.filtered:
            return self.name
        filters = ", ".join(f"{k}={v!r}" for k, v in self.data.items())
        if self.where is not None:
            filters = ", ".join(x for x in (filters, "where=…") if x)
        return f"{self.name}[{filters}]"


PatternLike: TypeAlias = "str | Pattern"
PairLike: TypeAlias = "tuple[str | Pattern, str | Pattern]"
SpecLike: TypeAlias = "str | Pattern | tuple[str | Pattern, str | Pattern]"


def pattern(name: str, where: Callable[[Event], bool] | None = None, **fields: Any) -> Pattern:
    """Build a single-event :class:`Pattern`.

    Args:
        name: Exact event name or a wildcard (``"Sensor.*"``).
        where: Optional predicate on the whole event.
        **fields: Data filters, ``field=value`` or ``field=predicate``.

    Returns:
        The pattern.

    Examples:
        >>> critical = pattern("Sensor.reading", level="critical")
        >>> hot = pattern("Sensor.*", temperature=lambda t: t > 100)
    """
    return Pattern(name, data=fields, where=where)


def as_pattern(value: object, *, role: str = "pattern") -> Pattern:
    """Turn a name or a :class:`Pattern` into a :class:`Pattern`.

    Args:
        value: An event name (wildcards allowed) or a :class:`Pattern`.
        role: What the value is for, used in the error message.

    Returns:
        The pattern.

    Raises:
        CausalConfigError: When the value is neither.
    """
    if isinstance(value, Pattern):
        return value
    if isinstance(value, str):
        return Pattern(value)
    raise CausalConfigError(
        f"{role} must be an event name such as 'Sensor.reading' (wildcards allowed) or a "
        f"Pattern, got {value!r}"
    )


def as_spec(value: object, *, role: str = "pattern") -> Pattern | tuple[Pattern, Pattern]:
    """Turn a single pattern or a ``(cause, effect)`` pair into compiled-ready patterns.

    Args:
        value: A name, a :class:`Pattern`, or a 2-tuple of them (cause first).
        role: What the value is for, used in the error message.

    Returns:
        A :class:`Pattern`, or a tuple ``(cause, effect)`` of two.

    Raises:
        CausalConfigError: When the value is none of these.
    """
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise CausalConfigError(
                f"a pair {role} is (cause, effect), two patterns; got {len(value)} items: {value!r}"
            )
        return (as_pattern(value[0], role=role), as_pattern(value[1], role=role))
    return as_pattern(value, role=role)
