"""Keep a streaming pipeline running: restart on error with backoff, stop cleanly on signals.

``restart_on_error``: after a failure the pipeline is started again after
``min(max_backoff, min_backoff * 2**(failures - 1))`` milliseconds, scaled by a random factor in
[0.5, 1] (jitter, so a fleet does not restart in step). ``max_restarts`` bounds the failures in
a row; a batch committed after a restart resets the count. A configuration error is never
retried: it fails at once.

SIGTERM / SIGINT finish the batch in flight, commit, close and return (a signal during a
backoff pause returns at once). The totals of every attempt are added up in the result.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ematix_engine.errors import ConfigError, EmatixError
from ematix_engine.streaming.api import _stop_on_signals
from ematix_engine.streaming.config import StreamingPipelineSpec
from ematix_engine.streaming.metrics import StreamingMetrics
from ematix_engine.streaming.result import StreamProgress, StreamResult
from ematix_engine.streaming.runner import StreamRunner

__all__ = ["RestartPolicy", "run_supervised"]

log = logging.getLogger("ematix.streaming.supervisor")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """How the supervisor restarts a failed pipeline.

    Attributes:
        min_backoff_ms: pause after the first failure.
        max_backoff_ms: longest pause.
        max_restarts: failures in a row before giving up (None: never give up).
    """

    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 30_000
    max_restarts: int | None = None

    def __post_init__(self) -> None:
        if self.min_backoff_ms < 0 or self.max_backoff_ms < self.min_backoff_ms:
            raise ConfigError(
                f"restart backoff: need 0 <= min_backoff_ms ({self.min_backoff_ms}) <= "
                f"max_backoff_ms ({self.max_backoff_ms})"
            )
        if self.max_restarts is not None and self.max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {self.max_restarts}")

    def delay_ms(self, failures: int, fraction: float) -> float:
        """Pause before restart number ``failures`` (1-based), ``fraction`` in [0, 1)."""
        base = min(self.max_backoff_ms, self.min_backoff_ms * 2 ** max(failures - 1, 0))
        return base * (0.5 + fraction / 2)


def run_supervised(
    spec: StreamingPipelineSpec,
    *,
    restart: RestartPolicy | None = None,
    metrics_port: int | None = None,
    exit_when_idle: bool = False,
    on_progress: Callable[[StreamProgress], None] | None = None,
    handle_signals: bool = True,
) -> StreamResult:
    """Run ``spec``; with ``restart``, start it again after errors (see the module docstring).

    Returns:
        The totals of all attempts.

    Raises:
        EmatixError: the last error, when restarting is off or ``max_restarts`` is used up.
    """
    metrics = StreamingMetrics(spec.name, port=metrics_port)
    stopping = threading.Event()
    current: list[StreamRunner] = []
    total = StreamResult(pipeline=spec.name)
    failures = 0

    def stop(why: str = "signal") -> None:
        stopping.set()
        total.stopped = why
        if current:
            current[-1].stop(why)

    def progressed(progress: StreamProgress) -> None:
        nonlocal failures
        failures = 0  # a committed batch: the pipeline works again
        if on_progress is not None:
            on_progress(progress)

    try:
        with _stop_on_signals(stop) if handle_signals else contextlib.nullcontext():
            while not stopping.is_set():
                runner = StreamRunner(spec, metrics=metrics, on_progress=progressed)
                current.append(runner)
                try:
                    result = runner.run(exit_when_idle=exit_when_idle)
                except ConfigError:
                    raise
                except Exception as error:
                    _add(total, runner.result)
                    failures += 1
                    if restart is None or (
                        restart.max_restarts is not None and failures > restart.max_restarts
                    ):
                        raise
                    delay = restart.delay_ms(failures, random.random())
                    log.warning(
                        "%s failed (%s); restart %d in %.0f ms",
                        spec.name,
                        error if isinstance(error, EmatixError) else repr(error),
                        failures,
                        delay,
                    )
                    stopping.wait(delay / 1000)
                    continue
                _add(total, result)
                total.stopped = result.stopped
                return total
            total.stopped = total.stopped or "signal"
            return total
    finally:
        metrics.close()


def _add(total: StreamResult, result: StreamResult) -> None:
    total.rows_in += result.rows_in
    total.rows_out += result.rows_out
    total.batches += result.batches
    total.iterations += result.iterations
    total.dlq_rows += result.dlq_rows
    total.dropped_batches += result.dropped_batches
    total.violation_count += result.violation_count
    total.violations.extend(result.violations)
    total.duration_s += result.duration_s
    for source, offsets in result.offsets.items():
        total.offsets.setdefault(source, {}).update(offsets)
