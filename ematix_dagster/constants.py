"""Metadata keys, tags and names that ematix_dagster writes, in one place.

Every key ematix owns lives under the ``ematix/`` namespace (:data:`METADATA_NAMESPACE`);
standard table facts use Dagster's own ``dagster/…`` keys (:data:`DAGSTER_NAMESPACE`, see
:mod:`ematix_dagster.metadata`). Code elsewhere in ematix_dagster uses these names, never the
strings (a unit test checks both directions).
"""

from __future__ import annotations

__all__ = [
    "DAGSTER_KEY_CODE_REFERENCES",
    "DAGSTER_KEY_COLUMN_LINEAGE",
    "DAGSTER_KEY_COLUMN_SCHEMA",
    "DAGSTER_KEY_ROW_COUNT",
    "DAGSTER_KEY_STORAGE_KIND",
    "DAGSTER_KEY_TABLE_NAME",
    "DAGSTER_NAMESPACE",
    "KIND_EMATIX",
    "METADATA_NAMESPACE",
    "META_KEY_ALL_VERSIONS",
    "META_KEY_ATTEMPT",
    "META_KEY_BACKEND",
    "META_KEY_CHECK_BUILTIN",
    "META_KEY_CHECK_DETAIL",
    "META_KEY_CHECK_FAILING_COUNT",
    "META_KEY_CHECK_KIND",
    "META_KEY_CHECK_SAMPLE",
    "META_KEY_CHECK_SEVERITY",
    "META_KEY_CHECK_SQL",
    "META_KEY_CONNECTION",
    "META_KEY_CURRENT_VERSIONS",
    "META_KEY_DURATION_S",
    "META_KEY_FULL_REFRESH",
    "META_KEY_KEYS",
    "META_KEY_MODE",
    "META_KEY_PIPELINE",
    "META_KEY_PREVIEW",
    "META_KEY_ROWS_CLOSED",
    "META_KEY_ROWS_DELETED",
    "META_KEY_ROWS_INSERTED",
    "META_KEY_ROWS_UNCHANGED",
    "META_KEY_ROWS_UPDATED",
    "META_KEY_RUN_ID",
    "META_KEY_SCHEDULE",
    "META_KEY_TARGET",
    "META_KEY_WATERMARK",
    "RESOURCE_KEY",
    "RUNLOG_JOB_NAME",
    "RUNLOG_STREAM_RUN_ID",
    "RUN_TAG_FULL_REFRESH",
    "RUN_TAG_PIPELINE",
]

# ----------------------------------------------------------- ematix/… (EmatixMetadata)
METADATA_NAMESPACE = "ematix"
"""Namespace of every ematix metadata key (``ematix/<field>``): the ``EmatixMetadata`` set."""

META_KEY_PIPELINE = "ematix/pipeline"
"""Name of the pipeline that loads the asset."""
META_KEY_TARGET = "ematix/target"
"""``schema.table`` of the target the asset is."""
META_KEY_MODE = "ematix/mode"
"""Load mode: append, merge, scd2 or replace."""
META_KEY_BACKEND = "ematix/backend"
"""Target system: duckdb, postgres, sqlite or delta."""
META_KEY_KEYS = "ematix/key_columns"
"""Business key columns, comma-separated."""
META_KEY_CONNECTION = "ematix/connection"
"""Name of the target connection."""
META_KEY_SCHEDULE = "ematix/schedule"
"""The pipeline's cron expression, if any."""
META_KEY_ROWS_INSERTED = "ematix/rows_inserted"
"""Rows (or SCD2 versions) a load inserted."""
META_KEY_ROWS_UPDATED = "ematix/rows_updated"
"""Rows a load updated in place."""
META_KEY_ROWS_UNCHANGED = "ematix/rows_unchanged"
"""Source rows that changed nothing."""
META_KEY_ROWS_CLOSED = "ematix/rows_closed"
"""SCD2 versions a load closed."""
META_KEY_ROWS_DELETED = "ematix/rows_deleted"
"""Rows a load deleted."""
META_KEY_WATERMARK = "ematix/watermark"
"""Watermark after the load (incremental pipelines)."""
META_KEY_DURATION_S = "ematix/duration_s"
"""Seconds the load of the target took."""
META_KEY_RUN_ID = "ematix/run_id"
"""The RunLog record's id (also the ``_batch_id`` of the written rows)."""
META_KEY_ATTEMPT = "ematix/attempt"
"""Attempt number under the retry policy."""
META_KEY_CURRENT_VERSIONS = "ematix/current_versions"
"""SCD2 targets: current versions, the number ``dagster/row_count`` and the row-count check
report."""
META_KEY_ALL_VERSIONS = "ematix/all_versions"
"""SCD2 targets: every version in the table, closed ones included."""
META_KEY_FULL_REFRESH = "ematix/full_refresh"
"""``True`` when the load rebuilt the target from the source (set only then)."""
META_KEY_PREVIEW = "ematix/preview"
"""Markdown table of the first rows, added by ``EmatixEventIterator.fetch_preview``."""

