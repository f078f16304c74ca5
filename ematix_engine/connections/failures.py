"""Turn a driver's failure to open a connection into one clear, redacted line.

:func:`connection_failed` builds the :class:`~ematix_engine.errors.ConnectionFailedError` that
opening a backend raises (wrong password, refused port, unknown database, a DuckDB file locked
by another process): one line naming the connection, the setting that defined it (e.g.
``env EMATIX_DSN_WAREHOUSE`` or ``./.ematix.toml``) and what to do next. The driver's text is
redacted and folded onto one line.

Example:
    >>> from ematix_engine.connections import PostgresConnection
    >>> conn = PostgresConnection(name="wh", url="postgres://app:s3cret@db/main")
    >>> print(connection_failed(conn, OSError("password s3cret rejected")))  # doctest: +ELLIPSIS
    connection 'wh' failed: OSError: password *** rejected; ...
"""

from __future__ import annotations

from ematix_engine.connections.base import Connection
from ematix_engine.connections.redaction import redact
from ematix_engine.errors import ConnectionFailedError, EmatixError

__all__ = ["connection_failed"]

#: Driver text → what to do about it (first match wins; matched case-insensitively).
_HINTS: tuple[tuple[str, str], ...] = (
    (
        "could not set lock",
        "another process holds DuckDB's one-writer lock on this file (a running "
        "`dagster dev` load, a notebook, the DuckDB CLI); wait for it or close it",
    ),
    ("password authentication failed", "fix the user or password in that setting"),
    ("role ", "fix the user in that setting"),
    ("does not exist", "fix the database name in that setting, or create the database"),
    ("connection refused", "check the host and port in that setting and that the server runs"),
    ("timeout", "check the host and port in that setting and the network"),
)


def connection_failed(conn: Connection, error: BaseException) -> ConnectionFailedError:
    """The error to raise when ``conn`` could not be opened because of ``error``.

    Args:
        conn: the typed connection that failed.
        error: the driver's exception.

    Returns:
        A :class:`ConnectionFailedError` whose one-line message names the connection, where it
        was defined and what to do; no credential of ``conn`` appears in it.
    """
    text = " ".join(str(error).split())
    if not isinstance(error, EmatixError):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    reason = redact(text, conn)
    source = _defined_by(conn.name)
    if source:
        reason += f" (defined by {source})"
    lowered = reason.lower()
    hint = next((h for pattern, h in _HINTS if pattern in lowered), "check that setting")
    reason += f"; {hint}, then try `ematix connections check {conn.name}`"
    return ConnectionFailedError(conn.name, reason)


def _defined_by(name: str) -> str | None:
    """Which setting defines ``name`` (env variable, TOML file, Python), if it is known."""
    from ematix_engine.connections.registry import locate_connection

    try:
        return locate_connection(name).source
    except Exception:  # an unregistered connection object: nothing to name
        return None
