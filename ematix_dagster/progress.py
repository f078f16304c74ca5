"""Load progress in the Dagster run log: each phase, and rows read while a source streams."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ematix_engine import LoadProgress

__all__ = ["ProgressLog"]


class ProgressLog:
    """An ``on_progress`` callback writing to a Dagster logger, throttled.

    A line for every phase a target enters, and while a source streams, at most one line per
    ``every_s`` seconds with the rows read so far. ``committed`` is left to the resource, which
    logs the counts.
    """

    def __init__(
        self, log: Any, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._last: dict[str, tuple[str, float]] = {}

    def __call__(self, event: LoadProgress) -> None:
        """Log ``event`` if it starts a phase or the last line is ``every_s`` old."""
        if event.committed:
            return
        now = self._clock()
        phase, logged_at = self._last.get(event.target, ("", float("-inf")))
        if event.phase != phase:
            self._log.info(f"ematix: {event.target}: {event.phase}")
        elif now - logged_at >= self._every_s:
            self._log.info(
                f"ematix: {event.target}: {event.phase}, {event.rows_read:,} rows so far"
            )
        else:
            return
        self._last[event.target] = (event.phase, now)
