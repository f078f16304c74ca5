"""Progress of a running load, reported to a callback (the CLI's progress bar).

A load reports each phase it enters and, while it streams a source from another database, the
rows read so far::

    def show(p: LoadProgress) -> None:
        print(f"{p.pipeline} → {p.target}: {p.phase}, {p.rows_read} rows")

    pipeline.run(on_progress=show)

A callback that raises is logged and ignored: a broken display never fails a load. It may be
called from a worker thread that pulls the source's batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

__all__ = ["LoadProgress", "ProgressCallback", "ProgressReporter"]

log = logging.getLogger("ematix.batch")

#: Phases in the order a load enters them (a dry run ends "rolled back").
READING, PREPARING, WRITING, COMMITTED = "reading source", "preparing", "writing", "committed"
ROLLED_BACK = "rolled back"


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """Where one target's load is.

    Attributes:
        pipeline: the pipeline's name.
        target: the target, ``schema.table``.
        phase: ``"reading source"``, ``"preparing"``, ``"writing"``, then ``"committed"`` (or
            ``"rolled back"`` for a dry run).
        rows_read: source rows read so far. A source streamed from another database counts
            batch by batch; a same-database source reports its rows (after exact duplicates
            are dropped) when writing starts.
    """

    pipeline: str
    target: str
    phase: str
    rows_read: int

    @property
    def committed(self) -> bool:
        """Whether the target's load committed (its last event)."""
        return self.phase == COMMITTED


ProgressCallback = Callable[[LoadProgress], None]


class ProgressReporter:
    """Sends one target's progress to a callback (does nothing without one)."""

    def __init__(self, callback: ProgressCallback | None, pipeline: str, target: str) -> None:
        self._callback = callback
        self._pipeline = pipeline
        self._target = target
        self._phase = READING
        self.rows_read = 0

    @property
    def active(self) -> bool:
        """Whether anybody listens (counting rows for nobody is wasted work)."""
        return self._callback is not None

    def phase(self, phase: str, rows_read: int | None = None) -> None:
        """Enter ``phase`` (optionally setting the rows read)."""
        self._phase = phase
        if rows_read is not None:
            self.rows_read = rows_read
        self._emit()

    def counting(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """``reader``, reporting the rows read after every batch."""
        if self._callback is None:
            return reader

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                self.rows_read += batch.num_rows
                self._emit()
                yield batch

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

    def _emit(self) -> None:
        if self._callback is None:
            return
        try:
            self._callback(LoadProgress(self._pipeline, self._target, self._phase, self.rows_read))
        except Exception:
            log.warning("%s: the progress callback failed", self._pipeline, exc_info=True)
