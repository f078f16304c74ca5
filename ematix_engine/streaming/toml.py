"""``pipeline.toml`` → :class:`~ematix_engine.streaming.config.StreamingPipelineSpec`.

The guide's keys::

    pipeline_name = "events-to-pg"      # required
    source_query = "events"             # topic / watched prefix of [source]
    batch_size = 10000                  # also max_batch_ms, idle_pause_ms, delivery,
                                        # dead_letter_topic, transform_on_error
    alerters = ["stdout://"]            # where causal violations are alerted

    [source]                            # or [[sources]] with query = "…" each
    kind = "kafka"                      # any connection kind and its fields, or
    bootstrap_servers = "localhost:9092"  # connection = "name" of a registered one
    group_id = "ematix"

    [target]                            # or [[targets]]
    kind = "postgres"
    url = "postgres://localhost/mydb"
    mode = "merge"                      # optional; also prefix and the file options

    [target.table]
    schema = "public"
    name = "events"
    primary_key = ["id"]

    [target.read_options.csv]           # file targets: read options (chars may be ord())
    delimiter = 44

    [transform]
    sql = "SELECT … FROM source"
    on_error = "fail"

    [causal]                            # rows → causal events (see streaming/causal.py)
    id_column = "event_id"
    caused_by_column = "caused_by"
    name_column = "event"

    [[constraints]]
    kind = "never"                      # or must_match with trigger, response, within
    pattern = ["A", "B"]

Every mistake fails at load with a message naming the file and the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from ematix_engine.errors import ConfigError, closest_match
from ematix_engine.streaming.causal import causal_from_mapping, constraint_from_mapping
from ematix_engine.streaming.config import Source, StreamingPipelineSpec, Target

__all__ = ["load_config", "spec_from_mapping"]

_TOP = (
    "pipeline_name",
    "source_query",
    "batch_size",
    "max_batch_ms",
    "idle_pause_ms",
    "delivery",
    "dead_letter_topic",
    "transform_on_error",
    "source",
    "sources",
    "target",
    "targets",
    "transform",
    "alerters",
    "causal",
    "constraints",
)
_SOURCE_OPTIONS = ("query", "event_time_column", "metadata_columns", "settle_ms", "read_options")
_TARGET_OPTIONS = (
    "mode",
    "primary_key",
    "prefix",
    "parquet_compression",
    "csv_delimiter",
    "csv_header",
    "csv_quote",
    "csv_escape",
    "csv_null_value",
)
_TABLE_KEYS = ("schema", "name", "primary_key")
_TRANSFORM_KEYS = ("sql", "on_error")
_CHAR_KEYS = ("delimiter", "quote", "escape", "comment")


def load_config(path: str | os.PathLike[str]) -> StreamingPipelineSpec:
    """Parse a ``pipeline.toml`` into a spec.

    Raises:
        ConfigError: the file is missing, not TOML, or a key is unknown, missing or invalid;
            the message names the file and the key.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such pipeline config file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not valid TOML: {error}") from None
    return spec_from_mapping(data, where=where)


def spec_from_mapping(
    data: Mapping[str, Any], *, where: str = "pipeline config"
) -> StreamingPipelineSpec:
    """Build a spec from parsed TOML (a mapping with the module docstring's keys).

    Raises:
        ConfigError: naming ``where`` and the key.
    """
    _known(where, "", data, _TOP)
    if "pipeline_name" not in data:
        raise ConfigError(f"{where}: pipeline_name is required")
    name = data["pipeline_name"]
    if ("source" in data) == ("sources" in data):
        raise ConfigError(f"{where}: give exactly one of [source] and [[sources]]")
    if ("target" in data) == ("targets" in data):
        raise ConfigError(f"{where}: give exactly one of [target] and [[targets]]")
    if "source" in data:
        sources = [_source(where, "[source]", data["source"], data.get("source_query"))]
    else:
        if "source_query" in data:
            raise ConfigError(
                f"{where}: source_query applies to [source]; give each [[sources]] a query"
            )
        sources = [
            _source(where, f"[[sources]] #{i + 1}", s, None)
            for i, s in enumerate(_list(where, "sources", data["sources"]))
        ]
    if "target" in data:
        targets = [_target(where, "[target]", data["target"])]
    else:
        targets = [
            _target(where, f"[[targets]] #{i + 1}", t)
            for i, t in enumerate(_list(where, "targets", data["targets"]))
        ]
    transform = data.get("transform", {})
    _known(where, "[transform] ", transform, _TRANSFORM_KEYS)
    options = {
        k: data[k]
        for k in ("batch_size", "max_batch_ms", "idle_pause_ms", "delivery", "dead_letter_topic")
        if k in data
    }
    on_error = transform.get("on_error", data.get("transform_on_error", "fail"))
    causal = None if "causal" not in data else causal_from_mapping(where, data["causal"])
    constraints = [
        constraint_from_mapping(where, f"[[constraints]] #{i + 1}", c)
        for i, c in enumerate(_list(where, "constraints", data.get("constraints", [])))
    ]
    alerters = data.get("alerters", [])
    if not isinstance(alerters, list):
        raise ConfigError(f"{where}: alerters must be an array of alerter URLs")
    try:
        return StreamingPipelineSpec(
            name=name,
            sources=tuple(sources),
            targets=tuple(targets),
            transform_sql=transform.get("sql"),
            transform_on_error=on_error,
            causal=causal,
            constraints=tuple(constraints),
            alerters=tuple(alerters),
            **options,
        )
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _list(where: str, key: str, value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def _known(where: str, section: str, given: Any, known: tuple[str, ...]) -> None:
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}: {section.strip() or 'the file'} must be a table")
    for key in given:
        if key not in known:
            hint = closest_match(key, known)
            raise ConfigError(
                f"{where}: {section}unknown key {key!r}"
                + (f"; did you mean {hint!r}?" if hint else "")
            )


