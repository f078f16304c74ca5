"""The SQL transform stage of streaming pipelines: DataFusion SQL, lookups, UDFs and UDAFs.

The streaming runtime builds one :class:`TransformStage` per pipeline and calls
:meth:`~TransformStage.run` per batch (the batch is the table ``source``)::

    stage = TransformStage(sql, lookups={"users": Lookup(connection=..., query="SELECT ...")},
                           udfs=[...], aggregate_udfs=[...], pipeline="name")
    out = stage.run(batch)          # pyarrow.Table
    stage.close()                   # stops lookup refresh threads

``transform_on_error`` is :class:`ErrorPolicy` (``policy.run(stage, batch)`` returns a
:class:`TransformOutcome`; see ``ematix_engine/transform/on_error.py`` for the exact shape), and
:func:`~ematix_engine.schema.json_text.json_text` turns List/Struct results (the guide's
``array_agg(named_struct(...))``) into JSON text for JSON/JSONB columns.
"""

from __future__ import annotations

from ematix_engine.transform.errors import (
    LookupLoadError,
    TransformError,
    TransformSqlError,
    UdfTypeError,
)
from ematix_engine.transform.lookups import Lookup
from ematix_engine.transform.on_error import ON_ERROR_MODES, ErrorPolicy, TransformOutcome
from ematix_engine.transform.stage import SOURCE_TABLE, TransformStage
from ematix_engine.transform.udfs import AggregateUdf, ScalarUdf, udaf, udf

__all__ = [
    "ON_ERROR_MODES",
    "SOURCE_TABLE",
    "AggregateUdf",
    "ErrorPolicy",
    "Lookup",
    "LookupLoadError",
    "ScalarUdf",
    "TransformError",
    "TransformOutcome",
    "TransformSqlError",
    "TransformStage",
    "UdfTypeError",
    "udaf",
    "udf",
]
