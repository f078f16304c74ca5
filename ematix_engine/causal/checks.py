"""Constraint bookkeeping for :class:`~ematix_engine.causal.engine.CausalEngine`.

``must_match``: a trigger is *open* in its constraint's dict and pins its node (the window holds
it past its turn, see :mod:`~ematix_engine.causal.graph`). A response closes every open trigger
in its summary set (the open triggers in its causal past) and hands its effects an empty set, so
closed triggers stop travelling. Deadlines: ``within=N`` keeps a FIFO of ``(seq + N, trigger)``
(arrival order makes it sorted), ``within=timedelta`` a heap on event time; both are checked
at the head only, once per event.

``never``: single patterns fire per event; pairs read the A-summary of each B; ``within_cause``
files each A and B event under every retained C in its past (``under_a`` / ``under_b``), so a
new event meets exactly the partners that share a C with it, each pair once.

Violations found while processing an event are queued in ``_fired`` and delivered after the
event's watches (see the engine's module docs).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from ematix_engine.causal.constraints import Violation
from ematix_engine.causal.graph import EMPTY, Node

if TYPE_CHECKING:
    from ematix_engine.causal.events import Event
    from ematix_engine.causal.graph import Retained
    from ematix_engine.causal.plans import MustState, Plan, ScopedNever

__all__ = ["ConstraintChecks"]


def _seq(node: Node) -> int:
    return node.seq


class ConstraintChecks:
    """Mixin of the engine: ``must_match`` and ``never`` (state lives on the engine)."""

    retained: Retained
    seq: int
    stream_time: float
    violation_count: int
    _fired: list[Violation]
    _timed: list[MustState]

    @staticmethod
    def _alive_sorted(found: frozenset) -> list[Node]:
        alive = [n for n in found if n.alive]
        if len(alive) > 1:
            alive.sort(key=_seq)
        return alive

    # ----------------------------------------------------------------- must_match
    def _deadlines(self, plan: Plan, node: Node) -> None:
        """File a trigger just opened (the engine did that inline) under its deadlines."""
        for must in plan.timed_triggers:
            if must.dq is not None:
                must.dq.append((node.seq + int(must.seconds), node))
            elif must.heap is not None:
                heapq.heappush(must.heap, (node.event.timestamp + must.seconds, node.seq, node))

    def _respond(self, plan: Plan, sets: tuple[frozenset, ...]) -> tuple[frozenset, ...]:
        released = self.retained.released
        updated = None
        for must, tracker in plan.responses:
            pending = sets[tracker]
            if not pending:
                continue
            open_ = must.open
            if type(pending) is Node:  # one trigger: no iterator
                pending = (pending,)
            for trigger in pending:
                if trigger in open_:
                    del open_[trigger]
                    must.matched += 1
                    trigger.pins -= 1
                    if not trigger.pins and trigger.held:
                        released.append(trigger)
            if updated is None:
                updated = list(sets)
            updated[tracker] = EMPTY
        return sets if updated is None else tuple(updated)

    def _unpin(self, node: Node) -> None:
        node.pins -= 1
        if not node.pins:
            self.retained.unpinned(node)

    def _fail(self, must: MustState, node: Node, kind: str) -> None:
        del must.open[node]
        self._unpin(node)
        self._violate(must.name, kind, (node.event,))

    def _expire(self, seq: int, timestamp: float) -> None:
        if timestamp > self.stream_time:
            self.stream_time = timestamp
        now = self.stream_time
        for must in self._timed:
            dq = must.dq
            if dq is not None:
                while dq and dq[0][0] < seq:
                    node = dq.popleft()[1]
                    if node in must.open:
                        self._fail(must, node, "timeout")
            else:
                heap = must.heap
                while heap and heap[0][0] < now:
                    node = heapq.heappop(heap)[2]
                    if node in must.open:
                        self._fail(must, node, "timeout")

    # ----------------------------------------------------------------- never
    def _nevers(self, node: Node, plan: Plan, sets: tuple[frozenset, ...]) -> None:
        event = node.event
        for name in plan.never1:
            self._violate(name, "never", (event,))
        for tracker, name in plan.never1s:
            scope = self._alive_sorted(sets[tracker])
            if scope:
                self._violate(name, "never", (scope[0].event, event))
        for tracker, name in plan.never2:
            for a in self._alive_sorted(sets[tracker]):
                self._violate(name, "never", (a.event, event))
        for scoped, is_a, is_b in plan.neverc:
            self._scoped_pairs(scoped, node, is_a, is_b, sets[scoped.tracker])

    def _scoped_pairs(
        self, scoped: ScopedNever, node: Node, is_a: bool, is_b: bool, scope: frozenset
    ) -> None:
        if not scope:
            return
        partners: dict[Node, Node] = {}
        same = scoped.under_a is scoped.under_b
        for c in self._alive_sorted(scope):
            lists = []
            if is_a:
                lists.append(scoped.under_b.get(c))
            if is_b and not (same and is_a):
                lists.append(scoped.under_a.get(c))
            for members in lists:
                if members:
                    for x in members:
                        if x.alive and x not in partners:
                            partners[x] = c
            if is_a:
                scoped.under_a.setdefault(c, []).append(node)
            if is_b and not same:
                scoped.under_b.setdefault(c, []).append(node)
        for x in sorted(partners, key=_seq):
            self._violate(scoped.name, "never", (partners[x].event, x.event, node.event))

    def _violate(self, name: str, kind: str, events: tuple[Event, ...]) -> None:
        self.violation_count += 1
        self._fired.append(Violation(name, kind, events, self.seq))
