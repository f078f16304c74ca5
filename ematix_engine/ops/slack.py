"""Slack incoming-webhook alerter (``slack://hooks.slack.com/services/T…/B…/…``).

Messages go through :class:`slack_sdk.webhook.WebhookClient`. The last part of a webhook URL is
a secret that lets anyone post to the channel, so it is kept out of ``repr``, error messages and
log lines; that includes slack-sdk's own debug/retry logging, whose records are scrubbed by a
filter on the logger this module hands to the client.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from urllib.parse import urlsplit, urlunsplit

from slack_sdk.webhook import WebhookClient

from ematix_engine.errors import ConfigError, ConnectionFailedError
from ematix_engine.ops.events import AlertEvent, AlertKind

__all__ = ["SlackAlerter", "redact_webhook_url", "slack_webhook_from_url"]

logger = logging.getLogger("ematix.ops.slack")

_MAX_ERROR_CHARS = 2500
_EMOJI = {
    AlertKind.FAILED: ":warning:",
    AlertKind.GAVE_UP: ":rotating_light:",
    AlertKind.RECOVERED: ":white_check_mark:",
    AlertKind.VIOLATION: ":no_entry:",
}


def redact_webhook_url(url: str) -> str:
    """Hide everything after the first path segment of a webhook URL.

    Args:
        url: e.g. ``https://hooks.slack.com/services/T000/B000/XXXX``.

    Returns:
        e.g. ``https://hooks.slack.com/services/***``.

    Example:
        >>> redact_webhook_url("https://hooks.slack.com/services/T0/B0/secret")
        'https://hooks.slack.com/services/***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    segments = [s for s in parts.path.split("/") if s]
    path = f"/{segments[0]}/***" if len(segments) > 1 else ("/***" if segments else "")
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))


class _Scrubber(logging.Filter):
    """Replace registered webhook URLs in records of the slack-sdk logger."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}

    def add(self, secret: str, shown: str) -> None:
        with self._lock:
            self._secrets[secret] = shown

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = message
        with self._lock:
            secrets = sorted(self._secrets.items(), key=lambda item: -len(item[0]))
        for secret, shown in secrets:
            scrubbed = scrubbed.replace(secret, shown)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_SDK_LOGGER = logging.getLogger("ematix.ops.slack.sdk")
_SCRUBBER = _Scrubber()
_SDK_LOGGER.addFilter(_SCRUBBER)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def slack_webhook_from_url(url: str) -> str:
    """Turn an alerter URL into the webhook URL to POST to.

    ============================================  ==========================================
    Alerter URL                                   Webhook
    ============================================  ==========================================
    ``slack://hooks.slack.com/services/T/B/X``    ``https://hooks.slack.com/services/T/B/X``
    ``slack+https://host/path``                   ``https://host/path`` (Slack-compatible)
    ``slack+http://127.0.0.1:8080/path``          ``http://…``, loopback hosts only (tests,
                                                  local relays): secrets never go out in
                                                  clear text
    ============================================  ==========================================

    Args:
        url: The ``--alerter`` value.

    Returns:
        The http(s) webhook URL.

    Raises:
        ConfigError: The URL has no host or path, or asks for plain http to a remote host.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    target = {"slack": "https", "slack+https": "https", "slack+http": "http"}.get(scheme)
    if not sep or target is None:
        raise ConfigError(
            f"alerter URL {redact_webhook_url(url)!r} is not a Slack URL; use "
            "slack://hooks.slack.com/services/T…/B…/…"
        )
    webhook = f"{target}://{rest}"
    parts = urlsplit(webhook)
    if not parts.hostname or parts.path.strip("/") == "":
        raise ConfigError(
            f"Slack alerter URL {redact_webhook_url(webhook)!r} needs a host and the webhook "
            "path, e.g. slack://hooks.slack.com/services/T000/B000/XXXX"
        )
    if target == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"Slack alerter URL {redact_webhook_url(webhook)!r}: plain http is allowed only to "
            "a loopback address (localhost, 127.0.0.1, ::1); use slack:// or slack+https://"
        )
    return webhook


