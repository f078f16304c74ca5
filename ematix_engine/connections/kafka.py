"""Kafka and Schema Registry connections."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from ematix_engine.connections.base import Connection
from ematix_engine.connections.interpolation import has_references
from ematix_engine.errors import ConfigError

__all__ = [
    "PAYLOAD_FORMATS",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "KafkaConnection",
    "SchemaRegistryConnection",
]

PAYLOAD_FORMATS = ("json", "avro", "protobuf", "raw_bytes")
"""Accepted ``payload_format`` values; ``avro`` and ``protobuf`` need a schema registry."""
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""Accepted ``security_protocol`` values (case-insensitive; stored upper-case)."""
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
"""Accepted ``sasl_mechanism`` values (case-insensitive; stored upper-case)."""
AUTO_OFFSET_RESETS = ("earliest", "latest", "error")
_PASSWORD_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
_FIELD_OWNED_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers",
    "group.id": "group_id",
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "auto.offset.reset": "auto_offset_reset",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SchemaRegistryConnection(Connection):
    """A Confluent-compatible Schema Registry.

    Attributes:
        url: ``http://…`` or ``https://…``.
        basic_auth_user: Basic-auth user, if the registry needs one.
        basic_auth_password: Basic-auth password (secret); set together with the user.

    Example:
        >>> SchemaRegistryConnection(name="sr", url="https://sr:8081",
        ...                          basic_auth_user="svc", basic_auth_password="pw")
        SchemaRegistryConnection(name='sr', url='https://sr:8081', basic_auth_user='svc', \
basic_auth_password='***')
    """

    kind: ClassVar[str] = "schema_registry"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"basic_auth_password"})
    url_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    url: str
    basic_auth_user: str | None = None
    basic_auth_password: str | None = None

    def _validate(self) -> None:
        self._require_text("url")
        self._check_url_scheme("url", ("http", "https"))
        self._optional_text("basic_auth_user")
        self._optional_text("basic_auth_password")
        self._check_pair("basic_auth_user", "basic_auth_password")

    def to_url(self) -> str:
        """Return the registry URL as written."""
        return self.url

    def client_config(self) -> dict[str, str]:
        """Return the settings for ``confluent_kafka.schema_registry.SchemaRegistryClient``.

        Resolves ``${VAR}`` first; the result may hold the password, so never log it.

        Returns:
            ``{"url": …}`` plus ``"basic.auth.user.info"`` when basic auth is configured.
        """
        sr = self.resolved()
        conf = {"url": sr.url}
        if sr.basic_auth_user is not None and sr.basic_auth_password is not None:
            conf["basic.auth.user.info"] = f"{sr.basic_auth_user}:{sr.basic_auth_password}"
        return conf


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class KafkaConnection(Connection):
    """A Kafka cluster (or any Kafka-protocol broker), used as a source or a target.

    Attributes:
        bootstrap_servers: ``host:port[,host:port…]``.
        group_id: Consumer group; required when the connection is used as a source.
        security_protocol: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
            Defaults to ``SASL_SSL`` when SASL credentials are given, else the client default.
        sasl_mechanism: ``PLAIN`` (default with credentials), ``SCRAM-SHA-256``,
            ``SCRAM-SHA-512``, ``OAUTHBEARER`` or ``GSSAPI``.
        sasl_plain_username: SASL user name.
        sasl_plain_password: SASL password (secret).
        payload_format: ``json`` (default), ``avro``, ``protobuf`` or ``raw_bytes``.
        schema_registry: A :class:`SchemaRegistryConnection` or the name of a registered one;
            required for ``avro`` and ``protobuf``.
        dead_letter_topic: Topic that receives rows a pipeline could not write.
        auto_offset_reset: Where a new consumer group starts: ``earliest``, ``latest`` or
            ``error``.
        config: Any further librdkafka setting, passed through as given
            (``{"client.id": "etl", "fetch.min.bytes": 65536, "ssl.ca.location": "…"}``).
            Settings that have a field of their own (``bootstrap.servers``,
            ``sasl.password``, …) are refused; values of settings whose name says they are
            secret (``ssl.key.password``, ``sasl.oauthbearer.client.secret``, ``*.pem``, …)
            are redacted like the password fields.
        extra: The same as ``config`` (its earlier name); a setting may be given in one of
            them, not both.

    Example:
        >>> KafkaConnection(name="src", bootstrap_servers="localhost:9092", group_id="etl",
        ...                 sasl_plain_username="alice", sasl_plain_password="secret")
        ... # doctest: +ELLIPSIS
        KafkaConnection(name='src', ..., sasl_plain_username='alice', \
sasl_plain_password='***', ...)
    """

    kind: ClassVar[str] = "kafka"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"sasl_plain_password"})

    bootstrap_servers: str
    group_id: str | None = None
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    payload_format: str = "json"
    schema_registry: SchemaRegistryConnection | str | None = None
    dead_letter_topic: str | None = None
    auto_offset_reset: str | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def _validate(self) -> None:
        self._validate_servers()
        for optional in ("group_id", "sasl_plain_username", "sasl_plain_password"):
            self._optional_text(optional)
        for upper in ("security_protocol", "sasl_mechanism"):
            value = self._optional_text(upper)
            if value is not None and not has_references(value):
                object.__setattr__(self, upper, value.upper())
        self._check_choice("security_protocol", SECURITY_PROTOCOLS)
        self._check_choice("sasl_mechanism", SASL_MECHANISMS)
        self._require_text("payload_format")
        self._check_choice("payload_format", PAYLOAD_FORMATS)
        self._optional_text("auto_offset_reset")
        self._check_choice("auto_offset_reset", AUTO_OFFSET_RESETS)
        self._check_pair("sasl_plain_username", "sasl_plain_password")
        self._validate_security()
        self._validate_schema_registry()
        topic = self._optional_text("dead_letter_topic")
        if topic is not None and not has_references(topic) and not _TOPIC.match(topic):
            raise self._error(
                "dead_letter_topic",
                f"is {topic!r}, which is not a valid topic name (1-249 of A-Z a-z 0-9 . _ -)",
            )
        self._validate_settings("config")
        self._validate_settings("extra")
        both = sorted(set(self.config) & set(self.extra))
        if both:
            raise self._error(
                "config", f"and field 'extra' both set {both[0]!r}; give each setting once"
            )

    def _validate_servers(self) -> None:
        servers = self._require_text("bootstrap_servers")
        if has_references(servers):
            return
        for server in servers.split(","):
            server = server.strip()
            if not server or any(c.isspace() for c in server) or "://" in server:
                raise self._error(
                    "bootstrap_servers",
                    f"is {servers!r}; write it as host:port[,host:port…]",
                )
            _, sep, port = server.rpartition(":")
            if sep and not (port.isdigit() and 0 < int(port) < 65536):
                raise self._error(
                    "bootstrap_servers", f"has an invalid port in {server!r}; expected 1-65535"
                )

    def _validate_security(self) -> None:
        protocol, mechanism = self.security_protocol, self.sasl_mechanism
        if has_references(protocol) or has_references(mechanism):
            return
        has_credentials = self.sasl_plain_username is not None
        if has_credentials and protocol in ("PLAINTEXT", "SSL"):
            raise self._error(
                "security_protocol",
                f"is {protocol!r} but SASL credentials are set; use SASL_SSL or SASL_PLAINTEXT",
            )
        needs_password = (mechanism or "PLAIN") in _PASSWORD_MECHANISMS
        if protocol in ("SASL_SSL", "SASL_PLAINTEXT") and needs_password and not has_credentials:
            raise self._error(
                "sasl_plain_username",
                f"is required with security_protocol {protocol!r} and sasl_mechanism "
                f"{mechanism or 'PLAIN'!r} (set sasl_plain_username and sasl_plain_password)",
            )

    def _validate_schema_registry(self) -> None:
        registry = self.schema_registry
        if isinstance(registry, str):
            self._require_text("schema_registry")
        elif registry is not None and not isinstance(registry, SchemaRegistryConnection):
            raise self._error(
                "schema_registry",
                f"must be a SchemaRegistryConnection or the name of a registered one, got "
                f"{type(registry).__name__}",
            )
        if self.payload_format in ("avro", "protobuf") and registry is None:
            raise self._error(
                "schema_registry",
                f"is required with payload_format {self.payload_format!r}; pass a "
                f"SchemaRegistryConnection or the name of a registered one",
            )

    def _validate_settings(self, field: str) -> None:
        settings = getattr(self, field)
        if not isinstance(settings, Mapping):
            raise self._error(field, f"must be a mapping, got {type(settings).__name__}")
        for key, value in settings.items():
            if not isinstance(key, str):
                raise self._error(field, f"has a non-string key {key!r}")
            if key in _FIELD_OWNED_SETTINGS:
                raise self._error(
                    field,
                    f"sets {key!r}; use the field {_FIELD_OWNED_SETTINGS[key]!r} instead",
                )
            if not isinstance(value, str | int | float | bool):
                raise self._error(field, f"setting {key!r} must be a string, number or boolean")
        object.__setattr__(self, field, dict(settings))

    def client_config(
        self, role: Literal["consumer", "producer", "admin"] = "consumer"
    ) -> dict[str, Any]:
        """Return the librdkafka settings for ``confluent_kafka`` clients.

        Resolves ``${VAR}`` first; the result may hold the SASL password, so never log it.

        Args:
            role: ``consumer`` adds ``group.id`` and ``auto.offset.reset``; ``producer`` and
                ``admin`` leave consumer-only settings out.

        Returns:
            A settings dict for ``Consumer``, ``Producer`` or ``AdminClient``.

        Raises:
            ConfigError: ``role`` is ``consumer`` and no ``group_id`` is set, or a variable
                is missing.
        """
        conn = self.resolved()
        conf: dict[str, Any] = {"bootstrap.servers": conn.bootstrap_servers}
        protocol = conn.security_protocol
        if protocol is None and conn.sasl_plain_username is not None:
            protocol = "SASL_SSL"
        if protocol is not None:
            conf["security.protocol"] = protocol
        if conn.sasl_plain_username is not None:
            conf["sasl.mechanism"] = conn.sasl_mechanism or "PLAIN"
            conf["sasl.username"] = conn.sasl_plain_username
            conf["sasl.password"] = conn.sasl_plain_password
        elif conn.sasl_mechanism is not None:
            conf["sasl.mechanism"] = conn.sasl_mechanism
        if role == "consumer":
            if conn.group_id is None:
                raise ConfigError(
                    f"KafkaConnection {self.name!r}: field 'group_id' is required to consume; "
                    f"set group_id on the connection"
                )
            conf["group.id"] = conn.group_id
            if conn.auto_offset_reset is not None:
                conf["auto.offset.reset"] = conn.auto_offset_reset
        conf.update(conn.extra)
        conf.update(conn.config)
        return conf

    def schema_registry_connection(self) -> SchemaRegistryConnection | None:
        """Return the schema registry as a typed connection, looking a name up if needed.

        Returns:
            The :class:`SchemaRegistryConnection`, or ``None`` when none is configured.

        Raises:
            UnknownNameError: ``schema_registry`` names a connection that does not exist.
            ConfigError: The named connection is not a schema registry.
        """
        registry = self.schema_registry
        if registry is None or isinstance(registry, SchemaRegistryConnection):
            return registry
        from ematix_engine.connections.registry import get_connection

        found = get_connection(registry)
        if not isinstance(found, SchemaRegistryConnection):
            raise self._error(
                "schema_registry",
                f"names {registry!r}, which is a {found.kind!r} connection, not a schema registry",
            )
        return found

    def to_url(self) -> str:
        """Return ``kafka://[user:password@]servers?group_id=…`` (secrets included)."""
        userinfo = ""
        if self.sasl_plain_username is not None:
            userinfo = f"{_q(self.sasl_plain_username)}:{_q(self.sasl_plain_password or '')}@"
        params = []
        for f in (
            "group_id",
            "security_protocol",
            "sasl_mechanism",
            "payload_format",
            "dead_letter_topic",
            "auto_offset_reset",
        ):
            value = getattr(self, f)
            if value is not None and not (f == "payload_format" and value == "json"):
                params.append(f"{f}={_q(value)}")
        if isinstance(self.schema_registry, str):
            params.append(f"schema_registry={_q(self.schema_registry)}")
        query = f"?{'&'.join(params)}" if params else ""
        return f"kafka://{userinfo}{self.bootstrap_servers}{query}"


def _q(value: str) -> str:
    return quote(value, safe="${}")
