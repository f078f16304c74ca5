"""Named connections: registering them in Python and resolving a name through the chain.

A name resolves through these sources, highest priority first; the first that defines the
name wins:

1. ``EMATIX_DSN_<NAME>`` (alias ``EMATIX_FLOW_DSN_<NAME>``): a URL in the environment.
2. ``EMATIX_DSN`` (alias ``EMATIX_FLOW_DSN``): only for the name ``default``.
3. ``./.ematix.toml`` (alias ``./.ematix-flow.toml``) in the working directory.
4. ``~/.ematix/connections.toml`` (alias ``~/.ematix-flow/connections.toml``).
5. Connections registered in Python: :func:`register_connection` and ``@ematix.connection``.
6. The ``url=`` given to :func:`connect`, as a last-resort fallback.

Why Python sits below the files: everything outside the code overrides the code, so an
operator can repoint a connection declared in a pipeline module (for one process with an env
var, for a checkout with ``.ematix.toml``, for a user with ``~/.ematix``) without editing it.
``ematix connections list`` shows which source won for each name.

Passing a connection *object* instead of a name skips the chain, except for objects that are
registered: :func:`get_connection` looks those up by name, so the overrides above apply to
``@ematix.connection`` declarations too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from ematix_engine.connections.base import Connection
from ematix_engine.connections.kinds import build_connection
from ematix_engine.connections.sources import (
    DEFAULT_ENV_VARS,
    ENV_PREFIXES,
    env_var_name,
    project_files,
    read_toml_connections,
    user_files,
)
from ematix_engine.connections.urls import connection_from_url
from ematix_engine.errors import ConfigError, UnknownNameError

__all__ = [
    "ConnectionEntry",
    "clear_registry",
    "connect",
    "get_connection",
    "list_connections",
    "locate_connection",
    "register_connection",
    "registered_connections",
    "unregister_connection",
]

logger = logging.getLogger("ematix.connections")

DEFAULT_NAME = "default"
PYTHON_SOURCE = "python"

_lock = threading.RLock()
_registered: dict[str, tuple[Connection, str]] = {}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionEntry:
    """A named connection together with where its definition came from.

    Attributes:
        name: The connection name.
        source: Where the winning definition lives: ``env EMATIX_DSN_X``, a TOML file path,
            ``python`` / ``python:<module>``, or ``inline``.
        connection: The typed connection, or ``None`` when the definition is invalid.
        error: Why the definition is invalid (redacted), else ``None``.
    """

    name: str
    source: str
    connection: Connection | None
    error: str | None = None

    @property
    def kind(self) -> str:
        """The connection's kind, or ``"?"`` when the definition is invalid."""
        return self.connection.kind if self.connection is not None else "?"


# -- registering in Python ---------------------------------------------------------------------


def register_connection(
    conn: Connection, *, replace: bool = True, source: str | None = None
) -> Connection:
    """Register a typed connection under its name.

    Args:
        conn: The connection.
        replace: When ``False``, registering a different connection under a name that is
            already registered is an error. Re-registering an equal connection is always fine
            (a module imported twice).
        source: Where it was declared, shown by ``ematix connections list``; defaults to
            ``"python"``.

    Returns:
        ``conn``, so the call can be used inline.

    Raises:
        ConfigError: ``conn`` is not a connection, or the name is taken and ``replace`` is
            ``False``.

    Example:
        >>> from ematix_engine.connections import SQLiteConnection
        >>> local = register_connection(SQLiteConnection(name="local", path="local.db"))
        >>> get_connection("local") == local
        True
    """
    if not isinstance(conn, Connection):
        raise ConfigError(
            f"register_connection() takes a typed connection (PostgresConnection, "
            f"KafkaConnection, …), got {type(conn).__name__}"
        )
    with _lock:
        existing = _registered.get(conn.name)
        if existing is not None and not replace and existing[0] != conn:
            raise ConfigError(
                f"connection {conn.name!r} is already registered (from {existing[1]}); "
                f"rename one of them or pass replace=True"
            )
        _registered[conn.name] = (conn, source or PYTHON_SOURCE)
    logger.debug("registered connection %s", conn)
    return conn


