"""Locks that make writes into one target take turns.

Two loads of one target must never interleave: each would plan against the same old state
and both would write (two current SCD2 versions per key, appended rows twice). A write holds

* a **process lock** per target (threads of one process: :func:`target_lock`), and
* the **store's own lock**, taken by the backend inside the write's transaction: a PostgreSQL
  transaction-scoped advisory lock, SQLite's ``BEGIN IMMEDIATE``, DuckDB's file lock (one
  writing process per file), a lock file next to a Delta table (:func:`file_lock`).

Waits are bounded by ``EMATIX_LOCK_TIMEOUT_S`` (default 300 s); a write that cannot get its
turn fails with a :class:`~ematix_engine.errors.LoadError` saying who holds the target.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TargetBusy", "advisory_key", "busy_error", "file_lock", "lock_timeout_s", "target_lock"]

_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


def lock_timeout_s() -> float:
    """Seconds a write waits for its target (``EMATIX_LOCK_TIMEOUT_S``, default 300)."""
    try:
        return max(0.0, float(os.environ.get("EMATIX_LOCK_TIMEOUT_S", "300")))
    except ValueError:
        return 300.0


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``parts`` (PostgreSQL advisory locks)."""
    digest = hashlib.sha256("\x00".join(("ematix", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def target_lock(key: str, label: str, writer: str = "") -> Iterator[None]:
    """Hold the process-wide lock of target ``key`` (``label``, ``writer`` name it in errors)."""
    with _GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    if not lock.acquire(timeout=lock_timeout_s()):
        raise _busy(writer, label, "another load in this process")
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def file_lock(path: Path, label: str, writer: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), waiting a bounded time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s()
    with open(path, "a+b") as handle:
        delay = 0.01
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(writer, label, f"the process holding {path}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class TargetBusy(Exception):
    """A backend could not take its lock on a target in time (see :func:`busy_error`)."""


def busy_error(writer: str, label: str, holder: str = "another load") -> Exception:
    """The error of a write that waited too long for its target."""
    from ematix_engine.errors import LoadError

    return LoadError(
        writer or "?",
        label,
        f"waited {lock_timeout_s():g} s for {holder} to finish writing it; "
        f"retry later or raise EMATIX_LOCK_TIMEOUT_S",
    )


_busy = busy_error
