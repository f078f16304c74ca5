"""A heartbeated lease: hold a pipeline's RunLog lease for as long as its run lives.

A lease is taken with a short time-to-live (:data:`LEASE_TTL_SECONDS`, 60 s) and renewed by a
background thread every :data:`RENEW_EVERY_SECONDS` (15 s) while the run goes on. A worker that
dies (SIGKILL, a lost host) stops renewing, so its lease expires within one TTL and another
worker can tell the run was abandoned: the RunLog still says ``running`` but nobody holds the
lease. Owners are ``host:pid:uuid``, unique per process and per lease, so a restarted process
that reuses a pid never inherits a dead predecessor's lease.

If a renewal finds the lease taken by someone else (this worker stalled longer than the TTL),
:attr:`HeldLease.lost` is set; the runner checks it at every progress point and stops the load
before it commits (see :class:`LeaseLostError`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ematix_engine.errors import EmatixError, TransientError

if TYPE_CHECKING:
    from ematix_engine.runlog.base import RunLog

__all__ = [
    "LEASE_TTL_SECONDS",
    "RENEW_EVERY_SECONDS",
    "HeldLease",
    "LeaseHeldError",
    "LeaseLostError",
    "new_owner",
]

log = logging.getLogger("ematix.runlog.lease")

LEASE_TTL_SECONDS = 60.0
"""How long a lease lasts without a renewal: a dead worker blocks its pipeline this long."""

RENEW_EVERY_SECONDS = 15.0
"""How often a live run renews its lease (a quarter of the TTL, so three renewals may fail)."""


def new_owner() -> str:
    """A lease owner id unique to this process and call: ``host:pid:uuid``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaseHeldError(EmatixError, TransientError):
    """Another live worker holds the pipeline's lease: this firing did not run."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        super().__init__(
            f"pipeline {pipeline!r} is running elsewhere: another worker holds its lease "
            f"(renewed every {RENEW_EVERY_SECONDS:g} s); nothing was loaded"
        )


class LeaseLostError(EmatixError, TransientError):
    """The run's lease was taken over (the worker stalled past the TTL): the load stopped."""

    def __init__(self, pipeline: str, owner: str) -> None:
        self.pipeline = pipeline
        self.owner = owner
        super().__init__(
            f"pipeline {pipeline!r}: worker {owner} lost its lease (it could not renew it for "
            f"longer than its time-to-live, and another worker may have taken over); the load "
            f"was stopped before committing"
        )


class HeldLease:
    """Take a pipeline's lease and keep renewing it on a daemon thread until released.

    Args:
        run_log: Where the lease lives.
        pipeline: The pipeline (lock) name.
        owner: The owner id (default: a new ``host:pid:uuid``).
        ttl: Lease time-to-live in seconds.
        renew_every: Seconds between renewals (must be below ``ttl``).

    Example:
        >>> from ematix_engine.runlog import open_run_log
        >>> log = open_run_log("memory://")
        >>> with HeldLease(log, "orders") as lease:
        ...     log.claim("orders", "someone-else", 60)
        False
        >>> log.claim("orders", "someone-else", 60)
        True
    """

    def __init__(
        self,
        run_log: RunLog,
        pipeline: str,
        owner: str | None = None,
        *,
        ttl: float = LEASE_TTL_SECONDS,
        renew_every: float | None = None,
    ) -> None:
        self.run_log = run_log
        self.pipeline = pipeline
        self.owner = owner or new_owner()
        self.ttl = float(ttl)
        self.renew_every = float(renew_every if renew_every is not None else ttl / 4)
        if not 0 < self.renew_every < self.ttl:
            raise ValueError(
                f"lease on {pipeline!r}: renew_every ({self.renew_every}) must be positive and "
                f"below the ttl ({self.ttl})"
            )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held_until = 0.0
        self.lost = False

    def acquire(self) -> bool:
        """Claim the lease and start renewing it; ``False`` when a live owner holds it."""
        if not self.run_log.claim(self.pipeline, self.owner, self.ttl):
            return False
        self._held_until = time.monotonic() + self.ttl
        self._thread = threading.Thread(
            target=self._renew, name=f"ematix-lease-{self.pipeline}", daemon=True
        )
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                renewed = self.run_log.claim(self.pipeline, self.owner, self.ttl)
            except Exception as error:  # the RunLog blinked: retry until the lease runs out
                log.warning("renewing the lease on %s failed: %s", self.pipeline, error)
                if time.monotonic() >= self._held_until:
                    self._mark_lost()
                    return
                continue
            if not renewed:
                self._mark_lost()
                return
            self._held_until = time.monotonic() + self.ttl

    def _mark_lost(self) -> None:
        self.lost = True
        log.error(
            "pipeline %s: lease of %s was lost; the run stops at its next progress point",
            self.pipeline,
            self.owner,
        )

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when the lease was lost."""
        if self.lost or (self._thread is not None and time.monotonic() >= self._held_until):
            self.lost = True
            raise LeaseLostError(self.pipeline, self.owner)

    def release(self) -> None:
        """Stop renewing and drop the lease (idempotent; never raises)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.renew_every + 5)
        try:
            self.run_log.release(self.pipeline, self.owner)
        except Exception as error:  # the lease then simply expires after its TTL
            log.warning("releasing the lease on %s failed: %s", self.pipeline, error)

    def __enter__(self) -> Self:
        if not self.acquire():
            raise LeaseHeldError(self.pipeline)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
