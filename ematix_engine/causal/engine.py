"""The synchronous heart of the processor: one event in, matches and violations out.

:class:`CausalEngine` holds no asyncio; :class:`~ematix_engine.causal.processor.StreamProcessor`
feeds it one event at a time, so processing an event is atomic with respect to the others.

Per event, in this order:

1. **Causes.** ``caused_by`` ids are looked up among the retained events. An id not seen yet
   *parks* the event until that cause arrives (sources are concurrent, so an effect can overtake
   its cause); a parked event waiting, through other parked events, for itself is a
   :class:`CausalCycleError` naming both ids. An id that was seen and already evicted is dropped
   (the window is the horizon; counted as ``late_causes``). Link rules add the retained events
   whose ``data[on]`` equals this event's (an index per rule, no scan).
2. **Plan.** The name is looked up once in a per-name cache of *which patterns match* (data
   filters are applied per event, only for patterns whose name matched) and of *what to do*.
3. **Summaries.** For every tracked pattern the event gets the set of relevant events in its
   causal past: the union over its direct causes of (their set + the cause itself when it
   matches). One cause that adds nothing → the cause's tuple is shared, no allocation.
4. **Matching.** A ``must_match`` response closes every open trigger in its set; a pair watch or
   ``never((A, B))`` reads the A-set of a B; ``within_cause`` reads the C-set and an index of the
   A/B events filed under each C. Nothing rescans the window, and cost is proportional to the
   number of results.
5. **Window.** The event is retained; if the window is over its size, the oldest unpinned event
   leaves (see :mod:`~ematix_engine.causal.graph`).
6. **Callbacks.** Only then: ``on_event``, the watches, and the violations found in steps 1-5,
   in that order, so a callback sees the window already trimmed.

A pair ``(a, b)`` is reported when ``b`` arrives if ``a`` causally precedes ``b`` and ``a`` is
still retained then; without a window nothing is evicted, so the result is exactly the pairs of
the whole poset.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ematix_engine.causal.constraints import MustMatch, Never, Violation
from ematix_engine.causal.errors import CausalCycleError, DuplicateEventError
from ematix_engine.causal.events import Event
from ematix_engine.causal.graph import EMPTY, Node, Retained
from ematix_engine.causal.plans import ANC, LinkRule, MustState, Plan, Plans, ScopedNever, WatchSpec

__all__ = ["CausalEngine"]

log = logging.getLogger("ematix.causal")


def _seq(node: Node) -> int:
    return node.seq


class CausalEngine:
    """Incremental causal matching over a bounded window (see the module docstring).

    Args:
        watches: Watches to serve.
        constraints: ``must_match`` / ``never`` constraints to check.
        links: Link rules adding causes by correlation value.
        window_size: Most events held, or ``None`` for no limit.
        call: ``call(callback, *args)``: runs a user callback (errors and awaitables handled
            by the caller).
        on_event: Callbacks for every event (the processor's live list).
        on_violation: Called with every :class:`Violation`.
        max_parked: Most events waiting for a cause; beyond it the oldest is processed without
            its missing causes.
        retained: The retained-events store to fill (a new one when ``None``).
    """

    def __init__(
        self,
        watches: Sequence[WatchSpec],
        constraints: Sequence[MustMatch | Never],
        links: Sequence[LinkRule],
        window_size: int | None,
        call: Callable[..., None],
        on_event: list[Callable],
        on_violation: Callable[[Violation], None],
        max_parked: int = 10_000,
        retained: Retained | None = None,
    ) -> None:
        plans = Plans(watches, constraints, links)
        self._by_name = plans.by_name
        self._plan_slow = plans.plan_slow
        self._trackers = plans.trackers
        self._musts = plans.musts
        self._scoped = plans.scoped
        self._timed = plans.timed
        self._ntrackers = len(plans.trackers)
        self._empty_sets = plans.empty_sets
        self.retained = Retained() if retained is None else retained
        self.limit = window_size
        self._call = call
        self._on_event = on_event
        self._on_violation = on_violation
        self.max_parked = max_parked
        self._parked: dict[str, list[Any]] = {}
        self._waiting: dict[str, list[list[Any]]] = {}
        self.seq = 0
        self.stream_time = float("-inf")
        self.matches = 0
        self.violation_count = 0
        self.evictions = 0
        self.late_causes = 0
        self.missing_causes = 0
        self.parked_total = 0
        self._fired: list[Violation] = []
        self._forced = 0

    # ----------------------------------------------------------------- ingestion
    def ingest(self, event: Event) -> None:
        """Process one event (or park it until its causes arrive).

        Raises:
            DuplicateEventError: The id was already seen (retained, recently evicted or parked).
            CausalCycleError: The event names itself, or a parked event waiting for it.
        """
        eid = event.id
        retained = self.retained
        nodes = retained.nodes
        if eid in nodes or eid in self._parked or retained.was_evicted(eid):
            first = nodes[eid].event.name if eid in nodes else None
            raise DuplicateEventError(eid, first, event.name)
        cause_ids = event.caused_by
        if not cause_ids:
            self._add(event, None)
        else:
            causes = []
            missing = None
            for cid in cause_ids:
                node = nodes.get(cid)
                if node is not None:
                    causes.append(node)
                elif cid == eid:
                    raise CausalCycleError(eid, eid)
                elif cid in retained.gone or cid in retained.gone_old:
                    self.late_causes += 1
                elif missing is None:
                    missing = [cid]
                else:
                    missing.append(cid)
            if missing:
                self._park(event, missing)
                return
            self._add(event, causes)
        if self._waiting:
            self._release(eid)

    def _add(self, event: Event, causes: list[Node] | None) -> None:
        seq = self.seq = self.seq + 1
        plan = self._by_name.get(event.name) or self._plan_slow(event)
        if plan.link_effects:
            causes = self._link(event, plan, causes)
        if self._timed:
            self._expire(seq, event.timestamp)
        if not self._ntrackers:
            sets: tuple[frozenset, ...] = ()
        elif not causes:
            sets = self._empty_sets
        elif len(causes) == 1:
            cause = causes[0]
            sets = cause.out or self._out(cause)
        else:
            sets = self._merge(causes)
        if plan.responses:
            sets = self._respond(plan, sets)
        node = Node(event, seq, plan, sets)
        if not plan.contrib:
            node.out = sets
        retained = self.retained
        retained.nodes[event.id] = node
        retained.order.append(node)
        retained.count += 1
        if plan.triggers:
            self._open(plan, node)
        if plan.link_causes:
            for rule in plan.link_causes:
                value = event.data.get(rule.on)
                if value is not None:
                    rule.index.setdefault(value, []).append(node)
        pairs = None
        if plan.watch2:
            pairs = []
            for tracker, cb in plan.watch2:
                found = sets[tracker]
                if found:
                    pairs.append((cb, self._alive_sorted(found)))
        if plan.nevers:
            self._nevers(node, plan, sets)
        if self.limit is not None and retained.count > self.limit:
            self._evict()
        call = self._call
        for cb in self._on_event:
            call(cb, event)
        if plan.watch1:
            for cb in plan.watch1:
                self.matches += 1
                call(cb, event)
        if pairs:
            for cb, found in pairs:
                for a in found:
                    self.matches += 1
                    call(cb, a.event, event)
        if self._fired:
            self._flush()

    def _flush(self) -> None:
        fired, self._fired = self._fired, []
        for violation in fired:
            self._on_violation(violation)

    # ----------------------------------------------------------------- summaries
    def _out(self, cause: Node) -> tuple[frozenset, ...]:
        """The sets ``cause`` passes to its effects: its own, plus itself where it matches."""
        hits = cause.plan.hits
        out = list(cause.sets)
        for i, (kind, arg) in enumerate(self._trackers):
            if kind == ANC:
                if not hits[arg]:
                    continue
                keep = [m for m in out[i] if m.alive]
            else:
                if cause not in arg.open:
                    continue
                keep = [m for m in out[i] if m in arg.open]
            keep.append(cause)
            out[i] = frozenset(keep)
        result = cause.out = tuple(out)
        return result

    def _merge(self, causes: list[Node]) -> tuple[frozenset, ...]:
        outs = [c.out or self._out(c) for c in causes]
        first = outs[0]
        merged = []
        for i in range(self._ntrackers):
            acc = first[i]
            for out in outs[1:]:
                s = out[i]
                if s and s is not acc:
                    acc = acc | s if acc else s
            merged.append(acc)
        return tuple(merged)

    @staticmethod
    def _alive_sorted(found: frozenset) -> list[Node]:
        alive = [n for n in found if n.alive]
        if len(alive) > 1:
            alive.sort(key=_seq)
        return alive

    def _link(self, event: Event, plan: Plan, causes: list[Node] | None) -> list[Node] | None:
        for rule in plan.link_effects:
            value = event.data.get(rule.on)
            if value is None:
                continue
            linked = rule.index.get(value)
            if not linked:
                continue
            for node in linked:
                if node.alive:
                    if causes is None:
                        causes = [node]
                    elif node not in causes:
                        causes.append(node)
        return causes

    # ----------------------------------------------------------------- must_match
    def _open(self, plan: Plan, node: Node) -> None:
        for must in plan.triggers:
            must.open[node] = None
            node.pins += 1
            if must.dq is not None:
                must.dq.append((node.seq + int(must.seconds), node))
            elif must.heap is not None:
                heapq.heappush(must.heap, (node.event.timestamp + must.seconds, node.seq, node))

    def _respond(self, plan: Plan, sets: tuple[frozenset, ...]) -> tuple[frozenset, ...]:
        updated = list(sets)
        for must, tracker in plan.responses:
            pending = updated[tracker]
            if pending:
                open_ = must.open
                for trigger in pending:
                    if trigger in open_:
                        del open_[trigger]
                        must.matched += 1
                        self._unpin(trigger)
                updated[tracker] = EMPTY
        return tuple(updated)

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

    # ----------------------------------------------------------------- window
    def _evict(self) -> None:
        retained = self.retained
        limit = self.limit
        max_held = limit // 2
        while retained.count > limit:
            node = retained.next_victim(max_held)
            if node is None:
                return
            if node.pins:
                for must in self._musts:
                    if node in must.open:
                        self._fail(must, node, "evicted")
            if node.plan.on_evict:
                self._forget(node)
            retained.remove(node)
            self.evictions += 1

    def _forget(self, node: Node) -> None:
        hits = node.plan.hits
        for scoped in self._scoped:
            if hits[scoped.c_slot]:
                scoped.under_a.pop(node, None)
                scoped.under_b.pop(node, None)
        for rule in node.plan.link_causes:
            value = node.event.data.get(rule.on)
            linked = rule.index.get(value)
            if linked is not None:
                if node in linked:
                    linked.remove(node)
                if not linked:
                    del rule.index[value]

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
        """``eid`` was just processed: process the parked events it was the last missing cause of."""
        work = [eid]
        waiting = self._waiting
        parked = self._parked
        while work:
            arrived = work.pop()
            entries = waiting.pop(arrived, None)
            if not entries:
                continue
            for entry in entries:
                missing = entry[1]
                missing.discard(arrived)
                if not missing:
                    event = entry[0]
                    if parked.pop(event.id, None) is not None:
                        self._add(event, self._resolve(event))
                        work.append(event.id)

    def _resolve(self, event: Event) -> list[Node]:
        nodes = self.retained.nodes
        causes = []
        for cid in event.caused_by:
            node = nodes.get(cid)
            if node is not None:
                causes.append(node)
            elif self.retained.was_evicted(cid):
                self.late_causes += 1
        return causes

    def _force(self, eid: str) -> None:
        event, missing = self._parked.pop(eid)
        for cid in missing:
            entries = self._waiting.get(cid)
            if entries is not None:
                entries[:] = [e for e in entries if e[0].id != eid]
                if not entries:
                    del self._waiting[cid]
        self.missing_causes += len(missing)
        self._forced += 1
        if self._forced <= 10 or self._forced % 10_000 == 0:
            log.warning(
                "event %r (%s) processed without causes that never arrived: %s "
                "(%d such events so far; stats['missing_causes'] counts the causes)",
                eid,
                event.name,
                ", ".join(sorted(missing)),
                self._forced,
            )
        self._add(event, self._resolve(event))
        self._release(eid)

    @property
    def parked(self) -> int:
        """How many events are waiting for a cause."""
        return len(self._parked)

    def finish(self) -> None:
        """End of stream: process parked events, then report every open trigger."""
        while self._parked:
            self._force(next(iter(self._parked)))
        for must in self._musts:
            for node in sorted(must.open, key=_seq):
                self._fail(must, node, "end_of_stream")
        if self._fired:
            self._flush()

    def open_triggers(self) -> dict[str, list[Event]]:
        """Open ``must_match`` triggers by constraint name, oldest first."""
        return {m.name: [n.event for n in sorted(m.open, key=_seq)] for m in self._musts}
