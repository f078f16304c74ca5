"""Process-local references from asset keys to the pipeline targets behind them.

dagster-dlt puts its source and pipeline objects into spec metadata; Dagster then shows them
as ``[Pipeline] (unserializable)`` entries in the UI. ematix keeps only readable strings in
metadata (``ematix/pipeline``, ``ematix/target``) and remembers the objects here instead,
keyed by asset key. Every process that runs assets builds its definitions first (the run
worker imports the code location), so the references are always there when the resource
looks them up; a miss raises an error that says how to fix it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import dagster as dg

from ematix_engine import Pipeline, TargetSpec
from ematix_engine.checks import Check

__all__ = ["EmatixAssetRef", "lookup_ref", "register_ref"]

_lock = threading.Lock()
_REFS: dict[dg.AssetKey, EmatixAssetRef] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class EmatixAssetRef:
    """One ematix asset: the pipeline target it is, and what was worked out at build time.

    Attributes:
        key: The asset key.
        pipeline: The declared pipeline.
        target: The target this asset is.
        backend: The target system.
        checks: Built-in and declared checks of the target (asset check names).
        column_schema: The declared column schema (spec metadata).
        column_lineage: Column lineage from the source SQL, if sqlglot derived any.
    """

    key: dg.AssetKey
    pipeline: Pipeline
    target: TargetSpec
    backend: str
    checks: tuple[Check, ...]
    column_schema: dg.TableSchema
    column_lineage: dg.TableColumnLineage | None = None


def register_ref(ref: EmatixAssetRef) -> None:
    """Remember ``ref`` under its asset key (a later build of the same key replaces it)."""
    with _lock:
        _REFS[ref.key] = ref


def lookup_ref(key: dg.AssetKey) -> EmatixAssetRef | None:
    """The reference registered for ``key``, or ``None``."""
    with _lock:
        return _REFS.get(key)
