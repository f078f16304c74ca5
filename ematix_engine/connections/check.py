"""Open a connection for real and report whether it works.

:func:`check_connection` resolves ``${VAR}``, then does the cheapest thing that proves the
connection usable, per kind:

=====================  ===================================================================
kind                   check
=====================  ===================================================================
postgres               connect (``connect_timeout=5``) and ``SELECT 1``
mysql                  the same with ``pymysql`` or ``mysql.connector``, whichever is installed
sqlite, duckdb         open an existing file and query it; for a new file, its directory must
                       exist and be writable (nothing is created)
delta_local            an existing table opens with ``deltalake``; an existing directory is
                       readable; a missing one has a writable ancestor to be created in
object_store_local     the directory is readable, or a missing one can be created
kafka                  ``AdminClient.list_topics`` with a 5 s timeout
schema_registry        ``GET <url>/subjects`` with a 5 s timeout
delta_s3, object_s3    ``HeadBucket``/list of the prefix through ``pyarrow.fs.S3FileSystem``
=====================  ===================================================================

Every failure becomes a :class:`~ematix_engine.errors.ConnectionFailedError` whose reason has
been through :func:`~ematix_engine.connections.redact`, and is raised ``from None`` so the
driver's own exception (which may quote the DSN) is not chained into tracebacks.
"""

from __future__ import annotations

import base64
import importlib
import logging
import os
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from ematix_engine.connections.base import Connection
from ematix_engine.connections.databases import (
    DuckDBConnection,
    MySQLConnection,
    PostgresConnection,
    SQLiteConnection,
)
from ematix_engine.connections.kafka import KafkaConnection, SchemaRegistryConnection
from ematix_engine.connections.redaction import redact
from ematix_engine.connections.storage import (
    DeltaLocalConnection,
    DeltaS3Connection,
    ObjectStoreLocalConnection,
    ObjectStoreS3Connection,
)
from ematix_engine.errors import ConfigError, ConnectionFailedError

__all__ = ["CHECK_TIMEOUT_S", "check_connection"]

logger = logging.getLogger("ematix.connections.check")

CHECK_TIMEOUT_S = 5
"""Seconds a network check waits before giving up."""


class _CheckFailed(Exception):
    """A check found a problem; the message is already free of secrets."""


def check_connection(conn: Connection) -> None:
    """Open ``conn`` for real and return if it works.

    Args:
        conn: Any typed connection. ``${VAR}`` references are resolved first.

    Raises:
        ConfigError: A referenced variable is missing or a resolved value is invalid.
        ConnectionFailedError: The connection cannot be opened or used; the reason is
            redacted (no password, secret key or DSN password appears in it).

    Example:
        >>> from ematix_engine.connections import SQLiteConnection
        >>> check_connection(SQLiteConnection(name="mem", path=":memory:"))
    """
    resolved = conn.resolved()
    checker = _CHECKS.get(type(resolved))
    if checker is None:
        raise ConfigError(f"connection {conn.name!r}: no check exists for kind {conn.kind!r}")
    logger.info("checking connection %s", conn)
    try:
        checker(resolved)
    except ConfigError:
        raise
    except _CheckFailed as exc:
        reason = redact(str(exc), conn)
    except Exception as exc:  # any driver error; its text is redacted below
        reason = redact(_describe(exc), conn)
    else:
        logger.info("connection %r (%s) is OK", conn.name, conn.kind)
        return
    logger.info("connection %r (%s) failed: %s", conn.name, conn.kind, reason)
    raise ConnectionFailedError(conn.name, reason) from None


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # drivers print multi-line messages
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- databases ---------------------------------------------------------------------------------


def _check_postgres(conn: PostgresConnection) -> None:
    import psycopg

    with psycopg.connect(
        conn.url, connect_timeout=CHECK_TIMEOUT_S, autocommit=True, application_name="ematix"
    ) as pg:
        pg.execute("SELECT 1").fetchone()