class SlackAlerter:
    """Post alert events to a Slack incoming webhook.

    Every request is bounded as a whole: ``timeout`` bounds each socket operation (connect,
    each read) and ``deadline`` the request from start to end, so a server that trickles its
    answer a byte at a time cannot hold the caller longer than ``deadline``. (The request runs
    on a daemon thread; past the deadline it is abandoned and :meth:`send` raises.)

    Args:
        webhook_url: The ``https://hooks.slack.com/services/…`` URL (http only to loopback).
        timeout: Seconds to wait for Slack per socket operation.
        deadline: Seconds one message may take in total.

    Raises:
        ConfigError: ``webhook_url`` is not an http(s) URL.

    Example:
        >>> alerter = SlackAlerter("https://hooks.slack.com/services/T0/B0/secret")
        >>> alerter
        SlackAlerter('https://hooks.slack.com/services/***')
    """

    def __init__(self, webhook_url: str, *, timeout: float = 10, deadline: float = 15) -> None:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Slack webhook {redact_webhook_url(webhook_url)!r} must be an https URL such "
                "as https://hooks.slack.com/services/T000/B000/XXXX"
            )
        self._shown = redact_webhook_url(webhook_url)
        self._secret = webhook_url
        _SCRUBBER.add(webhook_url, self._shown)
        self._deadline = float(deadline)
        timeout = min(float(timeout), self._deadline)
        self._client = WebhookClient(webhook_url, timeout=timeout, logger=_SDK_LOGGER)

    def __repr__(self) -> str:
        return f"SlackAlerter({self._shown!r})"

    @staticmethod
    def format(event: AlertEvent) -> str:
        """Return the Slack message text (mrkdwn) for ``event``.

        Args:
            event: The alert event.

        Returns:
            Text naming the pipeline, the attempt and, for failures, the error.
        """
        pipeline = _escape(event.pipeline)
        if event.kind is AlertKind.RECOVERED:
            headline = (
                f"*{pipeline}* recovered: attempt {event.attempt} succeeded after "
                f"{event.failed_attempts} failed attempt{'s' if event.failed_attempts != 1 else ''}"
            )
        elif event.kind is AlertKind.VIOLATION:
            headline = f"*{pipeline}* violated a causal constraint"
        elif event.kind is AlertKind.GAVE_UP:
            headline = f"*{pipeline}* gave up after attempt {event.attempt}"
        else:
            headline = f"*{pipeline}* failed on attempt {event.attempt}"
        lines = [f"{_EMOJI[event.kind]} {headline}"]
        if event.error:
            error = event.error
            if len(error) > _MAX_ERROR_CHARS:
                error = error[:_MAX_ERROR_CHARS] + " …(truncated)"
            lines.append(f"```{_escape(error)}```")
        details = [f"at {event.at:%Y-%m-%d %H:%M:%S} UTC"]
        if event.run_id:
            details.append(f"run `{_escape(event.run_id)}`")
        lines.append(" · ".join(details))
        return "\n".join(lines)

    def send(self, event: AlertEvent) -> None:
        """Post ``event`` to the webhook.

        Args:
            event: The alert event.

        Raises:
            ConnectionFailedError: Slack was unreachable or did not answer 200 (redacted).
        """
        outcome: list = []
        text = self.format(event)

        def post() -> None:
            try:
                outcome.append(self._client.send(text=text))
            except Exception as exc:  # urllib errors, reported below
                outcome.append(exc)

        worker = threading.Thread(target=post, name="ematix-slack-post", daemon=True)
        worker.start()
        worker.join(self._deadline)
        if not outcome:
            raise ConnectionFailedError(
                self._shown,
                f"no complete answer within {self._deadline:g} s (the request was abandoned)",
            )
        response = outcome[0]
        if isinstance(response, Exception):  # scrubbed in case the message quotes the URL
            reason = f"{type(response).__name__}: {response}".replace(self._secret, self._shown)
            raise ConnectionFailedError(self._shown, reason)
        if response.status_code != 200:
            body = (response.body or "")[:200]
            raise ConnectionFailedError(
                self._shown, f"Slack answered HTTP {response.status_code}: {body}"
            )


def _escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
