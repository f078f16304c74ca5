"""Keep secrets out of ``repr``, ``str``, logs and error messages.

Two layers, both replacing a secret with ``***``:

- **Structural**: the password of a URL's user-info part (``postgres://u:pw@h/db`` becomes
  ``postgres://u:***@h/db``), the value of secret-looking query parameters and ``key=value``
  pairs (``password=…``, ``sslpassword=…``, ``secret_access_key=…``) wherever they appear.
- **By value**: when a connection is given, every secret it holds (secret fields, URL passwords,
  secret ``extra`` settings, and the values those take after ``${VAR}`` interpolation) is
  removed from the text verbatim and percent-encoded. This is what scrubs a driver's error
  message that echoes part of a DSN.

Use :func:`redact` on any text that may have passed through a driver, and :func:`redact_url`
on a URL before showing it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import quote, unquote

__all__ = [
    "MASK",
    "SecretHolder",
    "redact",
    "redact_error_text",
    "redact_url",
    "scrub",
    "url_password",
]

MASK = "***"
"""What a secret is replaced with."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# scheme://user:password@ inside free text. The password runs to the last "@" of the token, so
# an unencoded "@" in a password is still covered (at worst the host is hidden too).
_TEXT_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):(?P<password>[^\s'\"]*)@"
)
# password=…, sslpassword=…, secret_access_key: …, also inside query strings.
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>\b[\w.\-]*(?:password|passwd|secret|token)[\w.\-]*|\bpwd)"
    r"(?P<sep>\s*[=:]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)"
)


class SecretHolder(Protocol):
    """Anything that can list the secrets it holds (every typed connection does)."""

    def secret_values(self) -> frozenset[str]:
        """Return every secret value the object holds, raw and interpolated."""
        ...


def url_password(url: str) -> str | None:
    """Return the password of a URL's user-info part, or ``None`` when it has none.

    Args:
        url: A URL such as ``postgres://user:pw@host/db``.

    Returns:
        The password as written in the URL (still percent-encoded), or ``None``.

    Example:
        >>> url_password("postgres://app:s3cret@db/main")
        's3cret'
    """
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = url[match.end() :]
    query_at = rest.find("?")
    head = rest if query_at < 0 else rest[:query_at]
    at = head.rfind("@")
    if at < 0:
        return None
    userinfo = head[:at]
    if ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query values replaced by ``***``.

    Args:
        url: A URL or DSN, possibly holding credentials (it may also hold unresolved
            ``${VAR}`` references, which are not secret and stay visible).

    Returns:
        The URL, safe to show. Never raises.

    Example:
        >>> redact_url("postgres://app:s3cret@db:5432/main?sslpassword=x&sslmode=require")
        'postgres://app:***@db:5432/main?sslpassword=***&sslmode=require'
    """
    match = _SCHEME.match(url)
    if match is not None:
        rest = url[match.end() :]
        query_at = rest.find("?")
        head, tail = (rest, "") if query_at < 0 else (rest[:query_at], rest[query_at:])
        at = head.rfind("@")
        if at >= 0 and ":" in head[:at]:
            user = head[:at].split(":", 1)[0]
            url = f"{url[: match.end()]}{user}:{MASK}{head[at:]}{tail}"
    return _KEY_VALUE.sub(_mask_key_value, url)


def redact(text: str, conn: SecretHolder | Iterable[SecretHolder] | None = None) -> str:
    """Remove secrets from ``text``.

    Args:
        text: Any text: a driver's error message, a log line, a URL.
        conn: A connection (or several) whose secrets must not appear. Its secret fields, URL
            passwords and their ``${VAR}``-interpolated values are removed verbatim. Without a
            connection only the structural patterns (URL passwords, ``password=…``) apply.

    Returns:
        The text with every secret replaced by ``***``.

    Example:
        >>> from ematix_engine.connections import PostgresConnection
        >>> wh = PostgresConnection(name="wh", url="postgres://app:hunter22@db/main")
        >>> redact('FATAL: database "hunter22" does not exist', wh)
        'FATAL: database "***" does not exist'
    """
    secrets: set[str] = set()
    holders: Iterable[SecretHolder]
    if conn is None:
        holders = ()
    elif hasattr(conn, "secret_values"):
        holders = (conn,)  # type: ignore[assignment]
    else:
        holders = conn  # type: ignore[assignment]
    for holder in holders:
        secrets.update(holder.secret_values())
    text = scrub(text, secrets)
    text = _TEXT_USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _KEY_VALUE.sub(_mask_key_value, text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of the given secrets (also percent-encoded) with ``***``.

    Args:
        text: Any text.
        secrets: The exact secret values to remove; empty strings are ignored.

    Returns:
        The text without those values.

    Example:
        >>> scrub("user=app password=p@ss", ["p@ss"])
        'user=app password=***'
    """
    variants: set[str] = set()
    for secret in secrets:
        if secret:
            variants.update({secret, unquote(secret), quote(secret, safe=""), quote(secret)})
    for secret in sorted((v for v in variants if v), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _mask_key_value(match: re.Match[str]) -> str:
    return f"{match.group('key')}{match.group('sep')}{MASK}"


# libpq echoes the piece of a malformed URL it could not decode: that piece is the password.
_BAD_TOKEN = re.compile(r'(?i)(invalid percent-encoded token:\s*)"[^"\n]*"')
# PostgreSQL's DETAIL of a constraint violation copies the whole row (customer data).
_FAILING_ROW = re.compile(r"(?i)Failing row contains \(.*?\)(?=\.?\s*$|\.\s)", re.MULTILINE)
_DATA_WITHHELD = "Failing row contains (row values withheld)"
# A URL parser cuts an unencoded password at these characters; each piece may be echoed alone.
_URL_DELIMITERS = re.compile(r"[@:/?#]")


def redact_error_text(text: str, conn: SecretHolder | Iterable[SecretHolder] | None = None) -> str:
    r"""Make a driver's error text safe to print, store and alert on.

    On top of :func:`redact`: masks every piece of a secret that a URL parser would cut out of
    an unencoded password (``p%w@rd`` split at ``@``), the token libpq echoes in ``invalid
    percent-encoded token: "…"``, and replaces PostgreSQL's ``Failing row contains (…)``
    detail, which copies row values into the message.

    Args:
        text: The error text.
        conn: The connection(s) the error came from, if known.

    Returns:
        The text with secrets and row values masked.

    Example:
        >>> redact_error_text('invalid percent-encoded token: "s3%cr"')
        'invalid percent-encoded token: ***'
        >>> redact_error_text("null value violates not-null constraint\nDETAIL:  Failing row "
        ...                   "contains (1, alice@example.com, null).")
        'null value violates not-null constraint\nDETAIL:  Failing row contains (row values withheld).'
    """
    holders: Iterable[SecretHolder]
    if conn is None:
        holders = ()
    elif hasattr(conn, "secret_values"):
        holders = (conn,)  # type: ignore[assignment]
    else:
        holders = list(conn)  # type: ignore[arg-type]
    pieces: set[str] = set()
    for holder in holders:
        for secret in holder.secret_values():
            pieces.update(p for p in _URL_DELIMITERS.split(secret) if len(p) >= 3)
    text = redact(text, holders)
    text = scrub(text, pieces)
    text = _BAD_TOKEN.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    return _FAILING_ROW.sub(_DATA_WITHHELD, text)
