"""``@ematix.connection``: declare a typed connection as a class body."""

from __future__ import annotations

import inspect
from typing import Any

from ematix_engine.connections.base import Connection
from ematix_engine.connections.kinds import build_connection
from ematix_engine.connections.registry import PYTHON_SOURCE, register_connection
from ematix_engine.errors import ConfigError

__all__ = ["connection"]


def connection(cls: type) -> Connection:
    """Turn a class body into a typed connection, register it under the class name, return it.

    The class attribute ``kind`` picks the type (``"postgres"``, ``"kafka"``,
    ``"schema_registry"``, …); every other attribute is a field of that type. String values
    may hold ``${VAR}`` references, resolved when the connection is used. A ``url`` works for
    every kind that has a URL form (``kind = "sqlite"`` with ``url = "sqlite:///app.db"``).

    Args:
        cls: The decorated class. Only its own attributes count; methods, dunder attributes
            and bare annotations are not fields.

    Returns:
        The typed connection (the class itself is discarded).

    Raises:
        ConfigError: ``kind`` is missing or unknown (the message suggests the closest kind),
            a field is unknown (named, with the closest field) or missing, or a value is
            invalid.

    Example:
        >>> from ematix_engine.api.namespace import ematix
        >>> @ematix.connection
        ... class warehouse:
        ...     kind = "postgres"
        ...     url = "${WAREHOUSE_DSN}"
        >>> warehouse
        PostgresConnection(name='warehouse', url='${WAREHOUSE_DSN}')
    """
    if not inspect.isclass(cls):
        raise ConfigError(
            f"@ematix.connection decorates a class, got {type(cls).__name__}; write "
            f"'@ematix.connection' above 'class name: kind = \"…\"'"
        )
    where = f"@ematix.connection class {cls.__name__!r}"
    fields: dict[str, Any] = {}
    for key, value in vars(cls).items():
        if key.startswith("__") and key.endswith("__"):
            continue
        if inspect.isfunction(value) or isinstance(value, staticmethod | classmethod | property):
            raise ConfigError(
                f"{where}: {key!r} is a method; a connection class body holds only field values"
            )
        fields[key] = value
    kind = fields.pop("kind", None)
    if kind is None:
        raise ConfigError(
            f'{where}: set kind = "…" in the class body to say what it connects to '
            f"(postgres, kafka, schema_registry, …)"
        )
    name = fields.pop("name", cls.__name__)
    conn = build_connection(name, fields, kind=kind, where=where)
    return register_connection(conn, source=f"{PYTHON_SOURCE}:{cls.__module__}")
