"""Shared implementation of the RunLog protocol over three storage primitives.

Each backend implements :meth:`RecordStore._upsert` (write one record by ``run_id``),
:meth:`RecordStore._fetch_page` (one page of records newest first, optionally filtered, strictly
older than a keyset cursor), ``claim``, ``release`` and ``close``; everything else in
:class:`~ematix_engine.runlog.base.RunLog` is derived here once, so every backend answers
``attempt_state`` and ``last_success`` the same way.

Records are ordered by ``(started_at, seq)`` descending, where ``seq`` is the store's insertion
counter (kept by an upsert). Paging with a keyset cursor means no lock or cursor is held between
pages, and ``attempt_state`` stops reading at the first success however long the history is.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from ematix_engine.runlog.base import (
    AttemptState,
    RunRecord,
    RunStatus,
    attempt_state_from,
)

__all__ = ["RecordStore"]

logger = logging.getLogger("ematix.runlog")

_PAGE = 200

_ATTEMPT_STATUSES: tuple[RunStatus, ...] = (
    RunStatus.SUCCESS,
    RunStatus.FAILED,
    RunStatus.GAVE_UP,
)


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Keyset position: the ``started_at`` and ``seq`` of the last record of a page."""

    started_at: datetime
    seq: int


def check_lease_args(pipeline: str, owner: str, lease_seconds: float) -> None:
    """Validate claim arguments before touching the store."""
    if not isinstance(pipeline, str) or not pipeline:
        raise ValueError(f"claim needs a non-empty pipeline name, got {pipeline!r}")
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"claim on {pipeline!r} needs a non-empty owner, got {owner!r}")
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int | float)
        or not math.isfinite(lease_seconds)
        or lease_seconds <= 0
    ):
        raise ValueError(
            f"claim on {pipeline!r}: lease_seconds must be a positive number, got {lease_seconds!r}"
        )


class RecordStore(ABC):
    """Base class of the bundled RunLog backends (see the module docstring)."""

    @abstractmethod
    def _upsert(self, record: RunRecord) -> None:
        """Insert ``record`` or replace the stored record with the same ``run_id``."""

    @abstractmethod
    def _fetch_page(
        self,
        pipeline: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int,
        before: PageCursor | None,
    ) -> list[tuple[RunRecord, int]]:
        """Return up to ``limit`` ``(record, seq)`` pairs newest first, older than ``before``.

        "Older than ``(started_at, seq)``" means ``started_at < c.started_at`` or
        ``started_at = c.started_at and seq < c.seq``.
        """

    def _iter_records(
        self,
        pipeline: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int | None,
    ) -> Iterator[RunRecord]:
        """Yield records newest first, fetching pages of at most ``_PAGE`` rows."""
        remaining = limit
        before: PageCursor | None = None
        while True:
            size = _PAGE if remaining is None else min(_PAGE, remaining)
            page = self._fetch_page(pipeline, statuses, size, before)
            for record, _seq in page:
                yield record
            if remaining is not None:
                remaining -= len(page)
                if remaining <= 0:
                    return
            if len(page) < size:
                return
            last, seq = page[-1]
            before = PageCursor(started_at=last.started_at, seq=seq)

    @abstractmethod
    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """See :meth:`ematix_engine.runlog.base.RunLog.claim`."""

    @abstractmethod
    def release(self, pipeline: str, owner: str) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.release`."""

    @abstractmethod
    def close(self) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.close`."""

    def record_start(self, pipeline: str, attempt: int, run_id: str | None = None) -> RunRecord:
        """See :meth:`ematix_engine.runlog.base.RunLog.record_start`."""
        fields: dict = {"pipeline": pipeline, "status": RunStatus.RUNNING, "attempt": attempt}
        if run_id is not None:
            fields["run_id"] = run_id
        record = RunRecord(**fields)
        self._upsert(record)
        return record

    def record_finish(self, record: RunRecord) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.record_finish`."""
        if not isinstance(record, RunRecord):
            raise TypeError(f"record_finish needs a RunRecord, got {type(record).__name__}")
        self._upsert(record)

    def record_skip(self, pipeline: str, reason: str) -> RunRecord:
        """See :meth:`ematix_engine.runlog.base.RunLog.record_skip`."""
        record = RunRecord(pipeline=pipeline, status=RunStatus.SKIPPED, attempt=0, reason=reason)
        record = record.finished(RunStatus.SKIPPED, finished_at=record.started_at)
        self._upsert(record)
        return record

    def last_run(self, pipeline: str) -> RunRecord | None:
        """See :meth:`ematix_engine.runlog.base.RunLog.last_run`."""
        return next(self._iter_records(pipeline, None, 1), None)

    def runs(self, pipeline: str | None = None, limit: int = 100) -> list[RunRecord]:
        """See :meth:`ematix_engine.runlog.base.RunLog.runs`."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"runs(limit=...) must be a positive int, got {limit!r}")
        return list(self._iter_records(pipeline, None, limit))

    def last_success(self, pipeline: str) -> RunRecord | None:
        """See :meth:`ematix_engine.runlog.base.RunLog.last_success`."""
        return next(self._iter_records(pipeline, (RunStatus.SUCCESS,), 1), None)

    def attempt_state(self, pipeline: str) -> AttemptState:
        """See :meth:`ematix_engine.runlog.base.RunLog.attempt_state`."""
        return attempt_state_from(pipeline, self._iter_records(pipeline, _ATTEMPT_STATUSES, None))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
