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
that raises is logged and skipped, so a broken webhook never stops the orchestrator.
"""

from __future__ import annotations

import logging
import sys
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


class AlerterGroup:
    """Send each event to every alerter; log and swallow any alerter's exception.

    Args:
        alerters: The alerters, in delivery order.

    Example:
        >>> group = AlerterGroup([StdoutAlerter()])
        >>> len(group)
        1
    """

    def __init__(self, alerters: Iterable[Alerter] = ()) -> None:
        self.alerters: tuple[Alerter, ...] = tuple(alerters)

    def __repr__(self) -> str:
        return f"AlerterGroup({list(self.alerters)!r})"

    def __len__(self) -> int:
        return len(self.alerters)

    def __iter__(self) -> Iterator[Alerter]:
        return iter(self.alerters)

    def send(self, event: AlertEvent) -> None:
        """Deliver ``event`` to every alerter; never raises ``Exception``.

        Args:
            event: The alert event.
        """
        for alerter in self.alerters:
            try:
                alerter.send(event)
            except Exception:
                logger.exception(
                    "alerter %r failed to deliver the %s event of pipeline %r; continuing",
                    alerter,
                    event.kind.value,
                    event.pipeline,
                )

    def send_all(self, events: Iterable[AlertEvent]) -> None:
        """Deliver several events (e.g. the result of ``events_for_run``).

        Args:
            events: The alert events.
        """
        for event in events:
            self.send(event)


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
        An :class:`AlerterGroup` (empty when ``urls`` is empty).

    Raises:
        ConfigError: Any URL is invalid; checked before anything is sent.
    """
    return AlerterGroup(open_alerter(url) for url in urls)
