"""The write core every pipeline kind writes through.

``apply_rows`` writes Arrow batches (or a same-database query) into one target in its load mode,
committing an optional checkpoint in the same transaction; ``plan_write`` is the planner that
both a write and ``preview()`` follow. Batch pipelines (:mod:`ematix_engine.batch`) use it per
target; streaming micro-batches will use it per batch.

Layout (the design's "write core", cut out of ``batch/`` so every caller shares it):

* ``apply.py``: :func:`apply_rows`, the rows it takes, checkpoints, results;
* ``planner.py``: same database, in-process or staged;
* ``prepare.py``: columns, normalize, cast, de-duplicate;
* ``plans/``: one set-based SQL plan per mode; ``in_process.py``: PostgreSQL's compare-and-copy;
* ``context.py``: the state a plan reads; ``progress.py``: phases and rows read.
"""

from ematix_engine.write.apply import (
    ArrowRows,
    Checkpoint,
    QueryRows,
    WriteResult,
    apply_rows,
    redact_error,
)
from ematix_engine.write.planner import WritePath, WritePlan, plan_write

__all__ = [
    "ArrowRows",
    "Checkpoint",
    "QueryRows",
    "WritePath",
    "WritePlan",
    "WriteResult",
    "apply_rows",
    "plan_write",
    "redact_error",
]
