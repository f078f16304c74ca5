"""Typed connections, the named-connection registry and its resolution chain.

- Typed records, one per system (``PostgresConnection``, ``KafkaConnection``, …), validated
  at construction; ``${VAR}`` references resolve at use time (:meth:`Connection.resolved`).
- Names resolve through env vars, ``./.ematix.toml``, ``~/.ematix/connections.toml`` and
  Python registrations (:func:`get_connection`; order in :mod:`.registry`).
- Secrets never show in ``repr``/``str``; :func:`redact` scrubs any other text.
- :func:`connection_from_url` parses URL forms; :func:`check_connection` opens one for real.

The user guide page is ``docs/connections.md``.
"""

from __future__ import annotations

from ematix_engine.connections.base import Connection
from ematix_engine.connections.check import check_connection
from ematix_engine.connections.databases import (
    DuckDBConnection,
    MySQLConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.connections.decorator import connection
from ematix_engine.connections.formats import FILE_FORMATS, format_from_path
from ematix_engine.connections.interpolation import interpolate
from ematix_engine.connections.kafka import KafkaConnection, SchemaRegistryConnection
from ematix_engine.connections.kinds import KINDS, build_connection
from ematix_engine.connections.redaction import redact, redact_url
from ematix_engine.connections.registry import (
    ConnectionEntry,
    clear_registry,
    connect,
    get_connection,
    list_connections,
    locate_connection,
    register_connection,
    registered_connections,
    unregister_connection,
)
from ematix_engine.connections.sources import env_var_name
from ematix_engine.connections.storage import (
    DeltaLocalConnection,
    DeltaS3Connection,
    ObjectStoreLocalConnection,
    ObjectStoreS3Connection,
)
from ematix_engine.connections.urls import KNOWN_SCHEMES, connection_from_url

__all__ = [
    "FILE_FORMATS",
    "KINDS",
    "KNOWN_SCHEMES",
    "Connection",
    "ConnectionEntry",
    "DeltaLocalConnection",
    "DeltaS3Connection",
    "DuckDBConnection",
    "KafkaConnection",
    "MySQLConnection",
    "ObjectStoreLocalConnection",
    "ObjectStoreS3Connection",
    "PostgresConnection",
    "SQLiteConnection",
    "SchemaRegistryConnection",
    "build_connection",
    "check_connection",
    "clear_registry",
    "connect",
    "connection",
    "connection_from_url",
    "env_var_name",
    "format_from_path",
    "get_connection",
    "interpolate",
    "list_connections",
    "locate_connection",
    "redact",
    "redact_url",
    "register_connection",
    "registered_connections",
    "unregister_connection",
]
