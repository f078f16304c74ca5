"""Small URL helpers shared by the run log, alerter and metrics factories.

Every ``--run-log`` / ``--alerter`` / ``--metrics`` value is a URL whose scheme picks the
implementation. These helpers split the scheme off and build the "unknown scheme" error (with a
did-you-mean hint). :func:`redact_url` is the engine-wide one from
:mod:`ematix_engine.connections.redaction`, re-exported so the whole engine hides passwords the
same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ematix_engine.connections.redaction import redact_url
from ematix_engine.errors import ConfigError, closest_match

__all__ = ["redact_url", "split_scheme", "unknown_scheme_error"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def split_scheme(url: str) -> tuple[str, str]:
    """Split ``scheme://rest`` into the lower-cased scheme and the rest.

    Args:
        url: A URL such as ``sqlite://.ematix/run_log.db``.

    Returns:
        ``(scheme, rest)``; ``scheme`` is ``""`` when the URL has no ``scheme://`` prefix.

    Example:
        >>> split_scheme("SQLite:///tmp/x.db")
        ('sqlite', '/tmp/x.db')
    """
    match = _SCHEME.match(url)
    if match is None:
        return "", url
    return match.group(1).lower(), url[match.end() :]


def unknown_scheme_error(kind: str, url: str, known: Iterable[str]) -> ConfigError:
    """Build the error for a URL whose scheme no factory knows.

    Args:
        kind: What the URL configures, e.g. ``"run log"``; used in the message.
        url: The offending URL (redacted before it enters the message).
        known: The schemes the factory accepts.

    Returns:
        A :class:`~ematix_engine.errors.ConfigError` listing the known schemes.
    """
    scheme, _ = split_scheme(url)
    schemes = sorted(set(known))
    listed = ", ".join(f"{s}://" for s in schemes)
    if not scheme:
        return ConfigError(
            f"{kind} URL {redact_url(url)!r} has no scheme; write it as one of: {listed}"
        )
    message = f"unknown {kind} URL scheme {scheme!r} in {redact_url(url)!r}"
    hint = closest_match(scheme, schemes)
    if hint:
        message += f" (did you mean {hint!r}?)"
    return ConfigError(f"{message}; use one of: {listed}")
