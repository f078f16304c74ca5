"""``transform_on_error``: what a failing batch does to the stream ("fail", "drop" or "dlq").

DataFusion runs a whole batch at once, so the policy acts per batch, not per row (as in the
reference guide). The runtime calls :meth:`ErrorPolicy.run` instead of
:meth:`TransformStage.run` and gets a :class:`TransformOutcome`:

- ``"fail"`` (default): the :class:`TransformError` propagates; the runtime stops the run and
  commits nothing for the batch.
- ``"drop"``: ``outcome.table`` is an empty table (the planned output schema when the plan was
  built, else the empty schema), ``outcome.error`` holds the error, and the policy counts the
  batch and its rows in ``dropped_batches`` / ``dropped_rows`` and logs a warning naming the
  pipeline. Nothing is dropped silently.
- ``"dlq"``: like ``"drop"``, and ``outcome.dead_letters`` holds the failed **input** rows as a
  ``pyarrow.Table``; the runtime sends them down its dead-letter path with
  ``str(outcome.error)`` as the reason, *before* it commits the source offsets. Counted in
  ``dead_lettered_batches`` / ``dead_lettered_rows``.

A :class:`~ematix_engine.transform.errors.TransformSqlError` (the SQL does not plan against the
batch's schema) is a configuration error and always propagates, whatever the policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from ematix_engine.errors import ConfigError
from ematix_engine.transform.errors import TransformError

if TYPE_CHECKING:
    from ematix_engine.transform.stage import TransformStage

__all__ = ["ON_ERROR_MODES", "ErrorPolicy", "TransformOutcome"]

log = logging.getLogger("ematix.transform")

OnError = Literal["fail", "drop", "dlq"]
#: The accepted values of ``transform_on_error``.
ON_ERROR_MODES: tuple[str, ...] = ("fail", "drop", "dlq")


@dataclass(frozen=True, slots=True)
class TransformOutcome:
    """The result of one batch under a policy.

    Attributes:
        table: the transformed rows (empty when the batch failed and was dropped or
            dead-lettered).
        error: the batch's error, or None when it succeeded.
        dead_letters: the failed batch's input rows (``"dlq"`` only), else None.
    """

    table: pa.Table
    error: TransformError | None = None
    dead_letters: pa.Table | None = None

    @property
    def failed(self) -> bool:
        """Whether the batch failed (and was dropped or dead-lettered)."""
        return self.error is not None


class ErrorPolicy:
    """Apply ``transform_on_error`` to each batch a :class:`TransformStage` runs.

    Args:
        mode: ``"fail"``, ``"drop"`` or ``"dlq"``.
        pipeline: the pipeline name, for errors and warnings.

    Raises:
        ConfigError: an unknown mode.

    Examples:
        >>> import pyarrow as pa
        >>> from ematix_engine.transform import TransformStage
        >>> stage = TransformStage("SELECT CAST(a AS INT) AS a FROM source", pipeline="demo")
        >>> policy = ErrorPolicy("dlq", pipeline="demo")
        >>> outcome = policy.run(stage, pa.table({"a": ["1", "x"]}))
        >>> outcome.failed, outcome.table.num_rows, outcome.dead_letters.num_rows
        (True, 0, 2)
        >>> stage.close()
    """

    def __init__(self, mode: str = "fail", *, pipeline: str = "transform") -> None:
        if mode not in ON_ERROR_MODES:
            raise ConfigError(
                f"pipeline {pipeline!r}: transform_on_error={mode!r} is not one of "
                f"{', '.join(ON_ERROR_MODES)}"
            )
        self.mode = mode
        self.pipeline = pipeline
        self.dropped_batches = 0
        self.dropped_rows = 0
        self.dead_lettered_batches = 0
        self.dead_lettered_rows = 0

    def run(self, stage: TransformStage, batch: pa.Table | pa.RecordBatch) -> TransformOutcome:
        """Run ``stage`` on ``batch`` and apply the policy when the batch fails.

        Raises:
            TransformError: the batch failed and the mode is ``"fail"``.
            TransformSqlError: the SQL does not plan against the batch (any mode).
        """
        try:
            return TransformOutcome(stage.run(batch))
        except TransformError as error:
            if self.mode == "fail":
                raise
            return self._handle(stage, batch, error)

    def _handle(
        self, stage: TransformStage, batch: pa.Table | pa.RecordBatch, error: TransformError
    ) -> TransformOutcome:
        schema = stage.output_schema(batch.schema) or pa.schema([])
        empty = schema.empty_table()
        rows = batch.num_rows
        if self.mode == "drop":
            self.dropped_batches += 1
            self.dropped_rows += rows
            log.warning("pipeline %r: dropped a batch of %d rows: %s", self.pipeline, rows, error)
            return TransformOutcome(empty, error)
        self.dead_lettered_batches += 1
        self.dead_lettered_rows += rows
        log.warning(
            "pipeline %r: a batch of %d rows goes to the dead-letter path: %s",
            self.pipeline,
            rows,
            error,
        )
        failed = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        return TransformOutcome(empty, error, failed)