def unregister_connection(name: str) -> None:
    """Remove a connection registered in Python (a no-op when it is not registered).

    Args:
        name: The connection name.
    """
    with _lock:
        _registered.pop(name, None)


def clear_registry() -> None:
    """Forget every connection registered in Python (environment and files are unaffected)."""
    with _lock:
        _registered.clear()


def registered_connections() -> dict[str, Connection]:
    """Return the connections registered in Python, by name.

    Returns:
        A copy of the Python registry (the environment and files are not consulted).
    """
    with _lock:
        return {name: conn for name, (conn, _) in _registered.items()}


# -- the chain ---------------------------------------------------------------------------------


def _from_url(name: str, url: str, source: str) -> Connection:
    try:
        return connection_from_url(name, url)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None


def _env_lookup(name: str) -> tuple[str, str] | None:
    for prefix in ENV_PREFIXES:
        variable = env_var_name(name, prefix)
        if variable in os.environ:
            return variable, os.environ[variable]
    if name == DEFAULT_NAME:
        for variable in DEFAULT_ENV_VARS:
            if variable in os.environ:
                return variable, os.environ[variable]
    return None


def _toml_lookup(name: str, files: list[Path]) -> tuple[Path, Mapping[str, object]] | None:
    for path in files:
        entries = read_toml_connections(path)
        if name in entries:
            return path, entries[name]
    return None


def _build_from_toml(name: str, path: Path, fields: Mapping[str, object]) -> Connection:
    values = dict(fields)
    kind = values.pop("kind", None)
    if kind is not None and not isinstance(kind, str):
        raise ConfigError(f"[connections.{name}] in {path}: kind must be a string")
    declared = values.pop("name", name)
    if declared != name:
        raise ConfigError(
            f"[connections.{name}] in {path}: name {declared!r} differs from the table name; "
            f"drop the name field"
        )
    return build_connection(name, values, kind=kind, where=f"[connections.{name}] in {path}")


def _lookup(name: str) -> ConnectionEntry | None:
    found = _env_lookup(name)
    if found is not None:
        variable, url = found
        source = f"env {variable}"
        return ConnectionEntry(name=name, source=source, connection=_from_url(name, url, source))
    for files in (project_files(), user_files()):
        hit = _toml_lookup(name, files)
        if hit is not None:
            path, fields = hit
            return ConnectionEntry(
                name=name, source=str(path), connection=_build_from_toml(name, path, fields)
            )
    with _lock:
        registered = _registered.get(name)
    if registered is not None:
        return ConnectionEntry(name=name, source=registered[1], connection=registered[0])
    return None


def _known_names() -> set[str]:
    names: set[str] = set()
    for path in (*project_files(), *user_files()):
        names.update(read_toml_connections(path))
    with _lock:
        names.update(_registered)
    by_variable = {env_var_name(n, p): n for n in names for p in ENV_PREFIXES}
    for variable in os.environ:
        if variable in DEFAULT_ENV_VARS:
            names.add(DEFAULT_NAME)
            continue
        for prefix in ENV_PREFIXES:
            if variable.startswith(prefix) and len(variable) > len(prefix):
                names.add(by_variable.get(variable, variable[len(prefix) :].lower()))
                break
    return names


def _where_looked(name: str) -> str:
    files = [str(p) for p in (*project_files(), *user_files())]
    return (
        f"looked in env {env_var_name(name)} / {env_var_name(name, ENV_PREFIXES[1])}"
        + (f", {' / '.join(DEFAULT_ENV_VARS)}" if name == DEFAULT_NAME else "")
        + f", {', '.join(files)} and connections registered in Python"
    )


