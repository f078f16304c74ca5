"""Alerters: where failure and recovery events go (``--alerter URL``, repeatable).

==============================================  ===============================================
URL                                             Alerter
==============================================  ===============================================
``stdout://``                                   :class:`StdoutAlerter`: one line per event on
                                                stderr
``slack://hooks.slack.com/services/T/B/X``      :class:`~ematix_engine.ops.slack.SlackAlerter`
``slack+https://host/path``                     Slack-compatible webhook at another host
``slack+http://127.0.0.1:PORT/path``            plain http, loopback only (tests, local relay)
==============================================  ===============================================

:class:`AlerterGroup` fans an event out to several alerters and isolates faults: an alerter
that raises is logged and skipped, so a broken webhook never stops the orchestrator. With
``background=True`` (what ``run-due`` uses) each alerter gets its own sender thread and a
bounded queue, so a slow webhook delays only its own messages, never the next pipeline;
:meth:`AlerterGroup.flush` waits for the queues with a bound (``run-due`` calls it at the end of
the tick, and at process exit any group still holding events gets the same bounded wait).
"""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import Protocol, TextIO, runtime_checkable

from ematix_engine.ops.events import AlertEvent, AlertKind
from ematix_engine.runlog.urls import split_scheme, unknown_scheme_error

__all__ = [
    "ALERTER_SCHEMES",
    "Alerter",
    "AlerterGroup",
    "StdoutAlerter",
    "open_alerter",
    "open_alerters",
]

logger = logging.getLogger("ematix.ops.alerters")

ALERTER_SCHEMES: tuple[str, ...] = ("slack", "slack+http", "slack+https", "stdout")
"""URL schemes :func:`open_alerter` understands."""


@runtime_checkable
class Alerter(Protocol):
    """Something that delivers :class:`~ematix_engine.ops.events.AlertEvent` s."""

    def send(self, event: AlertEvent) -> None:
        """Deliver ``event``; may raise (wrap alerters in an :class:`AlerterGroup`)."""
        ...


_LABEL = {
    AlertKind.FAILED: "FAILED",
    AlertKind.GAVE_UP: "GAVE UP",
    AlertKind.RECOVERED: "RECOVERED",
    AlertKind.VIOLATION: "VIOLATION",
}


