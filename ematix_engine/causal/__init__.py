"""Causal event processing: a stream is a partial order of events by causality, not by time.

Events name their direct causes (``caused_by``) or get them from link rules; events from
independent sources stay unordered. :class:`StreamProcessor` consumes several sources
concurrently, calls watches on single events and on causal pairs ``(A, B)`` (an A in the causal
past of a B), enforces :func:`must_match` and :func:`never` incrementally, and keeps memory
bounded with a causal sliding window whose summaries keep retained events matchable across
evicted ones. See ``docs/causal.md``.

The names follow PyRapide's streaming API, so ``from pyrapide import X`` becomes
``from ematix_engine.causal import X``.
"""

from ematix_engine.causal.arrow import CausalSpec, events_from_batch
from ematix_engine.causal.constraints import MustMatch, Never, Violation, must_match, never
from ematix_engine.causal.errors import (
    CausalConfigError,
    CausalCycleError,
    CausalError,
    CausalSourceError,
    DuplicateEventError,
)
from ematix_engine.causal.events import Event, new_event_id
from ematix_engine.causal.graph import Computation
from ematix_engine.causal.patterns import Pattern, pattern
from ematix_engine.causal.processor import StreamProcessor
from ematix_engine.causal.sources import InMemoryEventSource
from ematix_engine.causal.watches import Watch, watch

__all__ = [
    "CausalConfigError",
    "CausalCycleError",
    "CausalError",
    "CausalSourceError",
    "CausalSpec",
    "Computation",
    "DuplicateEventError",
    "Event",
    "InMemoryEventSource",
    "MustMatch",
    "Never",
    "Pattern",
    "StreamProcessor",
    "Violation",
    "Watch",
    "events_from_batch",
    "must_match",
    "never",
    "new_event_id",
    "pattern",
    "watch",
]