def locate_connection(name: str) -> ConnectionEntry:
    """Resolve a connection name through the chain and say where it was found.

    Args:
        name: The connection name.

    Returns:
        The winning definition.

    Raises:
        UnknownNameError: No source defines ``name``; the message suggests the closest
            known name and lists where it looked.
        ConfigError: The winning definition is invalid, or a connection file is broken.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a connection name must be a non-empty string, got {name!r}")
    entry = _lookup(name)
    if entry is None:
        error = UnknownNameError("connection", name, sorted(_known_names()))
        error.message = f"{error.message} ({_where_looked(name)})"
        error.args = (error.message,)
        raise error
    logger.debug(
        "connection %r resolved from %s: %s",
        name,
        entry.source,
        entry.connection.display_url() if entry.connection else "?",
    )
    return entry


def get_connection(name: str | Connection) -> Connection:
    """Return the typed connection for a name (or a connection object).

    Args:
        name: A connection name, resolved through the chain described in this module; or a
            connection object. An object registered in Python is looked up by its name (so
            environment and file overrides apply); an unregistered object is returned as is.

    Returns:
        The typed connection. ``${VAR}`` references are still unresolved; call
        :meth:`~ematix_engine.connections.base.Connection.resolved` when you use it.

    Raises:
        UnknownNameError: The name is not defined anywhere.
        ConfigError: The winning definition is invalid.

    Example:
        >>> import os
        >>> os.environ["EMATIX_DSN_SCRATCH"] = "duckdb://:memory:"
        >>> get_connection("scratch")
        DuckDBConnection(name='scratch', path=':memory:')
        >>> del os.environ["EMATIX_DSN_SCRATCH"]
    """
    if isinstance(name, Connection):
        with _lock:
            registered = _registered.get(name.name)
        if registered is None or registered[0] is not name:
            return name
        name = name.name
    entry = locate_connection(name)
    assert entry.connection is not None  # locate_connection raises instead
    return entry.connection


def connect(name: str = DEFAULT_NAME, *, url: str | None = None) -> Connection:
    """Return a typed connection by name, falling back to an inline URL.

    The escape hatch at the bottom of the chain: ``name`` is resolved as usual, and only when
    no source defines it is ``url`` parsed. To bypass the chain entirely use
    :func:`~ematix_engine.connections.connection_from_url`.

    Args:
        name: The connection name (``"default"`` unless given).
        url: A connection URL used when nothing else defines ``name``.

    Returns:
        The typed connection (not opened).

    Raises:
        UnknownNameError: ``name`` is not defined anywhere and no ``url`` was given.
        ConfigError: A definition or the URL is invalid.

    Example:
        >>> connect("scratch_db", url="sqlite://:memory:")
        SQLiteConnection(name='scratch_db', path=':memory:')
    """
    try:
        return locate_connection(name).connection  # type: ignore[return-value]
    except UnknownNameError:
        if url is None:
            raise
    logger.debug("connection %r taken from the inline url", name)
    return connection_from_url(name, url)


def list_connections() -> list[ConnectionEntry]:
    """Return every connection name the chain knows, with the winning definition of each.

    Invalid definitions are listed with their (redacted) error rather than raised, so one
    broken entry does not hide the others.

    Returns:
        Entries sorted by name.

    Raises:
        ConfigError: A connection file cannot be read or parsed.
    """
    entries: list[ConnectionEntry] = []
    for name in sorted(_known_names()):
        try:
            entry = _lookup(name)
        except ConfigError as exc:
            entry = ConnectionEntry(
                name=name, source=_source_of(name), connection=None, error=exc.message
            )
        if entry is not None:
            entries.append(entry)
    return entries


def _source_of(name: str) -> str:
    found = _env_lookup(name)
    if found is not None:
        return f"env {found[0]}"
    for path in (*project_files(), *user_files()):
        if name in read_toml_connections(path):
            return str(path)
    with _lock:
        registered = _registered.get(name)
    return registered[1] if registered is not None else PYTHON_SOURCE