def _check_mysql(conn: MySQLConnection) -> None:
    kwargs = conn.connect_kwargs()
    for module_name in ("pymysql", "mysql.connector"):
        try:
            driver = importlib.import_module(module_name)
        except ImportError:
            continue
        if module_name == "pymysql":
            db = driver.connect(connect_timeout=CHECK_TIMEOUT_S, **kwargs)
        else:
            db = driver.connect(connection_timeout=CHECK_TIMEOUT_S, **kwargs)
        try:
            cursor = db.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchone()
        finally:
            db.close()
        return
    raise _CheckFailed(
        "no MySQL driver is installed; install one with 'pip install pymysql' "
        "(or 'pip install mysql-connector-python')"
    )


def _new_file_parent(path: Path, what: str) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise _CheckFailed(f"{what} {path} does not exist and its directory {parent} does not")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _CheckFailed(f"{what} {path} does not exist and {parent} is not writable")


def _check_sqlite(conn: SQLiteConnection) -> None:
    if conn.in_memory:
        sqlite3.connect(":memory:").close()
        return
    path = Path(conn.path)
    if not path.exists():
        _new_file_parent(path, "database file")
        return
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=CHECK_TIMEOUT_S)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        db.close()


def _check_duckdb(conn: DuckDBConnection) -> None:
    import duckdb

    if conn.in_memory:
        duckdb.connect(":memory:").close()
        return
    path = Path(conn.path)
    if not path.exists():
        _new_file_parent(path, "database file")
        return
    db = duckdb.connect(str(path), read_only=True)
    try:
        db.execute("SELECT 1").fetchone()
    finally:
        db.close()


# -- local storage -----------------------------------------------------------------------------


def _check_directory(path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise _CheckFailed(f"{path} exists but is not a directory")
        if not os.access(path, os.R_OK | os.X_OK):
            raise _CheckFailed(f"directory {path} is not readable")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise _CheckFailed(f"{path} does not exist and cannot be created under {ancestor}")


def _check_delta_local(conn: DeltaLocalConnection) -> None:
    path = Path(conn.path)
    if (path / "_delta_log").is_dir():
        import deltalake

        deltalake.DeltaTable(str(path)).version()
        return
    _check_directory(path)


def _check_object_store_local(conn: ObjectStoreLocalConnection) -> None:
    _check_directory(Path(conn.path))


# -- network services --------------------------------------------------------------------------


def _check_kafka(conn: KafkaConnection) -> None:
    from confluent_kafka.admin import AdminClient

    config = conn.client_config("admin")
    config.setdefault("socket.timeout.ms", CHECK_TIMEOUT_S * 1000)
    config["logger"] = logging.getLogger("ematix.connections.kafka_client")
    admin = AdminClient(config)
    admin.list_topics(timeout=CHECK_TIMEOUT_S)


def _check_schema_registry(conn: SchemaRegistryConnection) -> None:
    parts = urlsplit(conn.url)
    user, password = conn.basic_auth_user, conn.basic_auth_password
    if parts.username is not None:  # credentials in the URL: send them as basic auth
        user, password = unquote(parts.username), unquote(parts.password or "")
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    request = urllib.request.Request(urlunsplit(parts).rstrip("/") + "/subjects")
    if user is not None and password is not None:
        token = f"{user}:{password}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_S) as response:
        response.read(1)


def _check_s3(conn: DeltaS3Connection | ObjectStoreS3Connection) -> None:
    import pyarrow.fs as pafs

    filesystem = pafs.S3FileSystem(
        **conn.pyarrow_options(),
        connect_timeout=CHECK_TIMEOUT_S,
        request_timeout=CHECK_TIMEOUT_S,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )
    prefix = conn.prefix if isinstance(conn, DeltaS3Connection) else ""
    target = f"{conn.bucket}/{prefix}".rstrip("/")
    info = filesystem.get_file_info(target)
    if info.type == pafs.FileType.NotFound and not prefix:
        raise _CheckFailed(f"bucket {conn.bucket!r} does not exist")


_CHECKS: dict[type[Connection], Callable[..., None]] = {
    PostgresConnection: _check_postgres,
    MySQLConnection: _check_mysql,
    SQLiteConnection: _check_sqlite,
    DuckDBConnection: _check_duckdb,
    DeltaLocalConnection: _check_delta_local,
    ObjectStoreLocalConnection: _check_object_store_local,
    KafkaConnection: _check_kafka,
    SchemaRegistryConnection: _check_schema_registry,
    DeltaS3Connection: _check_s3,
    ObjectStoreS3Connection: _check_s3,
}
