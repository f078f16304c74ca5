"""Database connections: PostgreSQL, MySQL, SQLite and DuckDB."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from ematix_engine.connections.base import Connection

__all__ = ["DuckDBConnection", "MySQLConnection", "PostgresConnection", "SQLiteConnection"]

MEMORY = ":memory:"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class PostgresConnection(Connection):
    """A PostgreSQL database, given as a URL.

    Attributes:
        url: ``postgres://user:password@host:port/dbname?options`` (``postgresql://`` works
            too). May hold ``${VAR}`` references, for example ``"postgres://${WAREHOUSE_DSN}"``
            or ``"${WAREHOUSE_URL}"``.

    Example:
        >>> PostgresConnection(name="warehouse", url="postgres://app:s3cret@db:5432/main")
        PostgresConnection(name='warehouse', url='postgres://app:***@db:5432/main')
    """

    kind: ClassVar[str] = "postgres"
    url_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    schemes: ClassVar[frozenset[str]] = frozenset({"postgres", "postgresql"})

    url: str

    def _validate(self) -> None:
        self._require_text("url")
        self._check_url_scheme("url", self.schemes)

    def to_url(self) -> str:
        """Return the URL as written."""
        return self.url

    def conninfo(self) -> str:
        """Return the URL with ``${VAR}`` resolved, ready for ``psycopg.connect``.

        Returns:
            The connection string (it holds the password: never log it).
        """
        return self.resolved().url


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class MySQLConnection(Connection):
    """A MySQL (or MariaDB) database, given as a URL.

    Attributes:
        url: ``mysql://user:password@host:port/dbname``.

    Example:
        >>> MySQLConnection(name="shop", url="mysql://app:pw@127.0.0.1:3306/shop").display_url()
        'mysql://app:***@127.0.0.1:3306/shop'
    """

    kind: ClassVar[str] = "mysql"
    url_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    schemes: ClassVar[frozenset[str]] = frozenset({"mysql"})

    url: str

    def _validate(self) -> None:
        self._require_text("url")
        self._check_url_scheme("url", self.schemes)

    def to_url(self) -> str:
        """Return the URL as written."""
        return self.url

    def connect_kwargs(self) -> dict[str, Any]:
        """Return ``host``, ``port``, ``user``, ``password`` and ``database`` for a driver.

        The URL is resolved first; the result holds the password, so never log it.

        Returns:
            Keyword arguments accepted by both ``pymysql.connect`` and
            ``mysql.connector.connect``.
        """
        parts = urlsplit(self.resolved().url)
        kwargs: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 3306,
            "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "database": unquote(parts.path.lstrip("/")) or None,
        }
        return {k: v for k, v in kwargs.items() if v is not None}


class _FileDatabase(Connection):
    """Shared validation of the embedded, file-backed databases (not a dataclass itself)."""

    __slots__ = ()

    def _validate(self) -> None:
        path = getattr(self, "path")  # noqa: B009 - declared by the dataclass subclasses
        if isinstance(path, os.PathLike):
            object.__setattr__(self, "path", os.fspath(path))
        self._require_text("path")
        if "\x00" in self.path:
            raise self._error("path", "must not contain a NUL character")

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in memory (``path == ":memory:"``)."""
        return getattr(self, "path") == MEMORY  # noqa: B009

    def to_url(self) -> str:
        """Return ``scheme:///absolute/path``, ``scheme://relative/path`` or ``:memory:``."""
        path = getattr(self, "path")  # noqa: B009
        if path == MEMORY:
            return f"{self.kind}://{MEMORY}"
        return f"{self.kind}://{path}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SQLiteConnection(_FileDatabase):
    """A SQLite database file (or ``":memory:"``).

    Attributes:
        path: File path, absolute or relative to the working directory, or ``":memory:"``.
            A ``pathlib.Path`` is accepted and stored as a string.

    Example:
        >>> SQLiteConnection(name="local", path="/tmp/local.db").to_url()
        'sqlite:///tmp/local.db'
    """

    kind: ClassVar[str] = "sqlite"

    path: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DuckDBConnection(_FileDatabase):
    """A DuckDB database file (or ``":memory:"``).

    Attributes:
        path: File path, absolute or relative to the working directory, or ``":memory:"``.
            A ``pathlib.Path`` is accepted and stored as a string.

    Example:
        >>> DuckDBConnection(name="lake", path="lake.duckdb").to_url()
        'duckdb://lake.duckdb'
    """

    kind: ClassVar[str] = "duckdb"

    path: str
