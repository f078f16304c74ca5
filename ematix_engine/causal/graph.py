"""The retained poset: which events the processor still holds, and in what order they leave.

Every processed event becomes a :class:`Node`. Nodes are processed in a *causal* order (an event
is processed only after all its known causes, see :mod:`~ematix_engine.causal.engine`), so
arrival order is a linear extension of the causal partial order. The window therefore evicts
oldest-first from one deque: an event leaves before or together with what it causes, which is
"evicting in causal order" with O(1) work per eviction.

Reachability needs no edges. Each node carries, per tracked pattern, a frozen set of the
*relevant* retained events in its causal past (the A-events of an ``(A, B)`` pair, the open
triggers of a ``must_match``, the C-events of a ``within_cause``). Those sets are the summary
edges: when the events between an A and a later B are evicted, B still finds A through the set
it inherited from its direct cause, so the pair stays matchable without keeping the middle and
without rebuilding anything on eviction. Summaries are shared: an event with one cause that
adds nothing reuses its cause's tuple of summaries, and a cause that matches adds itself as one
:class:`Cons` cell in front of its own summary, so a long chain costs O(1) per event either way.
A summary of exactly one member is that :class:`Node` itself (a node iterates as itself), so
the first matching event of a chain allocates nothing.

Pinned nodes (open ``must_match`` triggers) are skipped when their turn to leave comes and wait
in a side deque; they leave as soon as they are unpinned. Held nodes may fill at most half of the
window: beyond that (or if nothing else is left to evict) the oldest is forced out and its
constraint reports it (``"evicted"``), so triggers that never get a response cannot crowd out the
events that still have to meet theirs. The window never holds more than ``window_size`` events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ematix_engine.causal.events import Event

__all__ = ["EMPTY", "Computation", "Cons", "Node", "Retained", "Summary"]

EMPTY: frozenset[Any] = frozenset()


class Cons:
    """A persistent summary: one member in front of another summary.

    Extending a summary by one event is one cell that shares the rest, so a causal chain of
    matching events does not copy an ever larger set at every step. Iterating yields the members,
    newest first; there are no duplicates (a cell's rest holds only strict ancestors of its
    member). ``depth`` counts the cells in front of the first frozenset.
    """

    __slots__ = ("depth", "node", "rest")

    def __init__(self, node: Node, rest: Summary) -> None:
        self.node = node
        self.rest = rest
        self.depth = rest.depth + 1 if type(rest) is Cons else 1

    def __iter__(self) -> Iterator[Node]:
        cell: Summary = self
        while type(cell) is Cons:
            yield cell.node
            cell = cell.rest
        yield from cell


class Node:
    """One retained (or just evicted) event and its incremental matching state."""

    __slots__ = ("alive", "event", "held", "out", "pins", "plan", "seq", "sets")

    def __init__(
        self,
        event: Event,
        seq: int,
        plan: Any,
        sets: tuple[frozenset, ...],
        out: tuple[frozenset, ...] | None,
    ) -> None:
        self.event = event
        self.seq = seq
        self.plan = plan
        self.sets = sets
        self.out = out
        self.alive = True
        self.pins = 0
        self.held = False

    def __iter__(self) -> Iterator[Node]:
        """A node is also the summary whose one member it is."""
        yield self

    def __repr__(self) -> str:
        state = "" if self.alive else ", evicted"
        return f"Node({self.event.name}#{self.event.id}, seq={self.seq}{state})"


Summary = frozenset | Cons | Node
"""A node's summary for one tracker: a frozenset of nodes, a :class:`Cons` chain, or one node."""


class Retained:
    """The retained nodes by id, their eviction order, and the ids recently evicted.

    Evicted ids are remembered in two generations of ``gone_cap`` ids each, so telling "already
    evicted" from "not arrived yet" costs two set lookups and no per-eviction bookkeeping beyond
    one ``set.add``.
    """

    __slots__ = (
        "gone",
        "gone_cap",
        "gone_old",
        "held",
        "held_count",
        "nodes",
        "order",
        "released",
    )

    def __init__(self, gone_cap: int = 65536) -> None:
        self.nodes: dict[str, Node] = {}
        self.order: deque[Node] = deque()
        self.held: deque[Node] = deque()
        self.held_count = 0
        self.released: deque[Node] = deque()
        self.gone: set[str] = set()
        self.gone_old: set[str] = set()
        self.gone_cap = gone_cap

    def was_evicted(self, event_id: str) -> bool:
        """Whether this id was retained and evicted (recently enough to be remembered)."""
        return event_id in self.gone or event_id in self.gone_old

    def unpinned(self, node: Node) -> None:
        """Record that ``node`` lost its last pin, so it can leave when its turn comes."""
        if node.held:
            self.released.append(node)

    def next_victim(self, max_held: int) -> Node | None:
        """Return the next node to evict.

        Unpinned nodes leave oldest first; pinned ones are set aside (held) when their turn comes.
        A pinned node is returned only when more than ``max_held`` are held, or nothing else is
        left; the caller then reports its open constraints.
        """
        released = self.released
        while released:
            node = released.popleft()
            if node.alive and node.held and not node.pins:
                node.held = False
                self.held_count -= 1
                return node
        if self.held_count <= max_held:
            order = self.order
            while order:
                node = order.popleft()
                if not node.alive:
                    continue
                if not node.pins:
                    return node
                node.held = True
                self.held_count += 1
                self.held.append(node)
                if self.held_count > max_held:
                    break
        held = self.held
        while held:
            node = held.popleft()
            if node.alive and node.held:
                node.held = False
                self.held_count -= 1
                return node
        order = self.order
        while order:
            node = order.popleft()
            if node.alive:
                return node
        return None

    def remove(self, node: Node) -> None:
        """Forget ``node``: it is no longer retained; its id is remembered for a while."""
        node.alive = False
        node.sets = node.out = None  # break chains of references through old summaries
        eid = node.event.id
        del self.nodes[eid]
        gone = self.gone
        gone.add(eid)
        if len(gone) >= self.gone_cap:
            self.gone_old = gone
            self.gone = set()


class Computation:
    """A read-only view of the events the processor currently holds.

    ``len(processor.computation)`` is the number of events held; iterating yields them in
    processing order (a causal order).
    """

    __slots__ = ("_retained",)

    def __init__(self, retained: Retained) -> None:
        self._retained = retained

    def __len__(self) -> int:
        return len(self._retained.nodes)

    def __iter__(self) -> Iterator[Event]:
        nodes = sorted(self._retained.nodes.values(), key=lambda n: n.seq)
        return iter([n.event for n in nodes])

    def __contains__(self, item: object) -> bool:
        key = getattr(item, "id", item)
        return isinstance(key, str) and key in self._retained.nodes

    @property
    def events(self) -> list[Event]:
        """The held events in processing order."""
        return list(self)

    def get(self, event_id: str) -> Event | None:
        """Return the held event with this id, or ``None``."""
        node = self._retained.nodes.get(event_id)
        return None if node is None else node.event

    def causes(self, event: Event | str) -> list[Event]:
        """Return the held direct causes named by ``caused_by`` of a held event."""
        key = getattr(event, "id", event)
        node = self._retained.nodes.get(key)
        if node is None:
            return []
        nodes = self._retained.nodes
        return [nodes[c].event for c in node.event.caused_by if c in nodes]

    def events_by_name(self, name: str) -> list[Event]:
        """The held events with exactly this name, in processing order."""
        return [e for e in self if e.name == name]
