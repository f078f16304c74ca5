"""ematix_engine: declarative batch and streaming pipelines on Arrow, importable without Dagster.

The names below are the public surface (the reference guide's, with ``ematix_flow`` spelled
``ematix_engine``); everything else is internal and may change.

Example:
    >>> from typing import Annotated
    >>> from ematix_engine import ematix, pk
    >>> from ematix_engine.types import BigInt, Text
    >>> @ematix.table(schema="analytics")
    ... class Events:
    ...     event_id: Annotated[BigInt, pk()]
    ...     name: Text | None
"""

from __future__ import annotations

__version__ = "0.1.0"

from ematix_engine import registry
from ematix_engine.api import ematix
from ematix_engine.api.pipeline import Pipeline, pipeline, target
from ematix_engine.api.table import natural_key, pk, table, table_spec
from ematix_engine.backends import backend_kind, same_database
from ematix_engine.batch.orchestrate import run_due
from ematix_engine.batch.result import PreviewResult, RunResult, TargetResult
from ematix_engine.batch.runner import RunEvent, RunStarted, iter_run
from ematix_engine.batch.source import substitute_watermark
from ematix_engine.connections import (
    Connection,
    DeltaLocalConnection,
    DeltaS3Connection,
    DuckDBConnection,
    KafkaConnection,
    MySQLConnection,
    ObjectStoreLocalConnection,
    ObjectStoreS3Connection,
    PostgresConnection,
    SchemaRegistryConnection,
    SQLiteConnection,
    check_connection,
    connect,
    format_from_path,
    get_connection,
    list_connections,
    register_connection,
)
from ematix_engine.errors import (
    BadValueError,
    ConfigError,
    ConnectionFailedError,
    ConnectionLostError,
    CycleError,
    DuplicateKeyError,
    EmatixError,
    LoadError,
    SchemaDriftError,
    SourceError,
    UnknownNameError,
    UnsupportedError,
    is_retryable,
)
from ematix_engine.ops import open_alerter, open_alerters, open_metrics
from ematix_engine.partitions import (
    Partition,
    StaticPartitions,
    TimeWindowPartitions,
    daily,
    hourly,
    monthly,
    static,
)
from ematix_engine.runlog import RunLog, RunRecord, RunStatus, open_run_log
from ematix_engine.specs import (
    ColumnSpec,
    Deletes,
    LoadMode,
    PipelineSpec,
    RetryPolicy,
    SqlSource,
    TableSpec,
    TargetSpec,
    ValidityColumns,
)
from ematix_engine.streaming import (
    MemorySource,
    Source,
    StreamingPipelineSpec,
    StreamResult,
    Target,
)
from ematix_engine.streaming.api import run_pipeline, run_streaming_pipeline
from ematix_engine.write.progress import LoadProgress

__all__ = [
    "BadValueError",
    "ColumnSpec",
    "ConfigError",
    "Connection",
    "ConnectionFailedError",
    "ConnectionLostError",
    "CycleError",
    "Deletes",
    "DeltaLocalConnection",
    "DeltaS3Connection",
    "DuckDBConnection",
    "DuplicateKeyError",
    "EmatixError",
    "KafkaConnection",
    "LoadError",
    "LoadMode",
    "LoadProgress",
    "MemorySource",
    "MySQLConnection",
    "ObjectStoreLocalConnection",
    "ObjectStoreS3Connection",
    "Partition",
    "Pipeline",
    "PipelineSpec",
    "PostgresConnection",
    "PreviewResult",
    "RetryPolicy",
    "RunEvent",
    "RunLog",
    "RunRecord",
    "RunResult",
    "RunStarted",
    "RunStatus",
    "SQLiteConnection",
    "SchemaDriftError",
    "SchemaRegistryConnection",
    "Source",
    "SourceError",
    "SqlSource",
    "StaticPartitions",
    "StreamResult",
    "StreamingPipelineSpec",
    "TableSpec",
    "Target",
    "TargetResult",
    "TargetSpec",
    "TimeWindowPartitions",
    "UnknownNameError",
    "UnsupportedError",
    "ValidityColumns",
    "__version__",
    "backend_kind",
    "check_connection",
    "connect",
    "daily",
    "ematix",
    "format_from_path",
    "get_connection",
    "hourly",
    "is_retryable",
    "iter_run",
    "list_connections",
    "monthly",
    "natural_key",
    "open_alerter",
    "open_alerters",
    "open_metrics",
    "open_run_log",
    "pipeline",
    "pk",
    "register_connection",
    "registry",
    "run_due",
    "run_pipeline",
    "run_streaming_pipeline",
    "same_database",
    "static",
    "substitute_watermark",
    "table",
    "table_spec",
    "target",
]
