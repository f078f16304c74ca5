"""Metadata keys, tags and names that ematix_dagster writes, in one place.

Every key ematix owns lives under the ``ematix/`` namespace; standard table facts use Dagster's
own ``dagster/…`` keys (see :mod:`ematix_dagster.metadata`).
"""

from __future__ import annotations

__all__ = [
    "KIND_EMATIX",
    "METADATA_NAMESPACE",
    "META_KEY_BACKEND",
    "META_KEY_CONNECTION",
    "META_KEY_KEYS",
    "META_KEY_MODE",
    "META_KEY_PIPELINE",
    "META_KEY_SCHEDULE",
    "META_KEY_TARGET",
    "RESOURCE_KEY",
    "RUNLOG_JOB_NAME",
    "RUNLOG_STREAM_RUN_ID",
    "RUN_TAG_PIPELINE",
]

METADATA_NAMESPACE = "ematix"
"""Namespace of every ematix metadata key (``ematix/<field>``)."""

META_KEY_PIPELINE = "ematix/pipeline"
"""Name of the pipeline that loads the asset."""
META_KEY_TARGET = "ematix/target"
"""``schema.table`` of the target the asset is."""
META_KEY_MODE = "ematix/mode"
"""Load mode: append, merge, scd2 or replace."""
META_KEY_KEYS = "ematix/key_columns"
"""Business key columns, comma-separated."""
META_KEY_CONNECTION = "ematix/connection"
"""Name of the target connection."""
META_KEY_BACKEND = "ematix/backend"
"""Target system: duckdb, postgres, sqlite or delta."""
META_KEY_SCHEDULE = "ematix/schedule"
"""The pipeline's cron expression, if any."""

RUN_TAG_PIPELINE = "ematix/pipeline"
"""Run tag naming the pipeline(s) a Dagster run loaded (comma-separated)."""

RESOURCE_KEY = "ematix"
"""Resource key of :class:`~ematix_dagster.resource.EmatixResource`."""

KIND_EMATIX = "ematix"
"""Kind tag added to every ematix asset, next to the backend's kind."""

RUNLOG_STREAM_RUN_ID = "ematix-runlog"
"""Event-log stream (a run id with no run) that holds the RunLog records and leases."""
RUNLOG_JOB_NAME = "__ematix_runlog__"
"""Job name stamped on the RunLog stream's events."""
