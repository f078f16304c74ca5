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
   matches). One cause that adds nothing → the cause's tuple is shared, no allocation; one
   that matches → one shared :class:`~ematix_engine.causal.graph.Cons` cell in front of its
   own summary.
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

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ematix_engine.causal.checks import ConstraintChecks
from ematix_engine.causal.constraints import MustMatch, Never, Violation
from ematix_engine.causal.errors import CausalCycleError, CausalError, DuplicateEventError
from ematix_engine.causal.events import Event
from ematix_engine.causal.graph import EMPTY, Cons, Node, Retained, Summary
from ematix_engine.causal.parking import Parking
from ematix_engine.causal.plans import LinkRule, Plan, Plans, WatchSpec

__all__ = ["CausalEngine"]

log = logging.getLogger("ematix.causal")


def _seq(node: Node) -> int:
    return node.seq


class CausalEngine(ConstraintChecks, Parking):
    """Incremental causal matching over a bounded window (see the module docstring).

    Args:
        watches: Watches to serve.
        constraints: ``must_match`` / ``never`` constraints to check.
        links: Link rules adding causes by correlation value.
        window_size: Most events held, or ``None`` for no limit.
        failed: Called (inside the ``except``) with a user callback that raised.
        awaitable: Called with a callback and its non-``None`` result (which may be awaitable).
        on_event: Callbacks for every event (the processor's live list).
        on_violation: Called with every :class:`Violation`.
        max_parked: Most events waiting for a cause; beyond it the oldest is processed without
            its missing causes.
        retained: The retained-events store to fill (a new one when ``None``).
        pending: The caller's list of awaitables left by callbacks; a batch stops early when
            it is not empty.
    """

    def __init__(
        self,
        watches: Sequence[WatchSpec],
        constraints: Sequence[MustMatch | Never],
        links: Sequence[LinkRule],
        window_size: int | None,
        failed: Callable[[Callable], None],
        awaitable: Callable[[Callable, Any], None],
        on_event: list[Callable],
        on_violation: Callable[[Violation], None],
        max_parked: int = 10_000,
        retained: Retained | None = None,
        pending: list[Any] | None = None,
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
        self._failed = failed
        self._awaitable = awaitable
        self._on_event = on_event
        self._on_violation = on_violation
        self.max_parked = max_parked
        self._parked: dict[str, list[Any]] = {}
        self._waiting: dict[str, list[list[Any]]] = {}
        self.seq = 0
        self.stream_time = float("-inf")
        self.matches = 0
        self.violation_count = 0
        self.late_causes = 0
        self.missing_causes = 0
        self.parked_total = 0
        self._fired: list[Violation] = []
        self._forced = 0
        self._ready: deque[Event] = deque()
        self._releasing = False
        self.pending: list[Any] = pending if pending is not None else []
        self.stopping = False

    # ----------------------------------------------------------------- ingestion
    def ingest(self, event: Event, force: bool = False) -> None:
        """Process one event (or park it until its causes arrive).

        Args:
            event: The event.
            force: Process it even if some causes never arrived (end of stream, or too many
                parked events); the missing causes are counted and ignored.

        Raises:
            DuplicateEventError: The id was already seen (retained, recently evicted or parked).
            CausalCycleError: The event names itself, or a parked event waiting for it.
        """
        self.ingest_many(deque((event,)), 1, force=force, reject=None)

    def ingest_many(
        self,
        items: deque[Event],
        count: int,
        *,
        force: bool = False,
        reject: Callable[[Event, CausalError], None] | None = None,
    ) -> int:
        """Take up to ``count`` events from the left of ``items`` and process them in order.

        This is the hot path: everything an ordinary event needs is inline, with the state it
        reads held in locals for the whole batch; rarer work (link rules, timeouts, responses,
        ``never``, pinned evictions, parking) is a call away. It stops early, after the event
        that caused it, when a callback left an awaitable in ``pending`` or :attr:`stopping` is
        set, so the caller can await and the processing of one event stays atomic.

        Args:
            items: Where to take events from (``popleft``).
            count: At most this many.
            force: See :meth:`ingest`.
            reject: Called with an event and the error it raised (duplicate id, cycle), then
                processing goes on; ``None`` lets the error propagate.

        Returns:
            How many events were taken.
        """
        retained = self.retained
        nodes = retained.nodes
        order = retained.order
        parked = self._parked
        waiting = self._waiting
        by_name = self._by_name
        plan_slow = self._plan_slow
        timed = self._timed
        empty_sets = self._empty_sets
        limit = self.limit
        on_event = self._on_event
        fired = self._fired
        pending = self.pending
        failed = self._failed
        awaitable = self._awaitable
        popleft = items.popleft
        new_node = object.__new__
        taken = 0
        for taken in range(1, count + 1):  # noqa: B007 - taken is the result
            event = popleft()
            eid = event.id
            if eid in nodes or eid in retained.gone or eid in retained.gone_old or eid in parked:
                first = nodes[eid].event.name if eid in nodes else None
                error: CausalError = DuplicateEventError(eid, first, event.name)
                if reject is None:
                    raise error
                reject(event, error)
                if self.stopping:
                    break
                continue
            cause = None  # the one direct cause, the common case
            causes: list[Node] | None = None  # several (or linked) causes
            cause_ids = event.caused_by
            if cause_ids:
                if len(cause_ids) == 1:
                    cause = nodes.get(cause_ids[0])
                if cause is None:
                    try:
                        causes = self._causes(event, force)
                    except CausalError as error:
                        if reject is None:
                            raise
                        reject(event, error)
                        if self.stopping:
                            break
                        continue
                    if causes is None:  # parked until its causes arrive
                        continue
                    if len(causes) == 1:
                        cause = causes[0]
                        causes = None

            seq = self.seq = self.seq + 1
            plan = by_name.get(event.name) or plan_slow(event)
            if plan.link_effects:
                causes = self._link(event, plan, [cause] if cause else causes)
                cause = None
            if timed:
                self._expire(seq, event.timestamp)
            if cause is not None:
                sets = cause.out
                if sets is None:
                    sets = self._out(cause)
            elif causes:
                sets = self._merge(causes)
            else:
                sets = empty_sets
            if plan.responses:
                sets = self._respond(plan, sets)
            # Node(...) inlined: the Python-level __init__ call costs more than the stores
            node = new_node(Node)
            node.event = event
            node.seq = seq
            node.plan = plan
            node.sets = sets
            node.out = None if plan.contrib else sets
            node.alive = True
            node.pins = plan.pins  # one per must_match it opens (below)
            node.held = False
            nodes[eid] = node
            order.append(node)
            pairs = None
            if not plan.plain:
                if plan.triggers:
                    for open_ in plan.opens:
                        open_[node] = None
                    if plan.timed_triggers:
                        self._deadlines(plan, node)
                if plan.link_causes:
                    self._index(plan, node)
                if plan.watch2:
                    for tracker, cb in plan.watch2:
                        found = sets[tracker]
                        if found:
                            if type(found) is Node:  # one A: no sort
                                alive = [found] if found.alive else None
                            else:
                                alive = self._alive_sorted(found)
                            if alive:
                                if pairs is None:
                                    pairs = [(cb, alive)]
                                else:
                                    pairs.append((cb, alive))
                if plan.nevers:
                    self._nevers(node, plan, sets)

            if limit is not None and len(nodes) > limit:
                victim = order[0]
                if victim.pins or not victim.alive or retained.released:
                    self._evict()
                else:  # the common case, inline: the oldest event leaves
                    order.popleft()
                    victim.alive = False
                    if victim.plan.shared:  # break reference chains through summaries
                        victim.sets = victim.out = None
                    vid = victim.event.id
                    del nodes[vid]
                    gone = retained.gone
                    gone.add(vid)
                    if len(gone) >= retained.gone_cap:
                        retained.gone_old = gone
                        retained.gone = set()
                    if victim.plan.on_evict:
                        self._forget(victim)

            if on_event:
                for cb in on_event:
                    try:
                        result = cb(event)
                    except Exception:
                        failed(cb)
                    else:
                        if result is not None:
                            awaitable(cb, result)
            if not plan.plain:
                if plan.watch1:
                    for cb in plan.watch1:
                        self.matches += 1
                        try:
                            result = cb(event)
                        except Exception:
                            failed(cb)
                        else:
                            if result is not None:
                                awaitable(cb, result)
                if pairs:
                    for cb, found in pairs:
                        for a in found:
                            self.matches += 1
                            try:
                                result = cb(a.event, event)
                            except Exception:
                                failed(cb)
                            else:
                                if result is not None:
                                    awaitable(cb, result)
            if fired:
                self._flush()
            if waiting:
                self._release(eid)
            if pending or self.stopping:
                break
        return taken

    def _causes(self, event: Event, force: bool) -> list[Node] | None:
        """Resolve ``caused_by``; ``None`` when the event had to be parked."""
        eid = event.id
        retained = self.retained
        nodes = retained.nodes
        causes = []
        missing = None
        for cid in event.caused_by:
            node = nodes.get(cid)
            if node is not None:
                causes.append(node)
            elif cid == eid:
                raise CausalCycleError(eid, eid)
            elif retained.was_evicted(cid):
                self.late_causes += 1
            elif missing is None:
                missing = [cid]
            else:
                missing.append(cid)
        if missing:
            if not force:
                self._park(event, missing)
                return None
            self._missing(event, missing)
        return causes

    def _flush(self) -> None:
        fired = list(self._fired)
        self._fired.clear()
        for violation in fired:
            self._on_violation(violation)

    def _index(self, plan: Plan, node: Node) -> None:
        data = node.event.data
        for rule in plan.link_causes:
            value = data.get(rule.on)
            if value is not None:
                rule.index.setdefault(value, []).append(node)

    # ----------------------------------------------------------------- summaries
    def _out(self, cause: Node) -> tuple[Summary, ...]:
        """The summaries ``cause`` passes to its effects: its own, plus itself where it matches.

        Computed once per contributing cause and cached on it. Adding the cause is one
        :class:`Cons` cell in front of its own summary (shared, O(1)), so a long chain of
        matching events costs O(1) per event, not a copy of an ever larger set. With a window,
        a chain of cells deeper than twice the window is compacted into a frozenset of its
        retained members, which bounds both the walk and the memory held by old cells.
        """
        out = list(cause.sets)
        limit = self.limit
        deep = 2 * limit + 64 if limit is not None else None
        for i, must in cause.plan.extend:
            if must is not None and cause not in must.open:
                continue  # a trigger already answered (or failed) adds nothing
            before = out[i]
            if deep is not None and type(before) is Cons and before.depth > deep:
                kept = (
                    [m for m in before if m.alive]
                    if must is None
                    else [m for m in before if m in must.open]
                )
                out[i] = Cons(cause, frozenset(kept))
            elif before:
                out[i] = Cons(cause, before)
            else:
                out[i] = cause  # a summary of one member is the node itself
        result = cause.out = tuple(out)
        return result

    def _merge(self, causes: list[Node]) -> tuple[Summary, ...]:
        """Summaries of an event with several causes: per tracker, the union of theirs."""
        outs = [self._out(c) if c.out is None else c.out for c in causes]
        merged: list[Summary] = []
        for i in range(self._ntrackers):
            parts: list[Summary] = []
            for out in outs:
                part = out[i]
                if part and not any(part is p for p in parts):
                    parts.append(part)
            if not parts:
                merged.append(EMPTY)
            elif len(parts) == 1:
                merged.append(parts[0])
            else:
                merged.append(frozenset().union(*parts))
        return tuple(merged)

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

    # ----------------------------------------------------------------- window
    def _evict(self) -> None:
        retained = self.retained
        limit = self.limit
        max_held = limit // 2
        while len(retained.nodes) > limit:
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

    @property
    def evictions(self) -> int:
        """How many events left the window: every processed event not retained any more."""
        return self.seq - len(self.retained.nodes)

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