class StdoutAlerter:
    """Write one readable line per event to stderr (the ``stdout://`` alerter).

    Args:
        stream: Where to write; ``None`` means the current ``sys.stderr`` at send time.

    Example:
        >>> import io
        >>> from datetime import UTC, datetime
        >>> out = io.StringIO()
        >>> at = datetime(2030, 1, 1, tzinfo=UTC)
        >>> StdoutAlerter(out).send(
        ...     AlertEvent(kind="failed", pipeline="orders", attempt=2, error="timeout", at=at)
        ... )
        >>> print(out.getvalue(), end="")
        2030-01-01 00:00:00Z [ematix] FAILED    pipeline 'orders' failed on attempt 2: timeout
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def __repr__(self) -> str:
        return "StdoutAlerter()"

    def send(self, event: AlertEvent) -> None:
        """Write the event's line and flush.

        Args:
            event: The alert event.
        """
        stream = self._stream if self._stream is not None else sys.stderr
        run = f" (run {event.run_id})" if event.run_id else ""
        line = f"{event.at:%Y-%m-%d %H:%M:%S}Z [ematix] {_LABEL[event.kind]:<9} {event.summary}"
        stream.write(f"{line}{run}\n")
        stream.flush()


DEFAULT_QUEUE_SIZE = 1000
"""Events one background alerter may have waiting; beyond that new events are dropped (logged)."""

DEFAULT_FLUSH_SECONDS = 30.0
"""How long :meth:`AlerterGroup.flush` waits at most for queued alerts (and at process exit)."""


def _deliver(alerter: Alerter, event: AlertEvent) -> None:
    try:
        alerter.send(event)
    except Exception:
        logger.exception(
            "alerter %r failed to deliver the %s event of pipeline %r; continuing",
            alerter,
            event.kind.value,
            event.pipeline,
        )


class _Sender:
    """One alerter's bounded queue and the daemon thread that drains it."""

    def __init__(self, alerter: Alerter, maxsize: int) -> None:
        self.alerter = alerter
        self.queue: queue.Queue[AlertEvent] = queue.Queue(maxsize=maxsize)
        self.thread = threading.Thread(target=self._drain, name="ematix-alerter", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            event = self.queue.get()
            try:
                _deliver(self.alerter, event)
            finally:
                self.queue.task_done()

    def put(self, event: AlertEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            logger.error(
                "alerter %r is %d events behind; dropped the %s event of pipeline %r",
                self.alerter,
                self.queue.maxsize,
                event.kind.value,
                event.pipeline,
            )

    def wait(self, deadline: float) -> bool:
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True


_LIVE_GROUPS: weakref.WeakSet[AlerterGroup] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    deadline = time.monotonic() + DEFAULT_FLUSH_SECONDS
    for group in list(_LIVE_GROUPS):
        group.flush(max(0.0, deadline - time.monotonic()))


class AlerterGroup:
    """Send each event to every alerter; log and swallow any alerter's exception.

    Args:
        alerters: The alerters, in delivery order.
        background: Deliver from one sender thread per alerter (bounded queue) instead of in
            the caller's thread, so a slow alerter never stalls the caller. Call
            :meth:`flush` to wait for delivery.
        queue_size: Events each background alerter may have waiting before new ones are
            dropped (with an error logged).

    Example:
        >>> group = AlerterGroup([StdoutAlerter()])
        >>> len(group)
        1
    """

    def __init__(
        self,
        alerters: Iterable[Alerter] = (),
        *,
        background: bool = False,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.alerters: tuple[Alerter, ...] = tuple(alerters)
        self.background = background
        self._queue_size = queue_size
        self._senders: list[_Sender] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AlerterGroup({list(self.alerters)!r})"

    def __len__(self) -> int:
        return len(self.alerters)

    def __iter__(self) -> Iterator[Alerter]:
        return iter(self.alerters)

    def _background_senders(self) -> list[_Sender]:
        with self._lock:
            if self._senders is None:
                self._senders = [_Sender(a, self._queue_size) for a in self.alerters]
                _LIVE_GROUPS.add(self)
            return self._senders

    def send(self, event: AlertEvent) -> None:
        """Deliver ``event`` to every alerter (or queue it, in background mode); never raises.

        Args:
            event: The alert event.
        """
        if self.background:
            for sender in self._background_senders():
                sender.put(event)
            return
        for alerter in self.alerters:
            _deliver(alerter, event)

    def send_all(self, events: Iterable[AlertEvent]) -> None:
        """Deliver several events (e.g. the result of ``events_for_run``).

        Args:
            events: The alert events.
        """
        for event in events:
            self.send(event)

    def flush(self, timeout: float = DEFAULT_FLUSH_SECONDS) -> bool:
        """Wait until every queued event was delivered (or failed), at most ``timeout`` s.

        Args:
            timeout: The bound, in seconds, for all alerters together.

        Returns:
            ``True`` when nothing is left queued; ``False`` when the bound was hit (what is
            left is named in an error log line and stays with the daemon sender threads).
        """
        senders = self._senders or []
        deadline = time.monotonic() + timeout
        stuck = [s.alerter for s in senders if not s.wait(deadline)]
        if stuck:
            logger.error(
                "alerts still queued after %.0f s for %s; giving up waiting for them",
                timeout,
                ", ".join(repr(a) for a in stuck),
            )
        return not stuck


def open_alerter(url: str) -> Alerter:
    """Build the alerter a URL names (see the module docstring for the table).

    Args:
        url: e.g. ``stdout://`` or ``slack://hooks.slack.com/services/T000/B000/XXXX``.

    Returns:
        The alerter.

    Raises:
        ConfigError: Unknown scheme, or a malformed / insecure Slack URL. Messages never
            contain the webhook secret.

    Example:
        >>> open_alerter("slack://hooks.slack.com/services/T0/B0/secret")
        SlackAlerter('https://hooks.slack.com/services/***')
    """
    scheme, rest = split_scheme(url)
    if scheme == "stdout":
        return StdoutAlerter()
    if scheme in ("slack", "slack+http", "slack+https"):
        from ematix_engine.ops.slack import SlackAlerter, slack_webhook_from_url

        return SlackAlerter(slack_webhook_from_url(url))
    host, slash, _path = rest.partition("/")
    shown = f"{scheme}://{host}/***" if scheme and slash else url  # a mistyped webhook's secret
    raise unknown_scheme_error("alerter", shown, ALERTER_SCHEMES)


def open_alerters(urls: Iterable[str]) -> AlerterGroup:
    """Build a fault-isolating group from repeated ``--alerter`` URLs.

    Args:
        urls: Alerter URLs; duplicates are kept (they are someone's explicit choice).

    Returns:
        A background :class:`AlerterGroup` (empty when ``urls`` is empty): each alerter sends
        from its own thread; call :meth:`AlerterGroup.flush` before exiting.

    Raises:
        ConfigError: Any URL is invalid; checked before anything is sent.
    """
    return AlerterGroup((open_alerter(url) for url in urls), background=True)
