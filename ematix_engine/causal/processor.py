"""StreamProcessor: consume sources concurrently, match causally, enforce constraints.

The run loop is a single consumer under asyncio, so processing one event is atomic with respect
to every other. :class:`InMemoryEventSource` buffers are read directly, in rounds of up to
``batch`` events per source (the sources interleave; order within a source is kept); any other
async iterable gets a feeder task that moves its events into a shared inbox, with back-pressure.
The consumer sleeps on one :class:`asyncio.Event` when nothing is ready, and yields to other
tasks after every round so producers keep running.

Callbacks (``on_event``, watches, ``on_violation``) may be sync or async. A sync callback runs
inline; an awaitable result is awaited before the next event is processed. A callback that
raises is logged on ``ematix.causal`` and counted (``stats["callback_errors"]``), never fatal.

Errors in the data — a source that raises, a duplicate id, a causal cycle — are logged, kept in
:attr:`StreamProcessor.errors` and counted; the offending event is skipped and the other sources
go on. ``StreamProcessor(fail_on_error=True)`` makes the first of them stop the run and raise
from :meth:`StreamProcessor.run` instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ematix_engine.causal.constraints import MustMatch, Never, Violation
from ematix_engine.causal.engine import CausalEngine
from ematix_engine.causal.errors import CausalConfigError, CausalError, CausalSourceError
from ematix_engine.causal.events import Event
from ematix_engine.causal.graph import Computation, Retained
from ematix_engine.causal.patterns import as_pattern
from ematix_engine.causal.plans import LinkRule, WatchSpec
from ematix_engine.causal.sources import InMemoryEventSource
from ematix_engine.causal.watches import Watch, watch

__all__ = ["StreamProcessor"]

log = logging.getLogger("ematix.causal")


def _describe(callback: object) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)


class StreamProcessor:
    """Processes events from several concurrent sources as a causal partial order.

    Args:
        fail_on_error: When true, a failing source or a rejected event (duplicate id, causal
            cycle) stops the run and :meth:`run` raises it; by default it is reported
            (:attr:`errors`, the ``ematix.causal`` logger, ``stats``) and the run goes on.
        max_parked: Most events held back waiting for a cause that has not arrived; beyond
            it the oldest is processed without its missing causes (and a warning logged).
        batch: Most events taken from one in-memory source before the next source's turn.

    Examples:
        >>> import asyncio
        >>> processor = StreamProcessor()
        >>> source = InMemoryEventSource("sensors")
        >>> processor.add_source("sensors", source)
        >>> seen = []
        >>> _ = processor.watch("Sensor.reading", seen.append)
        >>> _ = source.push(Event("Sensor.reading")); _ = source.close()
        >>> asyncio.run(processor.run())
        >>> len(seen)
        1
    """

    def __init__(
        self, *, fail_on_error: bool = False, max_parked: int = 10_000, batch: int = 256
    ) -> None:
        if max_parked < 1 or batch < 1:
            raise CausalConfigError("StreamProcessor: max_parked and batch must be >= 1")
        self.fail_on_error = fail_on_error
        self.max_parked = max_parked
        self.batch = batch
        self._sources: dict[str, Any] = {}
        self._watches: list[Watch] = []
        self._constraints: list[MustMatch | Never] = []
        self._links: list[LinkRule] = []
        self._event_callbacks: list[Callable[..., Any]] = []
        self._violation_callbacks: list[Callable[..., Any]] = []
        self._retained = Retained()
        self._computation = Computation(self._retained)
        self._engine: CausalEngine | None = None
        self._pending: list[tuple[Any, Any]] = []
        self._per_source: dict[str, int] = {}
        self._events = 0
        self._callback_errors = 0
        self._source_errors = 0
        self._rejected = 0
        self._running = False
        self._stopping = False
        self._fatal: BaseException | None = None
        self._wake: asyncio.Event | None = None
        self.violations: list[Violation] = []
        """Every violation so far, in the order they fired."""
        self.errors: list[CausalError] = []
        """Source failures and rejected events so far."""

    # ------------------------------------------------------------------ setup
    def add_source(self, name: str, source: object) -> None:
        """Register a source: any async iterable of events (or iterable, or ``.events()``).

        Raises:
            CausalConfigError: When the name is taken or the object is no source.
        """
        if name in self._sources:
            raise CausalConfigError(f"a source named {name!r} is already registered")
        if not (
            hasattr(source, "__aiter__") or hasattr(source, "__iter__") or hasattr(source, "events")
        ):
            raise CausalConfigError(
                f"source {name!r} must be an async iterable of Events (or an iterable, or have "
                f"an events() method), got {type(source).__name__}"
            )
        self._sources[name] = source
        self._per_source.setdefault(name, 0)

    def remove_source(self, name: str) -> None:
        """Unregister a source (takes effect at the next :meth:`run`)."""
        self._sources.pop(name, None)

    def _check_open(self, what: str) -> None:
        if self._engine is not None:
            raise CausalConfigError(
                f"{what} after the processor started: register watches, constraints and link "
                f"rules before the first run()"
            )

    def watch(self, pattern: object = None, callback: Callable[..., Any] | None = None) -> Any:
        """Call ``callback`` on every match of ``pattern``.

        Args:
            pattern: A name (wildcards allowed), a :class:`Pattern`, a ``(cause, effect)`` pair,
                or a :class:`Watch` built with :func:`watch`.
            callback: ``callback(event)``, or ``callback(cause, effect)`` for a pair; sync or
                async. Omit it to use ``processor.watch(pattern)`` as a decorator.

        Returns:
            The :class:`Watch`, or a decorator when ``callback`` is omitted.
        """
        if isinstance(pattern, Watch):
            spec = pattern
        elif callback is None:

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                self.watch(pattern, fn)
                return fn

            return decorator
        else:
            spec = watch(pattern, callback)
        self._check_open("watch()")
        self._watches.append(spec)
        return spec

    def enforce(self, constraint: MustMatch | Never) -> None:
        """Check a :func:`must_match` or :func:`never` constraint on every event."""
        if not isinstance(constraint, MustMatch | Never):
            raise CausalConfigError(
                f"enforce() takes must_match(...) or never(...), got {constraint!r}"
            )
        self._check_open("enforce()")
        taken = {c.name for c in self._constraints}
        if constraint.name in taken:
            raise CausalConfigError(f"a constraint named {constraint.name!r} is already enforced")
        self._constraints.append(constraint)

    def link(self, effect: object, cause: object, on: str) -> None:
        """Declare a link rule: effects are caused by the retained causes with the same value.

        An ``effect`` event gets as causes the retained ``cause`` events whose ``data[on]``
        equals its own ``data[on]`` (only events already processed; use ``caused_by`` when an
        effect may arrive before its cause).

        Args:
            effect: Pattern of the effects (e.g. ``"Alerter.alert"``).
            cause: Pattern of the causes (e.g. ``"Sensor.*"``).
            on: The correlation field in ``data``; events without it (or with ``None``) are not
                linked.
        """
        if not isinstance(on, str) or not on:
            raise CausalConfigError(f"link(): on= must name a data field, got {on!r}")
        self._check_open("link()")
        self._links.append(
            LinkRule(
                as_pattern(effect, role="link effect"), as_pattern(cause, role="link cause"), on
            )
        )

    def on_event(self, callback: Callable[..., Any]) -> None:
        """Call ``callback(event)`` for every processed event (sync or async)."""
        self._event_callbacks.append(callback)

    def on_violation(self, callback: Callable[..., Any]) -> None:
        """Call ``callback(violation)`` for every :class:`Violation` (sync or async)."""
        self._violation_callbacks.append(callback)

    # ------------------------------------------------------------------ state
    @property
    def computation(self) -> Computation:
        """The events currently held (``len()`` is the window's fill)."""
        return self._computation

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: events in total and per source, matches, violations, window, evictions."""
        engine = self._engine
        matches = engine.matches if engine else 0
        return {
            "events": self._events,
            "per_source": dict(self._per_source),
            "matches": matches,
            "violations": len(self.violations),
            "window_size": len(self._computation),
            "window_limit": engine.limit if engine else None,
            "evictions": engine.evictions if engine else 0,
            "parked": engine.parked if engine else 0,
            "late_causes": engine.late_causes if engine else 0,
            "missing_causes": engine.missing_causes if engine else 0,
            "open_triggers": sum(len(v) for v in self.open_triggers().values()),
            "callback_errors": self._callback_errors,
            "source_errors": self._source_errors,
            "rejected_events": self._rejected,
            # PyRapide's names, for code that switches over
            "event_count": self._events,
            "source_counts": dict(self._per_source),
            "match_count": matches,
            "violation_count": len(self.violations),
        }

    def open_triggers(self) -> dict[str, list[Event]]:
        """The ``must_match`` triggers still waiting for a response, per constraint."""
        return self._engine.open_triggers() if self._engine else {}

    # ------------------------------------------------------------------ callbacks
    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception:
            self._failed(callback)
        else:
            if result is not None:
                self._awaitable(callback, result)

    def _failed(self, callback: Callable[..., Any]) -> None:
        """Count and log a callback that raised (called from inside the ``except``)."""
        self._callback_errors += 1
        log.exception("causal callback %s raised; continuing", _describe(callback))

    def _awaitable(self, callback: Callable[..., Any], result: Any) -> None:
        """Keep an awaitable result to await before the next event."""
        if inspect.isawaitable(result):
            self._pending.append((callback, result))

    async def _await_pending(self) -> None:
        while self._pending:
            pending = list(self._pending)
            self._pending.clear()
            for callback, awaitable in pending:
                try:
                    await awaitable
                except Exception:
                    self._callback_errors += 1
                    log.exception("causal callback %s raised; continuing", _describe(callback))

    def _violated(self, violation: Violation) -> None:
        self.violations.append(violation)
        for callback in self._violation_callbacks:
            self._call(callback, violation)

    def _report(self, error: CausalError) -> None:
        self.errors.append(error)
        log.error("%s", error)
        if self.fail_on_error and self._fatal is None:
            self._fatal = error
            self._set_stopping()

    def _engine_for(self, window_size: int | None) -> CausalEngine:
        if self._engine is None:
            watches = [WatchSpec(w.pattern, w.callback) for w in self._watches]
            self._engine = CausalEngine(
                watches,
                self._constraints,
                self._links,
                window_size,
                self._failed,
                self._awaitable,
                self._event_callbacks,
                self._violated,
                max_parked=self.max_parked,
                retained=self._retained,
                pending=self._pending,
            )
        engine = self._engine
        engine.limit = window_size
        self._retained.gone_cap = max(65536, 4 * (window_size or 0))
        return engine

    # ------------------------------------------------------------------ run
    async def run(self, window_size: int | None = None) -> None:
        """Consume every source concurrently until all are exhausted or :meth:`stop` is called.

        At the end of the stream (all sources exhausted), events still waiting for a cause are
        processed without it and every open ``must_match`` trigger becomes an
        ``"end_of_stream"`` violation. After :meth:`stop` they are left as they are, and a
        later ``run()`` continues with the same state.

        Args:
            window_size: Most events held in memory (see the docs for the eviction rules), or
                ``None`` to keep everything.

        Raises:
            CausalError: With ``fail_on_error=True``, the first source failure or rejected
                event.
        """
        if window_size is not None and (
            isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1
        ):
            raise CausalConfigError(f"run(): window_size must be None or >= 1, got {window_size!r}")
        if self._running:
            raise CausalConfigError("run() is already running on this processor")
        engine = self._engine_for(window_size)
        self._running = True
        self._stopping = engine.stopping = False
        self._fatal = None
        wake = self._wake = asyncio.Event()
        space = asyncio.Event()
        buffers: list[tuple[str, Any]] = []
        tasks: list[asyncio.Task[None]] = []
        for name, source in self._sources.items():
            if type(source) is InMemoryEventSource:
                buffers.append((name, source))
                source._listeners.append(wake.set)
            else:
                feed = _Feed()
                buffers.append((name, feed))
                tasks.append(asyncio.create_task(self._feed(name, source, feed, wake, space)))
        try:
            await self._consume(engine, buffers, wake, space)
            if self._fatal is None and not self._stopping:
                engine.finish()
                await self._await_pending()
        finally:
            for _, source in buffers:
                if isinstance(source, InMemoryEventSource) and wake.set in source._listeners:
                    source._listeners.remove(wake.set)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._running = False
            self._wake = None
        if self._fatal is not None:
            raise self._fatal

    async def stop(self) -> None:
        """Stop :meth:`run` after the event being processed; buffered events stay buffered."""
        self._set_stopping()

    def _set_stopping(self) -> None:
        self._stopping = True
        if self._engine is not None:
            self._engine.stopping = True
        if self._wake is not None:
            self._wake.set()

    def _reject(self, event: Event, error: CausalError) -> None:
        self._rejected += 1
        self._report(error)

    async def _feed(
        self, name: str, source: Any, feed: _Feed, wake: asyncio.Event, space: asyncio.Event
    ) -> None:
        """Move a generic source's events into its buffer, with back-pressure."""
        items = feed._items
        high = 4 * self.batch
        try:
            if not hasattr(source, "__aiter__") and hasattr(source, "events"):
                source = source.events()
            if hasattr(source, "__aiter__"):
                async for event in source:
                    if not isinstance(event, Event):
                        raise TypeError(f"source yielded {event!r}, not an Event")
                    items.append(event)
                    if len(items) == 1:
                        wake.set()
                    elif len(items) >= high:
                        space.clear()
                        await space.wait()
                    if self._stopping:
                        return
            else:
                for count, event in enumerate(source, 1):
                    if not isinstance(event, Event):
                        raise TypeError(f"source yielded {event!r}, not an Event")
                    items.append(event)
                    if len(items) == 1:
                        wake.set()
                    if count % self.batch == 0:
                        await asyncio.sleep(0)
                    if self._stopping:
                        return
        except Exception as error:
            self._source_errors += 1
            self._report(CausalSourceError(name, error))
        finally:
            feed._closed = True
            wake.set()

    async def _consume(
        self,
        engine: CausalEngine,
        buffers: list[tuple[str, Any]],
        wake: asyncio.Event,
        space: asyncio.Event,
    ) -> None:
        """Round-robin over the buffers, up to ``batch`` events each, until all are done."""
        ingest_many = engine.ingest_many
        reject = self._reject
        per_source = self._per_source
        pending = self._pending
        batch = self.batch
        active = list(buffers)
        while True:
            wake.clear()
            if self._stopping:  # stop() while every source was idle
                return
            progressed = False
            for name, source in active:
                items = source._items
                budget = batch
                while items and budget:
                    n = len(items)
                    taken = ingest_many(items, n if n < budget else budget, reject=reject)
                    budget -= taken
                    per_source[name] += taken
                    self._events += taken
                    progressed = True
                    if pending:  # an async callback stopped the batch early: await it first
                        await self._await_pending()
                    if self._stopping:
                        return
            if progressed:
                space.set()
                await asyncio.sleep(0)  # let producers and feeders run
                continue
            active = [(n, s) for n, s in active if s._items or not s._closed]
            if not active:
                return
            await wake.wait()


class _Feed:
    """The buffer a feeder task fills from a generic source (same shape as the in-memory one)."""

    __slots__ = ("_closed", "_items")

    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._closed = False
