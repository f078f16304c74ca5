"""Parse a connection URL into a typed connection.

====================================  ===========================================
URL                                   Connection
====================================  ===========================================
``postgres://u:pw@host:5432/db``      :class:`PostgresConnection` (also ``postgresql://``)
``mysql://u:pw@host:3306/db``         :class:`MySQLConnection`
``sqlite:///abs/path.db``             :class:`SQLiteConnection`, absolute path
``sqlite://rel/path.db``              :class:`SQLiteConnection`, relative to the cwd
``sqlite://:memory:``                 :class:`SQLiteConnection` in memory
``duckdb:///abs.duckdb``              :class:`DuckDBConnection` (same three forms)
``delta:///path``                     :class:`DeltaLocalConnection`
``file:///dir?format=parquet``        :class:`ObjectStoreLocalConnection`
``kafka://u:pw@h1:9092,h2:9092?…``    :class:`KafkaConnection`; query keys are its fields
====================================  ===========================================

Database URLs are kept as written (``${VAR}`` included) and resolved at use time; for the
path-based kinds the path is taken from the URL, still holding any ``${VAR}``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote

from ematix_engine.connections.base import Connection
from ematix_engine.connections.databases import (
    MEMORY,
    DuckDBConnection,
    MySQLConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.connections.formats import FILE_FORMATS, format_from_path
from ematix_engine.connections.kafka import KafkaConnection
from ematix_engine.connections.redaction import redact_url
from ematix_engine.connections.storage import DeltaLocalConnection, ObjectStoreLocalConnection
from ematix_engine.errors import ConfigError, closest_match

__all__ = ["KNOWN_SCHEMES", "connection_from_url", "parse_connection_url"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_Parsed = tuple[type[Connection], dict[str, object]]


def connection_from_url(name: str, url: str) -> Connection:
    """Build a typed connection from a URL.

    Args:
        name: The connection's name.
        url: A URL in one of the forms in this module's table. It may hold ``${VAR}``
            references, except in the scheme.

    Returns:
        The typed connection (not opened).

    Raises:
        ConfigError: The scheme is missing or unknown (the message lists the known schemes),
            or the rest of the URL does not fit the scheme.

    Example:
        >>> connection_from_url("local", "sqlite:///tmp/app.db")
        SQLiteConnection(name='local', path='/tmp/app.db')
        >>> connection_from_url("mem", "duckdb://:memory:").path
        ':memory:'
    """
    cls, fields = parse_connection_url(name, url)
    if cls is ObjectStoreLocalConnection and "format" not in fields:
        raise _error(
            name,
            url,
            f"does not say the file format; add ?format= one of {', '.join(FILE_FORMATS)}",
        )
    return cls(name=name, **fields)


def parse_connection_url(name: str, url: str) -> tuple[type[Connection], dict[str, object]]:
    """Split a connection URL into its connection type and field values, without building it.

    Used to lay further fields over a URL (``kind = "object_store_local"``, ``url = "file:///d"``
    and ``format = "csv"`` in one TOML table) before the connection is validated.

    Args:
        name: The connection's name (for error messages).
        url: A connection URL.

    Returns:
        ``(connection class, {field: value})``; the file format may be missing.

    Raises:
        ConfigError: As :func:`connection_from_url`, except for a missing file format.
    """
    if not isinstance(url, str):
        raise ConfigError(f"connection {name!r}: url must be a string, got {type(url).__name__}")
    url = url.strip()
    match = _SCHEME.match(url)
    known = ", ".join(f"{s}://" for s in KNOWN_SCHEMES)
    if match is None:
        if url.startswith("${"):
            raise ConfigError(
                f"connection {name!r}: url {redact_url(url)!r} hides its scheme behind a "
                f'variable, so its kind is unknown until use; declare kind = "…" next to it'
            )
        raise ConfigError(
            f"connection {name!r}: {redact_url(url)!r} is not a connection URL; "
            f"expected one of {known}"
        )
    scheme = match.group(1).lower()
    parser = _PARSERS.get(scheme)
    if parser is None:
        hint = closest_match(scheme, _PARSERS)
        did_you_mean = f"did you mean {hint}://? " if hint else ""
        raise ConfigError(
            f"connection {name!r}: unknown URL scheme {scheme!r} in {redact_url(url)!r}; "
            f"{did_you_mean}known schemes: {known}"
        )
    return parser(name, scheme, url, url[match.end() :])


def _error(name: str, url: str, problem: str) -> ConfigError:
    return ConfigError(f"connection {name!r}: URL {redact_url(url)!r} {problem}")


def _split_query(name: str, url: str, rest: str) -> tuple[str, dict[str, str]]:
    body, _, query = rest.partition("?")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            raise _error(name, url, f"repeats the query parameter {key!r}")
        params[key] = value
    return body, params


def _no_params(name: str, url: str, params: dict[str, str]) -> None:
    if params:
        raise _error(
            name, url, f"has query parameters ({', '.join(params)}), which this scheme ignores"
        )


def _path(name: str, url: str, body: str, *, allow_memory: bool) -> str:
    if body.startswith("localhost/"):
        body = body[len("localhost") :]
    path = unquote(body)
    if allow_memory and path in (MEMORY, "/" + MEMORY):
        return MEMORY
    if path.startswith("/"):
        path = "/" + path.lstrip("/")
    if not path or path == "/":
        raise _error(name, url, "has no path; write scheme:///absolute/path or scheme://relative")
    return path


def _database(name: str, scheme: str, url: str, rest: str) -> _Parsed:
    if scheme in PostgresConnection.schemes:
        return PostgresConnection, {"url": url}
    return MySQLConnection, {"url": url}


def _file_database(name: str, scheme: str, url: str, rest: str) -> _Parsed:
    body, params = _split_query(name, url, rest)
    _no_params(name, url, params)
    cls = SQLiteConnection if scheme == "sqlite" else DuckDBConnection
    return cls, {"path": _path(name, url, body, allow_memory=True)}


def _delta(name: str, scheme: str, url: str, rest: str) -> _Parsed:
    body, params = _split_query(name, url, rest)
    _no_params(name, url, params)
    return DeltaLocalConnection, {"path": _path(name, url, body, allow_memory=False)}


def _file(name: str, scheme: str, url: str, rest: str) -> _Parsed:
    body, params = _split_query(name, url, rest)
    path = _path(name, url, body, allow_memory=False)
    file_format = params.pop("format", None) or format_from_path(path)
    _no_params(name, url, params)
    fields: dict[str, object] = {"path": path}
    if file_format is not None:
        fields["format"] = file_format
    return ObjectStoreLocalConnection, fields


_KAFKA_PARAMS = tuple(
    f.name
    for f in dataclasses.fields(KafkaConnection)
    if f.init
    and f.name not in ("name", "bootstrap_servers", "config", "extra")
    and f.name not in ("sasl_plain_username", "sasl_plain_password")
)


def _kafka(name: str, scheme: str, url: str, rest: str) -> _Parsed:
    body, params = _split_query(name, url, rest)
    fields: dict[str, object] = {}
    at = body.rfind("@")
    if at >= 0:
        user, sep, password = body[:at].partition(":")
        fields["sasl_plain_username"] = unquote(user)
        if sep:
            fields["sasl_plain_password"] = unquote(password)
        body = body[at + 1 :]
    servers = body.rstrip("/")
    if not servers:
        raise _error(name, url, "has no bootstrap servers; write kafka://host:port")
    fields["bootstrap_servers"] = servers
    for key, value in params.items():
        if key not in _KAFKA_PARAMS:
            hint = closest_match(key, _KAFKA_PARAMS)
            did_you_mean = f"did you mean {hint!r}? " if hint else ""
            raise _error(
                name,
                url,
                f"has an unknown query parameter {key!r}; {did_you_mean}"
                f"known: {', '.join(_KAFKA_PARAMS)}",
            )
        fields[key] = value
    return KafkaConnection, fields


_PARSERS: dict[str, Callable[[str, str, str, str], _Parsed]] = {
    "postgres": _database,
    "postgresql": _database,
    "mysql": _database,
    "sqlite": _file_database,
    "duckdb": _file_database,
    "delta": _delta,
    "file": _file,
    "kafka": _kafka,
}

KNOWN_SCHEMES = tuple(sorted(_PARSERS))
"""Schemes :func:`connection_from_url` understands."""
