"""Watches: callbacks on single events or on causal pairs.

``watch("A", cb)`` calls ``cb(event)`` for every A. ``watch(("A", "B"), cb)`` calls
``cb(cause, effect)`` once for every pair where an A causally precedes a B (transitively, through
``caused_by`` and link rules), when the B arrives; several A's in one B's past are reported oldest
first. Callbacks may be plain functions or coroutine functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ematix_engine.causal.errors import CausalConfigError
from ematix_engine.causal.patterns import Pattern, as_spec

__all__ = ["Watch", "watch"]


@dataclass(frozen=True, slots=True)
class Watch:
    """A pattern and the callback to call on each of its matches. Build it with :func:`watch`."""

    pattern: Pattern | tuple[Pattern, Pattern]
    callback: Callable[..., Any]

    @property
    def is_pair(self) -> bool:
        """Whether this watches a causal pair (callback takes ``(cause, effect)``)."""
        return isinstance(self.pattern, tuple)


def watch(pattern: object, callback: Callable[..., Any]) -> Watch:
    """Describe a watch, for :meth:`StreamProcessor.watch`.

    Args:
        pattern: An event name (wildcards allowed), a :class:`Pattern`, or a pair
            ``(cause, effect)`` of them.
        callback: ``callback(event)`` for a single pattern, ``callback(cause, effect)`` for a
            pair; sync or async.

    Returns:
        The watch.

    Raises:
        CausalConfigError: On a bad pattern or a callback that is not callable.

    Examples:
        >>> w = watch(("Sensor.reading", "Alerter.alert"), lambda cause, effect: None)
        >>> w.is_pair
        True
    """
    spec = as_spec(pattern, role="watch pattern")
    if not callable(callback):
        raise CausalConfigError(f"watch {pattern!r}: callback must be callable, got {callback!r}")
    return Watch(spec, callback)