# ------------------------------------------------------------------ ematix/… on checks
META_KEY_CHECK_KIND = "ematix/check_kind"
"""Kind of a check (not_null, unique, …), on its ``AssetCheckSpec``."""
META_KEY_CHECK_SEVERITY = "ematix/severity"
"""Severity of a check: error or warn."""
META_KEY_CHECK_BUILTIN = "ematix/builtin"
"""Whether the check is one of the target's built-in invariants."""
META_KEY_CHECK_FAILING_COUNT = "ematix/failing_count"
"""Rows that failed the check, on its ``AssetCheckResult``."""
META_KEY_CHECK_DETAIL = "ematix/detail"
"""One-line outcome of the check."""
META_KEY_CHECK_SAMPLE = "ematix/sample"
"""A sample of the failing rows (JSON)."""
META_KEY_CHECK_SQL = "ematix/sql"
"""The query the check ran."""

# ---------------------------------------------------- dagster/… (Dagster's standard keys)
DAGSTER_NAMESPACE = "dagster"
"""Namespace of Dagster's standard keys: the ``TableMetadata`` set."""
DAGSTER_KEY_ROW_COUNT = "dagster/row_count"
"""Rows in the table."""
DAGSTER_KEY_TABLE_NAME = "dagster/table_name"
"""``schema.table`` as the database names it."""
DAGSTER_KEY_COLUMN_SCHEMA = "dagster/column_schema"
"""Column names and types (a ``TableSchema``)."""
DAGSTER_KEY_COLUMN_LINEAGE = "dagster/column_lineage"
"""Source columns of each column (a ``TableColumnLineage``)."""
DAGSTER_KEY_STORAGE_KIND = "dagster/storage_kind"
"""The system that stores the table."""
DAGSTER_KEY_CODE_REFERENCES = "dagster/code_references"
"""Where the pipeline function is defined (Dagster's code-reference metadata)."""

# ---------------------------------------------------------------- tags, names, streams
RUN_TAG_PIPELINE = "ematix/pipeline"
"""Run tag naming the pipeline(s) a Dagster run loaded (comma-separated)."""

RUN_TAG_FULL_REFRESH = "ematix/full_refresh"
"""Run tag asking for a full refresh (``true``): every target the run loads is rebuilt from its
source (emptied, watermark reset) instead of loading the changes."""

RESOURCE_KEY = "ematix"
"""Resource key of :class:`~ematix_dagster.resource.EmatixResource`."""

KIND_EMATIX = "ematix"
"""Kind tag added to every ematix asset, next to the backend's kind."""

RUNLOG_STREAM_RUN_ID = "ematix-runlog"
"""Event-log stream (a run id with no run) that holds the RunLog records and leases."""
RUNLOG_JOB_NAME = "__ematix_runlog__"
"""Job name stamped on the RunLog stream's events."""
