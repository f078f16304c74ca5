"""The frozen configuration of a streaming pipeline: sources, targets, delivery, batching.

Every form a streaming pipeline can be declared in — ``run_streaming_pipeline(...)`` keywords,
``@ematix.streaming_pipeline(...)``, a ``pipeline.toml`` — ends as one
:class:`StreamingPipelineSpec`, validated at construction: a bad value fails before any
connection is opened, with a message naming the pipeline and the key.

* :class:`Source`: a connection (Kafka, a local file directory, or a :class:`MemorySource`)
  and what to read from it (a topic, a watched prefix);
* :class:`Target`: a connection and what to write there (a table, or a file prefix) with its
  load mode and per-format options;
* :class:`StreamingPipelineSpec`: the sources, the targets, the optional SQL transform, the
  run-loop settings (batch size, batch time, idle pause, delivery guarantee, DLQ), and the
  causal constraints with the alerters their violations go to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ematix_engine.errors import ConfigError, closest_match

__all__ = [
    "DELIVERIES",
    "METADATA_COLUMNS",
    "TRANSFORM_ON_ERROR",
    "Source",
    "StreamingPipelineSpec",
    "Target",
]

DELIVERIES = ("at_least_once", "exactly_once")
"""Delivery guarantees: offsets after the writes, or offsets inside the writes."""
TRANSFORM_ON_ERROR = ("fail", "drop", "dlq")
"""What a failing transform does to its batch."""
METADATA_COLUMNS = ("_topic", "_partition", "_offset", "_key")
"""Per-message columns a Kafka source adds when asked (``_event_ts`` is always there)."""
MODES = ("append", "merge")
"""Load modes of streaming targets."""

_CSV_WRITE = ("csv_delimiter", "csv_header", "csv_quote", "csv_escape", "csv_null_value")
_CSV_READ_KEYS = (
    "has_header",
    "delimiter",
    "quote",
    "escape",
    "comment",
    "null_regex",
    "truncated_rows_ok",
    "schema_infer_max_records",
)
_JSON_READ_KEYS = ("schema_infer_max_records", "batch_size")
PARQUET_COMPRESSIONS = ("snappy", "gzip", "zstd", "uncompressed")
"""Accepted ``parquet_compression`` values."""
_NAME = re.compile(r"\S")


def _kind(connection: Any) -> str | None:
    """The connection's kind when it is known without the registry (typed or a source object)."""
    return getattr(connection, "kind", None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One stream a pipeline reads.

    Attributes:
        connection: a ``KafkaConnection``, an ``ObjectStoreLocalConnection``, a
            :class:`~ematix_engine.streaming.MemorySource`, or the name of a registered
            connection.
        query: what to read: the topic (comma-separated topics allowed) for Kafka, the watched
            prefix (a folder under the connection's path) for files; unused by memory sources.
        event_time_column: a payload field holding each row's event time; ``_event_ts`` is
            taken from it instead of the message timestamp.
        metadata_columns: per-message columns to add, from ``_topic``, ``_partition``,
            ``_offset`` and ``_key`` (``_event_ts`` is always added).
        settle_ms: files only: a file is read once it has not changed for this long (a
            half-written file is never read); 0 reads files as soon as they appear (use
            rename-in then).
        read_options: files only: how CSV or JSON-lines files are read (the keys of a
            target's ``csv_read_options`` / ``json_read_options``, by the connection's format).

    Example:
        >>> from ematix_engine import KafkaConnection
        >>> Source(connection=KafkaConnection(name="k", bootstrap_servers="localhost:9092",
        ...        group_id="g"), query="events", metadata_columns=("_partition", "_offset"))
        ... # doctest: +ELLIPSIS
        Source(connection=KafkaConnection(name='k', ...), query='events', ...)
    """

    connection: Any
    query: str = ""
    event_time_column: str | None = None
    metadata_columns: tuple[str, ...] = ()
    settle_ms: int = 1000
    read_options: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.connection is None:
            raise ConfigError("Source: connection is required")
        if not isinstance(self.query, str):
            raise ConfigError(f"Source: query must be a string, got {type(self.query).__name__}")
        columns = tuple(self.metadata_columns)
        object.__setattr__(self, "metadata_columns", columns)
        for column in columns:
            if column not in METADATA_COLUMNS:
                raise ConfigError(
                    f"Source {self.label}: metadata_columns has {column!r}; choose from "
                    f"{', '.join(METADATA_COLUMNS)}"
                )
        kind = _kind(self.connection)
        if kind in ("kafka", "object_store_local") and not self.query.strip():
            what = "the topic" if kind == "kafka" else "the watched prefix"
            raise ConfigError(f"Source {self.label}: query (source_query) must name {what}")
        if self.settle_ms < 0:
            raise ConfigError(f"Source {self.label}: settle_ms must be >= 0")
        if self.read_options is not None:
            if kind not in ("object_store_local", None):
                raise ConfigError(
                    f"Source {self.label}: read_options apply to file sources, not to a "
                    f"{kind!r} connection"
                )
            file_format = getattr(self.connection, "format", None)
            known = _JSON_READ_KEYS if file_format == "json_lines" else _CSV_READ_KEYS
            if file_format in ("csv", "json_lines", None):
                _check_keys(self.label, "read_options", self.read_options, known)
            else:
                raise ConfigError(
                    f"Source {self.label}: read_options apply to csv and json_lines files, "
                    f"not {file_format!r}"
                )

    @property
    def connection_name(self) -> str:
        """The connection's name (or the string given)."""
        if isinstance(self.connection, str):
            return self.connection
        return str(getattr(self.connection, "name", type(self.connection).__name__))

    @property
    def label(self) -> str:
        """``connection/query``: names the source in messages, metrics and checkpoints."""
        return f"{self.connection_name}/{self.query}" if self.query else self.connection_name


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One place every batch is written to.

    Database and Delta targets name a ``table``; file targets (``ObjectStoreLocalConnection``)
    name a ``prefix`` and take the per-format options. Options that do not fit the target's
    format raise at construction.

    Attributes:
        connection: a typed connection or the name of a registered one.
        table: ``(schema, name)``, ``"schema.name"``, or an ``@ematix.table`` class (which fixes
            the column types, the primary key and, unless ``mode`` is given, merge mode).
        prefix: file targets: the folder under the connection's path that receives the files.
        mode: ``append`` (default) or ``merge`` (upsert on ``primary_key``).
        primary_key: the key columns of a merge target (default: the declared table's).
        parquet_compression: ``snappy``, ``gzip``, ``zstd`` or ``uncompressed`` (Parquet).
        csv_delimiter: one character (CSV).
        csv_header: write a header line (CSV; default True).
        csv_quote: one character (CSV).
        csv_escape: one character (CSV); default: a doubled quote.
        csv_null_value: how a null cell is written (CSV; default empty).
        csv_read_options: how CSV files under the prefix are read back (keys as in the guide).
        json_read_options: how JSON-lines files under the prefix are read back.
    """

    connection: Any
    table: Any = None
    prefix: str | None = None
    mode: str | None = None
    primary_key: tuple[str, ...] = ()
    parquet_compression: str | None = None
    csv_delimiter: str | None = None
    csv_header: bool | None = None
    csv_quote: str | None = None
    csv_escape: str | None = None
    csv_null_value: str | None = None
    csv_read_options: Mapping[str, Any] | None = field(default=None, hash=False)
    json_read_options: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.connection is None:
            raise ConfigError("Target: connection is required")
        if isinstance(self.primary_key, str):
            object.__setattr__(self, "primary_key", (self.primary_key,))
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        if isinstance(self.table, list):
            object.__setattr__(self, "table", tuple(self.table))
        if self.mode is not None and self.mode not in MODES:
            hint = closest_match(str(self.mode), MODES)
            raise ConfigError(
                f"Target {self.label}: mode {self.mode!r} is not a streaming load mode; use "
                f"{' or '.join(MODES)}" + (f" (did you mean {hint!r}?)" if hint else "")
            )
        self._validate_table()
        self.validate_for(_kind(self.connection), getattr(self.connection, "format", None))

    def _validate_table(self) -> None:
        table = self.table
        if table is None or isinstance(table, type) or hasattr(table, "qualified_name"):
            return
        if isinstance(table, str):
            if not _NAME.search(table):
                raise ConfigError(f"Target {self.label}: table must not be blank")
            return
        if (
            isinstance(table, tuple)
            and len(table) == 2
            and all(isinstance(p, str) and p for p in table)
        ):
            return
        raise ConfigError(
            f"Target {self.label}: table must be (schema, name), 'schema.name' or an "
            f"@ematix.table class, got {table!r}"
        )

    def validate_for(self, kind: str | None, file_format: str | None) -> None:
        """Check the options against the target's connection kind and file format.

        Called at construction for typed connections, and again once a connection name is
        resolved.

        Raises:
            ConfigError: naming the option that does not fit.
        """
        if kind is None:
            return
        is_files = kind in ("object_store_local", "object_store_s3")
        file_options = {
            name: getattr(self, name)
            for name in ("prefix", "parquet_compression", *_CSV_WRITE)
            if getattr(self, name) is not None
        }
        if self.csv_read_options is not None:
            file_options["csv_read_options"] = self.csv_read_options
        if self.json_read_options is not None:
            file_options["json_read_options"] = self.json_read_options
        if not is_files:
            if file_options:
                name = sorted(file_options)[0]
                raise ConfigError(
                    f"Target {self.label}: {name} applies to file targets "
                    f"(ObjectStoreLocalConnection), not to a {kind!r} connection"
                )
            if self.table is None:
                raise ConfigError(
                    f"Target {self.label}: table (target_table) is required for a {kind!r} "
                    f"target; give (schema, name) or an @ematix.table class"
                )
            return
        if self.table is not None:
            raise ConfigError(
                f"Target {self.label}: file targets take prefix=, not table= ({self.table!r})"
            )
        if self.mode == "merge":
            raise ConfigError(
                f"Target {self.label}: file targets only append; mode 'merge' needs a database "
                f"or Delta target"
            )
        self._validate_file_options(file_format)

    def _validate_file_options(self, file_format: str | None) -> None:
        def refuse(option: str) -> None:
            raise ConfigError(
                f"Target {self.label}: {option} does not apply to a {file_format!r} target"
            )

        if self.parquet_compression is not None:
            if file_format != "parquet":
                refuse("parquet_compression")
            if self.parquet_compression not in PARQUET_COMPRESSIONS:
                raise ConfigError(
                    f"Target {self.label}: parquet_compression {self.parquet_compression!r}; "
                    f"use {', '.join(PARQUET_COMPRESSIONS)}"
                )
        for option in _CSV_WRITE:
            if getattr(self, option) is not None and file_format != "csv":
                refuse(option)
        for option in ("csv_delimiter", "csv_quote", "csv_escape"):
            value = getattr(self, option)
            if value is not None and (not isinstance(value, str) or len(value) != 1):
                raise ConfigError(
                    f"Target {self.label}: {option} must be a single character, got {value!r}"
                )
        if self.csv_read_options is not None:
            if file_format != "csv":
                refuse("csv_read_options")
            _check_keys(self.label, "csv_read_options", self.csv_read_options, _CSV_READ_KEYS)
        if self.json_read_options is not None:
            if file_format != "json_lines":
                refuse("json_read_options")
            _check_keys(self.label, "json_read_options", self.json_read_options, _JSON_READ_KEYS)

    @property
    def connection_name(self) -> str:
        """The connection's name (or the string given)."""
        if isinstance(self.connection, str):
            return self.connection
        return str(getattr(self.connection, "name", "?"))

    @property
    def label(self) -> str:
        """Names the target in messages: ``connection:schema.table`` or ``connection:prefix``."""
        where = self.prefix or ""
        table = self.table
        if isinstance(table, tuple):
            where = ".".join(table)
        elif isinstance(table, str):
            where = table
        elif table is not None:
            spec = getattr(table, "__ematix_table__", table)
            where = getattr(spec, "qualified_name", repr(table))
        return f"{self.connection_name}:{where}" if where else self.connection_name


def check_known_keys(
    context: str, given: Any, known: Sequence[str], container: str = "a mapping"
) -> None:
    """Raise naming ``context`` when ``given`` is no mapping or has a key not in ``known``.

    Raises:
        ConfigError: ``<context> must be a mapping`` or ``<context> has unknown key 'k'; did
            you mean …?``.
    """
    if not isinstance(given, Mapping):
        raise ConfigError(f"{context} must be {container}")
    for key in given:
        if key not in known:
            hint = closest_match(str(key), known)
            raise ConfigError(
                f"{context} has unknown key {key!r}"
                + (f"; did you mean {hint!r}?" if hint else f"; known: {', '.join(known)}")
            )


def _check_keys(label: str, option: str, given: Mapping[str, Any], known: Sequence[str]) -> None:
    check_known_keys(f"Target {label}: {option}", given, known)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamingPipelineSpec:
    """A declared streaming pipeline (the one config every surface builds).

    Attributes:
        name: the pipeline's name (metrics label, checkpoint name, consumer logs).
        sources: what it reads; several sources are unioned per batch (fan-in).
        targets: where every batch goes; all are written before any offset moves (fan-out).
        transform_sql: optional SQL over the reserved table ``source`` run on every batch.
        lookups: lookup tables for the transform, by name.
        udfs: scalar UDFs for the transform.
        aggregate_udfs: aggregate UDFs for the transform.
        transform_on_error: ``fail`` (default), ``drop`` (skip the batch, counted) or ``dlq``.
        dead_letter_topic: topic receiving messages that cannot be decoded or written (Kafka
            sources only; a source connection's own ``dead_letter_topic`` is the default).
        batch_size: most rows per batch.
        max_batch_ms: longest a batch waits to fill.
        idle_pause_ms: pause after an iteration that found nothing.
        delivery: ``at_least_once`` (default) or ``exactly_once`` (offsets committed inside
            each target's write; database and Delta targets only).
        causal: which columns of the written rows make causal events
            (:class:`ematix_engine.causal.CausalSpec`); needed by ``constraints``.
        constraints: ``must_match(...)`` / ``never(...)`` checked on every batch's rows.
        alerters: where violations are alerted: alerter objects (``StdoutAlerter()``,
            ``SlackAlerter(...)``) or alerter URLs (``stdout://``, ``slack://…``).
        description: free text (docstring of a decorated function).
        module: the module that declared it.
    """

    name: str
    sources: tuple[Source, ...]
    targets: tuple[Target, ...]
    transform_sql: str | None = None
    lookups: Mapping[str, Any] = field(default_factory=dict, hash=False)
    udfs: tuple[Any, ...] = ()
    aggregate_udfs: tuple[Any, ...] = ()
    transform_on_error: str = "fail"
    dead_letter_topic: str | None = None
    batch_size: int = 10_000
    max_batch_ms: int = 1_000
    idle_pause_ms: int = 500
    delivery: str = "at_least_once"
    causal: Any = field(default=None, hash=False)
    constraints: tuple[Any, ...] = field(default=(), hash=False)
    alerters: tuple[Any, ...] = field(default=(), hash=False)
    description: str = ""
    module: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.search(self.name):
            raise ConfigError("streaming pipeline: name (pipeline_name) is required")
        for attribute in ("sources", "targets", "udfs", "aggregate_udfs"):
            object.__setattr__(self, attribute, tuple(getattr(self, attribute)))
        object.__setattr__(self, "lookups", dict(self.lookups or {}))
        where = f"streaming pipeline {self.name!r}"
        if not self.sources:
            raise ConfigError(f"{where}: no source; give source= or sources=[Source(...)]")
        if not self.targets:
            raise ConfigError(f"{where}: no target; give target= or targets=[Target(...)]")
        labels = [s.label for s in self.sources]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{where}: the same source is listed twice ({labels})")
        self._check_choice("delivery", DELIVERIES)
        self._check_choice("transform_on_error", TRANSFORM_ON_ERROR)
        for attribute, low in (("batch_size", 1), ("max_batch_ms", 1), ("idle_pause_ms", 0)):
            value = getattr(self, attribute)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(
                    f"{where}: {attribute} must be an integer >= {low}, got {value!r}"
                )
        if self.transform_sql is not None and not self.transform_sql.strip():
            raise ConfigError(f"{where}: transform_sql is empty")
        if (self.lookups or self.udfs or self.aggregate_udfs) and self.transform_sql is None:
            raise ConfigError(f"{where}: lookups and UDFs need transform_sql")
        self._check_causal(where)
        source_dlq = any(getattr(s.connection, "dead_letter_topic", None) for s in self.sources)
        if self.transform_on_error == "dlq" and self.dead_letter_topic is None and not source_dlq:
            raise ConfigError(
                f"{where}: transform_on_error 'dlq' needs dead_letter_topic (on the "
                f"pipeline or on the Kafka source connection)"
            )
        if self.dead_letter_topic is not None:
            kinds = {_kind(s.connection) for s in self.sources}
            if kinds - {"kafka", None}:
                raise ConfigError(
                    f"{where}: dead_letter_topic needs Kafka sources (the DLQ reuses the "
                    f"source's Kafka cluster)"
                )

    def _check_causal(self, where: str) -> None:
        if self.causal is not None or self.constraints:
            from ematix_engine.streaming.causal import check_causal

            causal, constraints = check_causal(where, self.causal, self.constraints)
            object.__setattr__(self, "causal", causal)
            object.__setattr__(self, "constraints", constraints)
        if isinstance(self.alerters, str) or not isinstance(self.alerters, Sequence):
            raise ConfigError(f"{where}: alerters must be a list of alerters or alerter URLs")
        if self.alerters:
            from ematix_engine.ops.alerters import open_alerter

            alerters = []
            for i, alerter in enumerate(self.alerters):
                if isinstance(alerter, str):
                    try:
                        alerter = open_alerter(alerter)
                    except ConfigError as error:
                        raise ConfigError(f"{where}: alerters[{i}]: {error}") from None
                elif not callable(getattr(alerter, "send", None)):
                    raise ConfigError(
                        f"{where}: alerters[{i}] is {type(alerter).__name__}, not an alerter "
                        f"(an object with send(event)) or an alerter URL"
                    )
                alerters.append(alerter)
            object.__setattr__(self, "alerters", tuple(alerters))
        object.__setattr__(self, "alerters", tuple(self.alerters))
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if self.alerters and not self.constraints:
            raise ConfigError(
                f"{where}: alerters receive causal constraint violations; give constraints"
            )

    def _check_choice(self, attribute: str, choices: Sequence[str]) -> None:
        value = getattr(self, attribute)
        if value not in choices:
            hint = closest_match(str(value), choices)
            raise ConfigError(
                f"streaming pipeline {self.name!r}: {attribute} {value!r} is not one of "
                f"{', '.join(choices)}" + (f"; did you mean {hint!r}?" if hint else "")
            )