def _connection(where: str, section: str, fields: dict[str, Any], default_name: str) -> Any:
    """The connection of a [source]/[target]: a registered name, or kind + fields."""
    from ematix_engine.connections import build_connection

    if "connection" in fields:
        name = fields.pop("connection")
        if fields.keys() - {"name"}:
            extra = sorted(fields.keys() - {"name"})[0]
            raise ConfigError(f"{where}: {section} names connection {name!r}; drop {extra!r}")
        return name
    name = fields.pop("name", default_name)
    kind = fields.pop("kind", None)
    try:
        return build_connection(name, fields, kind=kind, where=f"{where} {section}")
    except ConfigError:
        raise
    except TypeError as error:
        raise ConfigError(f"{where}: {section} {error}") from None


def _source(where: str, section: str, data: Any, source_query: str | None) -> Source:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {section} must be a table")
    fields = dict(data)
    options = {k: fields.pop(k) for k in _SOURCE_OPTIONS if k in fields}
    query = options.pop("query", source_query)
    if "metadata_columns" in options:
        options["metadata_columns"] = tuple(options["metadata_columns"])
    if "read_options" in options:
        options["read_options"] = _chars(dict(options["read_options"]))
    connection = _connection(where, section, fields, "source")
    try:
        return Source(connection=connection, query=query or "", **options)
    except ConfigError as error:
        raise ConfigError(f"{where}: {section}: {error}") from None


def _target(where: str, section: str, data: Any) -> Target:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {section} must be a table")
    fields = dict(data)
    options = {k: fields.pop(k) for k in _TARGET_OPTIONS if k in fields}
    table = fields.pop("table", None)
    read_options = fields.pop("read_options", None)
    if isinstance(table, list):  # [[targets.table]], as the guide writes it
        if len(table) != 1:
            raise ConfigError(f"{where}: {section} table: give one table per target")
        table = table[0]
    if table is not None:
        _known(where, f"{section} table: ", table, _TABLE_KEYS)
        if "name" not in table:
            raise ConfigError(f"{where}: {section} table: name is required")
        if "primary_key" in table:
            options["primary_key"] = table["primary_key"]
        table = (table.get("schema", "public"), table["name"])
    if read_options is not None:
        _known(where, f"{section} read_options: ", read_options, ("csv", "json"))
        if "csv" in read_options:
            options["csv_read_options"] = _chars(dict(read_options["csv"]))
        if "json" in read_options:
            options["json_read_options"] = dict(read_options["json"])
    if "primary_key" in options and isinstance(options["primary_key"], str):
        options["primary_key"] = (options["primary_key"],)
    connection = _connection(where, section, fields, "target")
    try:
        return Target(connection=connection, table=table, **options)
    except ConfigError as error:
        raise ConfigError(f"{where}: {section}: {error}") from None


def _chars(options: dict[str, Any]) -> dict[str, Any]:
    """Read-option characters may be given as ``ord()`` numbers (``delimiter = 44``)."""
    for key in _CHAR_KEYS:
        if isinstance(options.get(key), int) and not isinstance(options[key], bool):
            options[key] = chr(options[key])
    return options
