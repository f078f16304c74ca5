"""Where named connections are defined outside Python: environment variables and TOML files.

Each source is read afresh on every lookup (the files are tiny), so a changed environment or
file is seen without restarting. The ematix names and the reference's ``ematix-flow`` names are
both read; when both define a name, the ematix one wins.

TOML shape (``./.ematix.toml`` or ``~/.ematix/connections.toml``)::

    [connections.warehouse]
    url = "postgres://${WAREHOUSE_DSN}"

    [connections.kafka]
    kind = "kafka"
    bootstrap_servers = "localhost:9092"
    group_id = "ematix"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ematix_engine.errors import ConfigError

__all__ = [
    "DEFAULT_ENV_VARS",
    "ENV_PREFIXES",
    "PROJECT_FILES",
    "USER_FILES",
    "env_var_name",
    "project_files",
    "read_toml_connections",
    "user_files",
]

ENV_PREFIXES = ("EMATIX_DSN_", "EMATIX_FLOW_DSN_")
"""Prefixes of per-name URL variables, ematix first, then the reference's alias."""
DEFAULT_ENV_VARS = ("EMATIX_DSN", "EMATIX_FLOW_DSN")
"""Variables holding the URL of the connection named ``default``."""
PROJECT_FILES = (".ematix.toml", ".ematix-flow.toml")
"""Project files, looked for in the working directory."""
USER_FILES = (".ematix/connections.toml", ".ematix-flow/connections.toml")
"""User files, looked for in the home directory (``$HOME``)."""


def env_var_name(name: str, prefix: str = ENV_PREFIXES[0]) -> str:
    """Return the environment variable that overrides the connection ``name``.

    The name is upper-cased and every character other than a letter or digit becomes ``_``.

    Args:
        name: A connection name.
        prefix: The variable prefix.

    Returns:
        The variable name.

    Example:
        >>> env_var_name("kafka-prod")
        'EMATIX_DSN_KAFKA_PROD'
    """
    return prefix + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def project_files() -> list[Path]:
    """Return the project connection files in the working directory, highest priority first.

    Returns:
        Absolute paths (they may not exist).
    """
    cwd = Path.cwd()
    return [cwd / name for name in PROJECT_FILES]


def user_files() -> list[Path]:
    """Return the user connection files in the home directory, highest priority first.

    Returns:
        Absolute paths (they may not exist).
    """
    home = Path.home()
    return [home / name for name in USER_FILES]


def read_toml_connections(path: Path) -> dict[str, Mapping[str, object]]:
    """Read the ``[connections.NAME]`` tables of a TOML file.

    Args:
        path: The file; a missing file has no connections.

    Returns:
        ``{name: fields}`` as written (``${VAR}`` not resolved).

    Raises:
        ConfigError: The file is not valid TOML, or ``connections`` or one of its entries is
            not a table. The message names the file.
    """
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    section = data.get("connections", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'connections' must be a table ([connections.NAME])")
    entries: dict[str, Mapping[str, object]] = {}
    for name, entry in section.items():
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{path}: connections.{name} must be a table, e.g. [connections.{name}] "
                f'with url = "…" or kind = "…"'
            )
        entries[name] = entry
    return entries
