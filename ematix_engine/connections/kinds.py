"""The table of connection kinds, and building a typed connection from loose fields.

:func:`build_connection` is the one place where a kind name plus a mapping of field values
(from a TOML table or an ``@ematix.connection`` class body) becomes a typed connection, with
errors that name the declaration, the unknown kind or field, and the closest valid one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ematix_engine.connections.base import Connection
from ematix_engine.connections.databases import (
    DuckDBConnection,
    MySQLConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.connections.kafka import KafkaConnection, SchemaRegistryConnection
from ematix_engine.connections.storage import (
    DeltaLocalConnection,
    DeltaS3Connection,
    ObjectStoreLocalConnection,
    ObjectStoreS3Connection,
)
from ematix_engine.errors import ConfigError, closest_match

__all__ = ["KINDS", "build_connection", "connection_class"]

KINDS: Mapping[str, type[Connection]] = {
    cls.kind: cls
    for cls in (
        PostgresConnection,
        MySQLConnection,
        SQLiteConnection,
        DuckDBConnection,
        KafkaConnection,
        SchemaRegistryConnection,
        DeltaLocalConnection,
        DeltaS3Connection,
        ObjectStoreLocalConnection,
        ObjectStoreS3Connection,
    )
}
"""Every connection type by its ``kind``."""

_URL_KEYS = ("url", "dsn")  # "dsn" is what the reference's TOML files call it


def connection_class(kind: object, *, where: str) -> type[Connection]:
    """Return the connection type for ``kind``.

    Args:
        kind: The kind name, e.g. ``"postgres"``.
        where: The declaration, for the error message (``"class 'warehouse'"``).

    Returns:
        The typed connection class.

    Raises:
        ConfigError: ``kind`` is not a known kind; the message suggests the closest one.
    """
    if isinstance(kind, str) and kind in KINDS:
        return KINDS[kind]
    hint = closest_match(str(kind), KINDS) if isinstance(kind, str) else None
    did_you_mean = f"did you mean {hint!r}? " if hint else ""
    raise ConfigError(
        f"{where}: unknown connection kind {kind!r}; {did_you_mean}"
        f"known kinds: {', '.join(sorted(KINDS))}"
    )


def build_connection(
    name: str,
    fields: Mapping[str, object],
    *,
    kind: str | None = None,
    where: str,
) -> Connection:
    """Build a typed connection from a kind and loose field values.

    A ``url`` (or ``dsn``) is the connection's own field for ``postgres``, ``mysql`` and
    ``schema_registry``. For the other kinds it is parsed with
    :func:`~ematix_engine.connections.connection_from_url` and the remaining fields are laid
    over the result, so ``kind = "kafka"`` plus ``url = "kafka://h:9092"`` plus
    ``group_id = "g"`` works. Without ``kind`` the URL's scheme decides.

    Args:
        name: The connection's name.
        fields: Field values (``kind`` and ``name`` must already be taken out).
        kind: The kind, or ``None`` to take it from the URL.
        where: The declaration, for error messages.

    Returns:
        The validated typed connection.

    Raises:
        ConfigError: Unknown kind or field, missing required field, missing kind and URL, or
            an invalid value. Messages name the declaration and the field.
    """
    from ematix_engine.connections.urls import parse_connection_url

    values = dict(fields)
    if "url" in values and "dsn" in values:
        raise ConfigError(f"{where}: give either 'url' or 'dsn', not both")
    url_key = next((k for k in _URL_KEYS if k in values), None)

    if kind is None:
        if url_key is None:
            raise ConfigError(
                f'{where}: say what it connects to with kind = "…" (one of '
                f'{", ".join(sorted(KINDS))}) or a url = "…"'
            )
        cls, from_url = parse_connection_url(name, _as_url(values.pop(url_key), where))
    else:
        cls = connection_class(kind, where=where)
        from_url = {}
        if url_key is not None:
            if "url" in {f.name for f in dataclasses.fields(cls) if f.init}:
                values["url"] = values.pop(url_key)
            else:
                url_cls, from_url = parse_connection_url(name, _as_url(values.pop(url_key), where))
                if url_cls is not cls:
                    raise ConfigError(
                        f"{where}: kind is {kind!r} but the url describes a {url_cls.kind!r} "
                        f"connection; fix one of them"
                    )

    allowed = [f.name for f in dataclasses.fields(cls) if f.init and f.name != "name"]
    for key in values:
        if key not in allowed:
            hint = closest_match(key, allowed)
            did_you_mean = f"did you mean {hint!r}? " if hint else ""
            raise ConfigError(
                f"{where}: unknown field {key!r} for a {cls.kind!r} connection; "
                f"{did_you_mean}fields: {', '.join(allowed)}"
            )
    values = {**from_url, **values}
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name != "name"
        and f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{where}: a {cls.kind!r} connection needs {', '.join(repr(m) for m in missing)}"
        )
    return cls(name=name, **values)


def _as_url(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: url must be a string, got {type(value).__name__}")
    return value
