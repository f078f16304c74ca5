"""``${VAR}`` interpolation of connection fields.

Connections keep ``${VAR}`` references as written; they are replaced from :data:`os.environ`
only when the connection is used (:meth:`Connection.resolved`), so a module that declares
connections imports cleanly on a machine where the secrets are not set, and a secret changed
between declaration and use is picked up.

Syntax: ``${NAME}`` where ``NAME`` is a letter or ``_`` followed by letters, digits or ``_``.
``$${`` writes a literal ``${``. Anything else (a lone ``$``, ``$NAME`` without braces) is kept
as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ematix_engine.errors import ConfigError

__all__ = ["has_references", "interpolate", "references"]

_REFERENCE = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)\}")


def references(value: str) -> list[str]:
    """Return the names of the variables ``value`` refers to, in order of appearance.

    Args:
        value: A field value, possibly holding ``${VAR}`` references.

    Returns:
        The variable names; escaped ``$${VAR}`` is not a reference.

    Example:
        >>> references("postgres://app:${PG_PASS}@${PG_HOST}/main")
        ['PG_PASS', 'PG_HOST']
    """
    return [m.group(2) for m in _REFERENCE.finditer(value) if m.group(1) is None]


def has_references(value: object) -> bool:
    """Return whether ``value`` is a string holding at least one ``${VAR}`` reference.

    Args:
        value: Any field value.

    Returns:
        ``True`` when validation of the value has to wait until it is resolved.
    """
    return isinstance(value, str) and bool(references(value))


def interpolate(
    value: str,
    *,
    connection: str,
    field: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Replace every ``${VAR}`` in ``value`` with the variable's value.

    Args:
        value: The string to interpolate.
        connection: Name of the connection the value belongs to (for the error message).
        field: Name of the field the value belongs to (for the error message).
        environ: Where to read variables; defaults to :data:`os.environ`.

    Returns:
        The interpolated string.

    Raises:
        ConfigError: A referenced variable is not set. The message names the variable, the
            connection and the field, never the value.

    Example:
        >>> interpolate("${USER_NAME}@db", connection="wh", field="url",
        ...             environ={"USER_NAME": "app"})
        'app@db'
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) is not None:  # "$${VAR}" -> literal "${VAR}"
            return "${" + match.group(2) + "}"
        variable = match.group(2)
        try:
            return env[variable]
        except KeyError:
            raise ConfigError(
                f"connection {connection!r}: field {field!r} refers to ${{{variable}}}, but the "
                f"environment variable {variable} is not set; export {variable} before using "
                f"the connection"
            ) from None

    return _REFERENCE.sub(substitute, value)
