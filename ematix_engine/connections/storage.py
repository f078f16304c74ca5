"""Lake and object-store connections: Delta tables and file directories, local or on S3."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, ClassVar
from urllib.parse import quote

from ematix_engine.connections.base import Connection
from ematix_engine.connections.formats import FILE_FORMATS
from ematix_engine.connections.interpolation import has_references

__all__ = [
    "DeltaLocalConnection",
    "DeltaS3Connection",
    "ObjectStoreLocalConnection",
    "ObjectStoreS3Connection",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class _LocalPath(Connection):
    """Shared validation of ``path`` for the local-filesystem kinds (not a dataclass)."""

    __slots__ = ()

    def _validate_path(self) -> None:
        path = getattr(self, "path")  # noqa: B009 - declared by the dataclass subclasses
        if isinstance(path, os.PathLike):
            object.__setattr__(self, "path", os.fspath(path))
        self._require_text("path")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class _S3Location(Connection):
    """Fields and validation shared by the S3 kinds (not registered itself).

    Attributes:
        bucket: Bucket name (no ``s3://``).
        region: AWS region, e.g. ``us-east-1``.
        endpoint: ``http(s)://…`` of an S3-compatible service (MinIO, R2, …); omit for AWS.
        access_key_id: Access key id (treated as a secret); set with ``secret_access_key``.
            Omit both to use the environment's credentials chain.
        secret_access_key: Secret access key (secret).
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_key_id", "secret_access_key"})
    url_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    bucket: str
    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def _validate_s3(self) -> None:
        bucket = self._require_text("bucket")
        if not has_references(bucket) and not _BUCKET.match(bucket):
            hint = " (leave out the s3:// prefix)" if "://" in bucket else ""
            raise self._error(
                "bucket",
                f"is {bucket!r}, which is not a valid S3 bucket name{hint}; use 3-63 of "
                f"a-z 0-9 . -",
            )
        self._optional_text("region")
        if self._optional_text("endpoint") is not None:
            self._check_url_scheme("endpoint", ("http", "https"))
        self._optional_text("access_key_id")
        self._optional_text("secret_access_key")
        self._check_pair("access_key_id", "secret_access_key")

    def storage_options(self) -> dict[str, str]:
        """Return ``object_store`` settings (as ``deltalake`` takes them), ``${VAR}`` resolved.

        The result holds the secret key: never log it.

        Returns:
            ``AWS_*`` settings for the fields that are set.
        """
        conn = self.resolved()
        options: dict[str, str] = {}
        if conn.region is not None:
            options["AWS_REGION"] = conn.region
        if conn.endpoint is not None:
            options["AWS_ENDPOINT_URL"] = conn.endpoint
            if conn.endpoint.lower().startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if conn.access_key_id is not None and conn.secret_access_key is not None:
            options["AWS_ACCESS_KEY_ID"] = conn.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = conn.secret_access_key
        return options

    def pyarrow_options(self) -> dict[str, Any]:
        """Return keyword arguments for ``pyarrow.fs.S3FileSystem``, ``${VAR}`` resolved.

        The result holds the secret key: never log it.

        Returns:
            ``access_key``, ``secret_key``, ``region``, ``endpoint_override`` and ``scheme``
            for the fields that are set.
        """
        conn = self.resolved()
        options: dict[str, Any] = {}
        if conn.region is not None:
            options["region"] = conn.region
        if conn.endpoint is not None:
            scheme, _, host = conn.endpoint.partition("://")
            options["endpoint_override"] = host.rstrip("/")
            options["scheme"] = scheme.lower()
        if conn.access_key_id is not None and conn.secret_access_key is not None:
            options["access_key"] = conn.access_key_id
            options["secret_key"] = conn.secret_access_key
        return options

    def _query(self, **extra: str | None) -> str:
        params = {**extra, "region": self.region, "endpoint": self.endpoint}
        pairs = [f"{k}={quote(v, safe='${}:/')}" for k, v in params.items() if v is not None]
        return f"?{'&'.join(pairs)}" if pairs else ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DeltaLocalConnection(_LocalPath):
    """Delta Lake tables on the local filesystem.

    Attributes:
        path: Root directory of the tables (created on first write).

    Example:
        >>> DeltaLocalConnection(name="lake", path="/data/delta").to_url()
        'delta:///data/delta'
    """

    kind: ClassVar[str] = "delta_local"

    path: str

    def _validate(self) -> None:
        self._validate_path()

    def to_url(self) -> str:
        """Return ``delta:///absolute/path`` or ``delta://relative/path``."""
        return f"delta://{self.path}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DeltaS3Connection(_S3Location):
    """Delta Lake tables in an S3 (or S3-compatible) bucket.

    Attributes:
        bucket: Bucket name (no ``s3://``).
        prefix: Key prefix under which the tables live (no leading or trailing ``/``).
        region: AWS region.
        endpoint: Endpoint of an S3-compatible service; omit for AWS.
        access_key_id: Access key id (secret).
        secret_access_key: Secret access key (secret).

    Example:
        >>> DeltaS3Connection(name="archive", bucket="ematix-archive", prefix="events",
        ...                   access_key_id="AKIA1", secret_access_key="shh").table_uri("t")
        's3://ematix-archive/events/t'
    """

    kind: ClassVar[str] = "delta_s3"

    prefix: str = ""

    def _validate(self) -> None:
        self._validate_s3()
        if not isinstance(self.prefix, str):
            raise self._error("prefix", f"must be a string, got {type(self.prefix).__name__}")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def table_uri(self, table: str | None = None) -> str:
        """Return ``s3://bucket/prefix[/table]`` with ``${VAR}`` resolved.

        Args:
            table: A table directory under the prefix, if any.

        Returns:
            The URI ``deltalake`` opens, together with :meth:`storage_options`.
        """
        conn = self.resolved()
        parts = [p for p in (conn.prefix, (table or "").strip("/")) if p]
        return "/".join([f"s3://{conn.bucket}", *parts])

    def to_url(self) -> str:
        """Return ``s3://bucket/prefix?region=…&endpoint=…`` (no credentials)."""
        path = f"/{self.prefix}" if self.prefix else ""
        return f"s3://{self.bucket}{path}{self._query()}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ObjectStoreLocalConnection(_LocalPath):
    """A local directory of data files in one format.

    Attributes:
        path: The directory.
        format: ``parquet``, ``csv``, ``json_lines`` or ``orc``.

    Example:
        >>> ObjectStoreLocalConnection(name="lake", path="/data/lake", format="parquet").to_url()
        'file:///data/lake?format=parquet'
    """

    kind: ClassVar[str] = "object_store_local"

    path: str
    format: str

    def _validate(self) -> None:
        self._validate_path()
        self._require_text("format")
        self._check_choice("format", FILE_FORMATS)

    def to_url(self) -> str:
        """Return ``file:///dir?format=…`` (or ``file://relative/dir?format=…``)."""
        return f"file://{self.path}?format={self.format}"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ObjectStoreS3Connection(_S3Location):
    """An S3 (or S3-compatible) bucket of data files in one format.

    Attributes:
        bucket: Bucket name (no ``s3://``).
        format: ``parquet``, ``csv``, ``json_lines`` or ``orc``.
        region: AWS region.
        endpoint: Endpoint of an S3-compatible service; omit for AWS.
        access_key_id: Access key id (secret).
        secret_access_key: Secret access key (secret).

    Example:
        >>> ObjectStoreS3Connection(name="raw", bucket="market-data", format="csv",
        ...                         access_key_id="${S3_KEY}", secret_access_key="${S3_SECRET}")
        ... # doctest: +NORMALIZE_WHITESPACE
        ObjectStoreS3Connection(name='raw', bucket='market-data', region=None, endpoint=None,
        access_key_id='***', secret_access_key='***', format='csv')
    """

    kind: ClassVar[str] = "object_store_s3"

    format: str

    def _validate(self) -> None:
        self._validate_s3()
        self._require_text("format")
        self._check_choice("format", FILE_FORMATS)

    def to_url(self) -> str:
        """Return ``s3://bucket?format=…&region=…&endpoint=…`` (no credentials)."""
        return f"s3://{self.bucket}{self._query(format=self.format)}"
