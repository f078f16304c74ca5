"""Event sources: :class:`InMemoryEventSource` and what counts as a source.

A source is any async iterable of :class:`~ematix_engine.causal.events.Event` (a plain iterable
is accepted too, and so is an object with a PyRapide-style ``events()`` method).
:class:`InMemoryEventSource` is a buffer you push events into: from producer code, tests, a
Kafka consumer loop, or :func:`~ematix_engine.causal.arrow.events_from_batch`. Iterating it
yields the buffered events and waits for more; it ends once it is closed and drained.

The processor knows this class and reads its buffer directly, taking whatever is ready in one
go instead of one ``await`` per event (a fast path with the same semantics: order within the
source is kept, and sources are still interleaved).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ematix_engine.causal.events import Event

__all__ = ["InMemoryEventSource"]


class _Done:
    """An awaitable that is already complete (``await source.close()`` keeps working)."""

    __slots__ = ()

    def __await__(self):
        return iter(())


_DONE = _Done()


class InMemoryEventSource:
    """An in-memory, unbounded event buffer that is also an async iterable.

    Args:
        name: The source's name (events keep their own ``source`` field).

    Examples:
        >>> source = InMemoryEventSource("sensors")
        >>> _ = source.push(Event("Sensor.reading", {"temperature": 21}))
        >>> len(source)
        1
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._items: deque[Event] = deque()
        self._closed = False
        self._waiters: list[asyncio.Future[None]] = []
        self._listeners: list[Callable[[], Any]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"InMemoryEventSource({self.name!r}, {len(self._items)} buffered, {state})"

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (buffered events are still delivered)."""
        return self._closed

    def push(self, event: Event) -> Event:
        """Append an event (synchronous; call it from the event loop's thread).

        Args:
            event: The event.

        Returns:
            The same event, so ``e = source.push(Event(...))`` keeps a handle for ``caused_by``.

        Raises:
            TypeError: When ``event`` is not an :class:`Event`.
            RuntimeError: When the source is closed.
        """
        if not isinstance(event, Event):
            raise TypeError(f"source {self.name!r}: push() takes an Event, got {event!r}")
        if self._closed:
            raise RuntimeError(f"source {self.name!r} is closed; no more events can be pushed")
        items = self._items
        items.append(event)
        if len(items) == 1:  # readers only ever wait on an empty buffer
            self._notify()
        return event

    def extend(self, events: list[Event] | tuple[Event, ...]) -> None:
        """Append many events at once (same rules as :meth:`push`)."""
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"source {self.name!r}: extend() takes Events, got {event!r}")
        if self._closed:
            raise RuntimeError(f"source {self.name!r} is closed; no more events can be pushed")
        self._items.extend(events)
        if events:
            self._notify()

    async def put(self, event: Event) -> None:
        """Append an event (async form of :meth:`push`)."""
        self.push(event)

    def close(self) -> _Done:
        """Mark the end of the source: iteration ends once the buffer is drained.

        Returns:
            An already-complete awaitable, so ``await source.close()`` (PyRapide) also works.
        """
        self._closed = True
        self._notify()
        return _DONE

    async def aclose(self) -> None:
        """Async form of :meth:`close`."""
        self.close()

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def __aiter__(self) -> AsyncIterator[Event]:
        return _Reader(self)

    def events(self) -> AsyncIterator[Event]:
        """Iterate the source (PyRapide's spelling of ``aiter(source)``)."""
        return _Reader(self)


class _Reader:
    __slots__ = ("_source",)

    def __init__(self, source: InMemoryEventSource) -> None:
        self._source = source

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> Event:
        source = self._source
        items = source._items
        while not items:
            if source._closed:
                raise StopAsyncIteration
            await source._wait()
        return items.popleft()
