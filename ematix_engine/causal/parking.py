"""Parking: events that arrive before one of their causes wait for it.

Sources are consumed concurrently, so an effect from one source can overtake its cause from
another. Such an event is *parked*: filed under each missing cause id in ``_waiting``. When an
event is processed, the events whose last missing cause it was are released through a queue
(not recursion), so a long chain that arrived backwards is released in causal order without
deep stacks. Parking a cycle — an event waiting, through other parked events, for itself — is a
:class:`~ematix_engine.causal.errors.CausalCycleError` naming both ids. When more than
``max_parked`` events wait, or the stream ends, the oldest is processed without its missing
causes (counted in ``missing_causes``; a warning is logged for the first ten and then every
10,000th).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ematix_engine.causal.errors import CausalCycleError

if TYPE_CHECKING:
    from ematix_engine.causal.events import Event

__all__ = ["Parking"]

log = logging.getLogger("ematix.causal")


class Parking:
    """Mixin of the engine: parked events and their release (state lives on the engine)."""

    max_parked: int
    missing_causes: int
    parked_total: int
    _forced: int
    _parked: dict[str, list[Any]]
    _waiting: dict[str, list[list[Any]]]
    _ready: deque[Event]
    _releasing: bool

    def ingest(self, event: Event, force: bool = False) -> None:  # pragma: no cover
        """Process one event; the engine's own ``ingest`` (declared here for the release)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- parking
    def _park(self, event: Event, missing: list[str]) -> None:
        eid = event.id
        parked = self._parked
        for cid in missing:
            if cid in parked:
                stack, seen = [cid], set()
                while stack:
                    x = stack.pop()
                    if x in seen or x not in parked:
                        continue
                    seen.add(x)
                    for y in parked[x][1]:
                        if y == eid:
                            raise CausalCycleError(eid, cid)
                        stack.append(y)
        entry = [event, set(missing)]
        parked[eid] = entry
        for cid in entry[1]:
            self._waiting.setdefault(cid, []).append(entry)
        self.parked_total += 1
        if len(parked) > self.max_parked:
            self._force(next(iter(parked)))

    def _release(self, eid: str) -> None:
        """``eid`` was just processed: process the parked events it was the last missing cause of.

        Iterative (a queue, not recursion), so a long chain that arrived backwards is released
        without deep stacks; events released while releasing join the same queue.
        """
        ready = self._ready
        entries = self._waiting.pop(eid, None)
        if entries:
            parked = self._parked
            for entry in entries:
                missing = entry[1]
                missing.discard(eid)
                if not missing and parked.pop(entry[0].id, None) is not None:
                    ready.append(entry[0])
        if self._releasing or not ready:
            return
        self._releasing = True
        try:
            while ready:
                self.ingest(ready.popleft(), force=True)
        finally:
            self._releasing = False

    def _missing(self, event: Event, missing: list[str]) -> None:
        self.missing_causes += len(missing)
        self._forced += 1
        if self._forced <= 10 or self._forced % 10_000 == 0:
            log.warning(
                "event %r (%s) processed without causes that never arrived: %s "
                "(%d such events so far; stats['missing_causes'] counts the causes)",
                event.id,
                event.name,
                ", ".join(sorted(missing)),
                self._forced,
            )

    def _force(self, eid: str) -> None:
        event, missing = self._parked.pop(eid)
        for cid in missing:
            entries = self._waiting.get(cid)
            if entries is not None:
                entries[:] = [e for e in entries if e[0].id != eid]
                if not entries:
                    del self._waiting[cid]
        self.ingest(event, force=True)
