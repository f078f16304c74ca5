"""Behaviour every typed connection shares: validation, ``${VAR}`` resolution, redaction.

A connection is a ``@dataclass(frozen=True, slots=True, kw_only=True)`` record. Subclasses
declare their fields plus three class-level facts as data:

- ``kind``: the registry / TOML / decorator name of the type (``"postgres"``, …);
- ``secret_fields``: fields whose values are credentials (always shown as ``***``);
- ``url_fields``: fields holding URLs whose user-info password is redacted when shown.

Construction validates everything that can be checked without the environment. A value that
still holds a ``${VAR}`` reference is checked only for its type; :meth:`Connection.resolved`
returns an interpolated copy, and building that copy runs the full validation again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Self

from ematix_engine.connections.interpolation import has_references, interpolate
from ematix_engine.connections.redaction import MASK, redact_url, scrub, url_password
from ematix_engine.errors import ConfigError, closest_match

__all__ = ["Connection"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|credential|\.pem$|private)")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Connection:
    """Base class of the typed connections.

    Attributes:
        name: The name the connection is registered and looked up under.
    """

    kind: ClassVar[str] = ""
    """Name of the connection type in the registry, TOML files and ``@ematix.connection``."""
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields whose values are credentials; shown as ``***``."""
    url_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields holding URLs whose password part is redacted when shown."""

    name: str
    _resolved: bool = dataclasses.field(
        default=False, init=False, repr=False, compare=False, hash=False
    )
    """Set on copies made by :meth:`resolved`, which are never interpolated a second time."""

    def __post_init__(self) -> None:
        """Validate the name, then the subclass's fields."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"{type(self).__name__}: name {self.name!r} is not a valid connection name; "
                f"use letters, digits, '_', '.' or '-' (for example 'warehouse')"
            )
        self._validate()

    def _validate(self) -> None:
        """Check the subclass's fields; overridden by each connection type."""

    # -- use time -------------------------------------------------------------------------

    def resolved(self) -> Self:
        """Return a copy with every ``${VAR}`` in every string field replaced from the env.

        Nested values are resolved too: the string values of ``extra`` mappings and a nested
        connection (such as a Kafka connection's schema registry). The copy is validated again
        with the final values.

        Returns:
            The interpolated connection (``self`` when nothing refers to a variable).

        Raises:
            ConfigError: A referenced variable is not set (the message names the variable and
                the connection), or an interpolated value is invalid.
        """
        if self._resolved:
            return self  # a resolved value may itself contain "${" (a password, say)
        changes: dict[str, Any] = {}
        for f in _data_fields(self):
            value = getattr(self, f.name)
            new = self._resolve_value(f.name, value)
            if new is not value:
                changes[f.name] = new
        if not changes:
            return self
        copy = dataclasses.replace(self, **changes)
        object.__setattr__(copy, "_resolved", True)
        return copy

    def _resolve_value(self, field: str, value: Any) -> Any:
        if isinstance(value, str):
            if not has_references(value) and "$${" not in value:
                return value
            return interpolate(value, connection=self.name, field=field)
        if isinstance(value, Connection):
            return value.resolved()
        if isinstance(value, Mapping):
            out = {k: self._resolve_value(f"{field}.{k}", v) for k, v in value.items()}
            return value if all(out[k] is value[k] for k in value) else out
        return value

    # -- redaction ------------------------------------------------------------------------

    def secret_values(self) -> frozenset[str]:
        """Return every secret this connection holds, as written and after interpolation.

        Used by :func:`~ematix_engine.connections.redact` to scrub driver messages. Values of
        variables that cannot be resolved right now are simply not included.

        Returns:
            The non-empty secret strings.
        """
        found = set(self._own_secrets())
        try:
            resolved = self.resolved()
        except ConfigError:
            resolved = self
        if resolved is not self:
            found.update(resolved._own_secrets())
        return frozenset(s for s in found if s and not _is_pure_reference(s))

    def _own_secrets(self) -> set[str]:
        found: set[str] = set()
        for f in _data_fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name in self.secret_fields and isinstance(value, str):
                found.add(value)
            elif f.name in self.url_fields and isinstance(value, str):
                password = url_password(value)
                if password:
                    found.add(password)
            elif isinstance(value, Connection):
                found.update(value.secret_values())
            elif isinstance(value, Mapping):
                found.update(str(v) for k, v in value.items() if _SECRET_KEY.search(str(k)) and v)
        return found

    def redacted_fields(self) -> dict[str, Any]:
        """Return the fields as a dict that is safe to show (secrets replaced by ``***``).

        Returns:
            ``{field: value}`` in declaration order, ``name`` first.
        """
        shown: dict[str, Any] = {}
        own = self.secret_values()  # includes values that ${VAR} references resolve to
        for f in _data_fields(self):
            value = getattr(self, f.name)
            if value is None:
                shown[f.name] = None
            elif f.name in self.secret_fields:
                shown[f.name] = MASK
            elif f.name in self.url_fields and isinstance(value, str):
                shown[f.name] = scrub(redact_url(value), own)
            elif isinstance(value, Mapping):
                shown[f.name] = {
                    k: (MASK if _SECRET_KEY.search(str(k)) else v) for k, v in value.items()
                }
            else:
                shown[f.name] = value
        return shown

    def to_url(self) -> str:
        """Return the connection as a URL (as written, secrets included; do not log it).

        Returns:
            A URL that :func:`~ematix_engine.connections.connection_from_url` parses back into
            an equivalent connection where the kind has a URL form, else a descriptive
            ``kind://…`` string.
        """
        return f"{self.kind}://{self.name}"

    def display_url(self) -> str:
        """Return :meth:`to_url` with every secret redacted: safe for tables and logs.

        Returns:
            The redacted URL.
        """
        from ematix_engine.connections.redaction import redact

        return redact(redact_url(self.to_url()), self)

    def __repr__(self) -> str:
        """Show the connection with its secrets replaced by ``***``."""
        parts = ", ".join(f"{k}={v!r}" for k, v in self.redacted_fields().items())
        return f"{type(self).__name__}({parts})"

    def __str__(self) -> str:
        """Same as ``repr``: secrets are never shown."""
        return self.__repr__()

    # -- validation helpers for subclasses ------------------------------------------------

    def _error(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{type(self).__name__} {self.name!r}: field {field!r} {problem}")

    def _shown(self, field: str, value: Any) -> str:
        if field in self.secret_fields:
            return MASK
        if field in self.url_fields and isinstance(value, str):
            return repr(redact_url(value))
        return repr(value)

    def _require_text(self, field: str) -> str:
        value = getattr(self, field)
        if not isinstance(value, str):
            raise self._error(field, f"must be a string, got {type(value).__name__}")
        if not value.strip():
            raise self._error(field, "is required and must not be empty")
        return value

    def _optional_text(self, field: str) -> str | None:
        value = getattr(self, field)
        if value is None:
            return None
        return self._require_text(field)

    def _check_choice(self, field: str, choices: Collection[str]) -> None:
        value = getattr(self, field)
        if value is None or has_references(value):
            return
        if value not in choices:
            hint = closest_match(str(value), choices)
            did_you_mean = f"; did you mean {hint!r}?" if hint else ""
            raise self._error(
                field,
                f"is {self._shown(field, value)}, which is not one of "
                f"{', '.join(sorted(choices))}{did_you_mean}",
            )

    def _check_url_scheme(self, field: str, schemes: Collection[str]) -> None:
        value = getattr(self, field)
        head = value.split("${", 1)[0]
        if "://" not in head:
            if has_references(value):
                return  # the scheme is behind a variable; checked once resolved
            raise self._error(
                field,
                f"is {self._shown(field, value)}, which is not a URL; write it as "
                f"{sorted(schemes)[0]}://…",
            )
        scheme = head.split("://", 1)[0].lower()
        if scheme not in schemes:
            raise self._error(
                field,
                f"has scheme {scheme!r}; expected one of "
                f"{', '.join(s + '://' for s in sorted(schemes))}",
            )

    def _check_pair(self, first: str, second: str) -> None:
        a, b = getattr(self, first), getattr(self, second)
        if (a is None) != (b is None):
            missing, given = (first, second) if a is None else (second, first)
            raise self._error(missing, f"is required when {given!r} is set (give both or neither)")


def _data_fields(conn: Connection) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(conn) if f.init]


def _is_pure_reference(value: str) -> bool:
    return bool(re.fullmatch(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\})+", value))
