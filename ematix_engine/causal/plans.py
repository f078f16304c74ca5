"""Compilation: watches, constraints and link rules become per-name *plans*.

Every distinct single pattern used anywhere gets a *slot*. An event's *hits* are one boolean per
slot; the name part is computed once per distinct event name, data filters once per event and
only for the slots whose name matched. Every distinct hits-tuple maps to one cached :class:`Plan`
that lists exactly what an event with those hits does: which watches fire, which constraints it
triggers, answers or violates, which link rules it takes part in. Per event the engine therefore
does a dict lookup and then only the work that applies.

*Trackers* are the per-event summaries the engine maintains (see
:mod:`~ematix_engine.causal.engine`): one :data:`ANC` tracker per distinct "A" of a pair (shared
by the watches and constraints that use it) and one :data:`OPEN` tracker per ``must_match``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from ematix_engine.causal.constraints import MustMatch, Never
from ematix_engine.causal.events import Event
from ematix_engine.causal.graph import EMPTY, Node
from ematix_engine.causal.patterns import Pattern

__all__ = [
    "ANC",
    "OPEN",
    "LinkRule",
    "MustState",
    "Plan",
    "Plans",
    "ScopedNever",
    "WatchSpec",
]

log = logging.getLogger("ematix.causal")

ANC = 0
"""Tracker kind: the matching events in the causal past that are still retained."""
OPEN = 1
"""Tracker kind: the open triggers of one ``must_match`` in the causal past."""


class WatchSpec:
    """A compiled-ready watch: a single pattern or a pair, and its callback."""

    __slots__ = ("callback", "pattern")

    def __init__(self, pattern: Pattern | tuple[Pattern, Pattern], callback: Callable) -> None:
        self.pattern = pattern
        self.callback = callback


class LinkRule:
    """``effect`` events are caused by the retained ``cause`` events with the same ``data[on]``."""

    __slots__ = ("cause", "cause_slot", "effect", "effect_slot", "index", "on")

    def __init__(self, effect: Pattern, cause: Pattern, on: str) -> None:
        self.effect = effect
        self.cause = cause
        self.on = on
        self.effect_slot = -1
        self.cause_slot = -1
        self.index: dict[Any, list[Node]] = {}


class MustState:
    """The runtime state of one ``must_match``: its open triggers and their deadlines."""

    __slots__ = ("dq", "heap", "matched", "name", "open", "r_slot", "seconds", "t_slot", "tracker")

    def __init__(self, spec: MustMatch, t_slot: int, r_slot: int, tracker: int) -> None:
        self.name = spec.name
        self.t_slot = t_slot
        self.r_slot = r_slot
        self.tracker = tracker
        self.open: dict[Node, None] = {}
        self.matched = 0
        within = spec.within
        self.dq: deque[tuple[int, Node]] | None = None
        self.heap: list[tuple[float, int, Node]] | None = None
        self.seconds = 0.0
        if isinstance(within, int):
            self.dq = deque()
            self.seconds = float(within)
        elif isinstance(within, timedelta):
            self.heap = []
            self.seconds = within.total_seconds()


class ScopedNever:
    """The runtime state of one ``never((A, B), within_cause=C)``: A/B events filed per C."""

    __slots__ = ("a_slot", "b_slot", "c_slot", "name", "tracker", "under_a", "under_b")

    def __init__(self, name: str, a_slot: int, b_slot: int, c_slot: int, tracker: int) -> None:
        self.name = name
        self.a_slot = a_slot
        self.b_slot = b_slot
        self.c_slot = c_slot
        self.tracker = tracker
        self.under_a: dict[Node, list[Node]] = {}
        self.under_b = self.under_a if a_slot == b_slot else {}


class Plan:
    """What to do with an event of a given name (and filter outcome); cached."""

    __slots__ = (
        "anc_trackers",
        "contrib",
        "extend",
        "hits",
        "link_causes",
        "link_effects",
        "never1",
        "never1s",
        "never2",
        "neverc",
        "nevers",
        "on_evict",
        "opens",
        "pins",
        "plain",
        "responses",
        "shared",
        "timed_triggers",
        "triggers",
        "watch1",
        "watch2",
    )


class Plans:
    """Slots, trackers and the cache of plans for one processor's watches and constraints.

    Args:
        watches: The watches.
        constraints: The ``must_match`` / ``never`` constraints.
        links: The link rules.
    """

    def __init__(
        self,
        watches: Sequence[WatchSpec],
        constraints: Sequence[MustMatch | Never],
        links: Sequence[LinkRule],
    ) -> None:
        self._slot_keys: dict[tuple, int] = {}
        self._name_fns: list[Callable[[str], bool]] = []
        self._data_fns: list[Callable[[Event], bool] | None] = []
        self.trackers: list[tuple[int, Any]] = []
        self._anc_by_slot: dict[int, int] = {}
        self._watch1: list[tuple[int, Callable]] = []
        self._watch2: list[tuple[int, int, Callable]] = []
        self._never1: list[tuple[int, str]] = []
        self._never1s: list[tuple[int, int, str]] = []
        self._never2: list[tuple[int, int, str]] = []
        self.scoped: list[ScopedNever] = []
        self.musts: list[MustState] = []
        self.links = list(links)
        for w in watches:
            if isinstance(w.pattern, tuple):
                a, b = (self._slot(p) for p in w.pattern)
                self._watch2.append((b, self._anc(a), w.callback))
            else:
                self._watch1.append((self._slot(w.pattern), w.callback))
        for c in constraints:
            self._add_constraint(c)
        for rule in self.links:
            rule.effect_slot = self._slot(rule.effect)
            rule.cause_slot = self._slot(rule.cause)
        self.empty_sets = (EMPTY,) * len(self.trackers)
        self.timed = [m for m in self.musts if m.dq is not None or m.heap is not None]
        self._by_hits: dict[tuple[bool, ...], Plan] = {}
        self.by_name: dict[str, Plan] = {}
        self._filtered: dict[str, tuple[list[bool], list[int]]] = {}

    def _slot(self, pattern: Pattern) -> int:
        key = pattern.key()
        slot = self._slot_keys.get(key)
        if slot is None:
            slot = self._slot_keys[key] = len(self._name_fns)
            self._name_fns.append(pattern.name_matcher())
            self._data_fns.append(pattern.data_matcher())
        return slot

    def _anc(self, slot: int) -> int:
        tracker = self._anc_by_slot.get(slot)
        if tracker is None:
            tracker = self._anc_by_slot[slot] = len(self.trackers)
            self.trackers.append((ANC, slot))
        return tracker

    def _add_constraint(self, c: MustMatch | Never) -> None:
        if isinstance(c, MustMatch):
            t, r = self._slot(c.trigger), self._slot(c.response)
            must = MustState(c, t, r, len(self.trackers))
            self.trackers.append((OPEN, must))
            self.musts.append(must)
            return
        scope = None if c.within_cause is None else self._slot(c.within_cause)
        if isinstance(c.pattern, tuple):
            a, b = (self._slot(p) for p in c.pattern)
            if scope is None:
                self._never2.append((b, self._anc(a), c.name))
            else:
                self.scoped.append(ScopedNever(c.name, a, b, scope, self._anc(scope)))
        elif scope is None:
            self._never1.append((self._slot(c.pattern), c.name))
        else:
            self._never1s.append((self._slot(c.pattern), self._anc(scope), c.name))

    def _plan_for_hits(self, hits: tuple[bool, ...]) -> Plan:
        plan = self._by_hits.get(hits)
        if plan is not None:
            return plan
        plan = Plan()
        plan.hits = hits
        plan.triggers = tuple(m for m in self.musts if hits[m.t_slot])
        plan.opens = tuple(m.open for m in plan.triggers)  # a trigger opens in each, pinned
        plan.pins = len(plan.triggers)
        plan.timed_triggers = tuple(
            m for m in plan.triggers if m.dq is not None or m.heap is not None
        )
        plan.responses = tuple((m, m.tracker) for m in self.musts if hits[m.r_slot])
        plan.anc_trackers = tuple(
            i for i, (kind, arg) in enumerate(self.trackers) if kind == ANC and hits[arg]
        )
        plan.contrib = bool(plan.triggers or plan.anc_trackers)
        # what an event of this plan adds to the summaries it passes on: (tracker, None) puts
        # it in an ANC tracker; (tracker, must) in a must_match's OPEN tracker while it is open
        plan.extend = tuple((i, None) for i in plan.anc_trackers) + tuple(
            (m.tracker, m) for m in plan.triggers
        )
        plan.watch1 = tuple(cb for slot, cb in self._watch1 if hits[slot])
        plan.watch2 = tuple((tr, cb) for b, tr, cb in self._watch2 if hits[b])
        plan.never1 = tuple(name for slot, name in self._never1 if hits[slot])
        plan.never1s = tuple((tr, name) for slot, tr, name in self._never1s if hits[slot])
        plan.never2 = tuple((tr, name) for b, tr, name in self._never2 if hits[b])
        plan.neverc = tuple(
            (sc, hits[sc.a_slot], hits[sc.b_slot])
            for sc in self.scoped
            if hits[sc.a_slot] or hits[sc.b_slot]
        )
        plan.nevers = bool(plan.never1 or plan.never1s or plan.never2 or plan.neverc)
        plan.link_effects = tuple(r for r in self.links if hits[r.effect_slot])
        plan.link_causes = tuple(r for r in self.links if hits[r.cause_slot])
        # nodes other structures may still reference once evicted (summaries, within_cause lists)
        plan.shared = plan.contrib or bool(plan.neverc)
        plan.on_evict = bool(plan.link_causes) or any(hits[sc.c_slot] for sc in self.scoped)
        plan.plain = not (
            plan.triggers or plan.link_causes or plan.watch1 or plan.watch2 or plan.nevers
        )
        self._by_hits[hits] = plan
        return plan

    def plan_slow(self, event: Event) -> Plan:
        """The plan of an event whose name is not cached, or whose patterns filter on data."""
        name = event.name
        cached = self._filtered.get(name)
        if cached is None:
            hits = [fn(name) for fn in self._name_fns]
            filtered = [i for i, hit in enumerate(hits) if hit and self._data_fns[i] is not None]
            if not filtered:
                plan = self.by_name[name] = self._plan_for_hits(tuple(hits))
                return plan
            cached = self._filtered[name] = (hits, filtered)
        base, filtered = cached
        hits = list(base)
        data_fns = self._data_fns
        for i in filtered:
            try:
                hits[i] = bool(data_fns[i](event))
            except Exception:  # a filter that raises does not match; say so once per event
                log.warning("data filter of a pattern raised on %r; treated as no match", event)
                hits[i] = False
        return self._plan_for_hits(tuple(hits))
