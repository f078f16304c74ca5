"""In-process RunLog (``memory://``): for tests and single-process, one-off runs.

Thread-safe (one lock around every operation); everything is lost when the process exits. Its
leases exclude only threads of this process, so it must never stand in for a shared run log
when several workers run (``ematix`` commands never fall back to it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ematix_engine.runlog._store import PageCursor, RecordStore, check_lease_args
from ematix_engine.runlog.base import RunRecord, RunStatus

__all__ = ["MemoryRunLog"]


class MemoryRunLog(RecordStore):
    """A RunLog held in a dict, guarded by a lock.

    Example:
        >>> log = MemoryRunLog()
        >>> log.claim("orders", owner="worker-1", lease_seconds=60)
        True
        >>> log.claim("orders", owner="worker-2", lease_seconds=60)
        False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, tuple[int, RunRecord]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._seq = 0

    def __repr__(self) -> str:
        return f"MemoryRunLog(records={len(self._records)})"

    def _upsert(self, record: RunRecord) -> None:
        with self._lock:
            existing = self._records.get(record.run_id)
            if existing is None:
                self._seq += 1
                seq = self._seq
            else:
                seq = existing[0]
            self._records[record.run_id] = (seq, record)

    def _fetch_page(
        self,
        pipeline: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int,
        before: PageCursor | None,
    ) -> list[tuple[RunRecord, int]]:
        with self._lock:
            rows = [
                (record, seq)
                for seq, record in self._records.values()
                if (pipeline is None or record.pipeline == pipeline)
                and (statuses is None or record.status in statuses)
                and (before is None or (record.started_at, seq) < (before.started_at, before.seq))
            ]
        rows.sort(key=lambda row: (row[0].started_at, row[1]), reverse=True)
        return rows[:limit]

    def claim(self, pipeline: str, owner: str, lease_seconds: float) -> bool:
        """See :meth:`ematix_engine.runlog.base.RunLog.claim`."""
        check_lease_args(pipeline, owner, lease_seconds)
        now = time.time()
        with self._lock:
            held = self._leases.get(pipeline)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._leases[pipeline] = (owner, now + lease_seconds)
            return True

    def release(self, pipeline: str, owner: str) -> None:
        """See :meth:`ematix_engine.runlog.base.RunLog.release`."""
        with self._lock:
            held = self._leases.get(pipeline)
            if held is not None and held[0] == owner:
                del self._leases[pipeline]

    def close(self) -> None:
        """Nothing to release; records stay readable until the object is dropped."""
