"""Metrics sinks for declarative pipeline runs (``--metrics URL``).

====================================  ==========================================================
URL                                   Sink
====================================  ==========================================================
``null://``                           :class:`NullMetrics`: drop everything (the default)
``stdout://``                         :class:`StdoutMetrics`: a summary on stderr at ``flush``
``memory://``                         :class:`MemoryMetrics`: counters readable from Python
``prometheus://:9100``                :class:`~ematix_engine.ops.prometheus.PrometheusMetrics`:
                                      ``/metrics`` on all interfaces, port 9100
``prometheus://127.0.0.1:9100``       the same, bound to one address (``:0`` picks a free port)
====================================  ==========================================================

Every sink counts runs by ``(pipeline, status)`` and rows by ``(pipeline, kind)``, and keeps each
pipeline's last duration and attempt number (the attempt of its latest run: it stays above 1
while the pipeline is retrying). The orchestrator calls ``record_run`` once per finished run,
``flush`` at the end of a tick and ``close`` on exit.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Protocol, TextIO, runtime_checkable
from urllib.parse import urlsplit

from ematix_engine.errors import ConfigError
from ematix_engine.runlog.base import RunStatus
from ematix_engine.runlog.urls import split_scheme, unknown_scheme_error

__all__ = [
    "METRICS_SCHEMES",
    "MemoryMetrics",
    "MetricsSink",
    "NullMetrics",
    "StdoutMetrics",
    "open_metrics",
]

METRICS_SCHEMES: tuple[str, ...] = ("memory", "null", "prometheus", "stdout")
"""URL schemes :func:`open_metrics` understands."""


@runtime_checkable
class MetricsSink(Protocol):
    """Receives one observation per finished pipeline run."""

    def record_run(
        self,
        pipeline: str,
        status: RunStatus | str,
        duration_s: float,
        rows: Mapping[str, int],
        attempt: int,
    ) -> None:
        """Count one run.

        Args:
            pipeline: Pipeline name.
            status: Final status (``success``, ``failed``, ``skipped``, ``gave_up``, …).
            duration_s: Wall-clock seconds the run took.
            rows: Row counts by kind, e.g. ``RunRecord.rows``
                (``{"inserted": 10, "updated": 2, …}``).
            attempt: The run's attempt number (0 for a skipped run).
        """
        ...

    def flush(self) -> None:
        """Push or print what was recorded (a no-op for sinks that are scraped)."""
        ...

    def close(self) -> None:
        """Flush and release ports, files or threads; calling it twice is harmless."""
        ...


def validate_observation(
    pipeline: str,
    status: RunStatus | str,
    duration_s: float,
    rows: Mapping[str, int],
    attempt: int,
) -> str:
    """Check the arguments of ``record_run`` and return the status as plain text.

    Raises:
        ValueError: A value is out of range; the message names the pipeline.
    """
    if not isinstance(pipeline, str) or not pipeline:
        raise ValueError(f"record_run needs a pipeline name, got {pipeline!r}")
    status_text = status.value if isinstance(status, RunStatus) else str(status)
    if not status_text:
        raise ValueError(f"record_run for {pipeline!r} needs a status")
    if (
        isinstance(duration_s, bool)
        or not isinstance(duration_s, int | float)
        or not math.isfinite(duration_s)
        or duration_s < 0
    ):
        raise ValueError(
            f"record_run for {pipeline!r}: duration_s must be a finite number >= 0, "
            f"got {duration_s!r}"
        )
    for kind, count in rows.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"record_run for {pipeline!r}: rows[{kind!r}] must be an int >= 0, got {count!r}"
            )
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"record_run for {pipeline!r}: attempt must be an int >= 0")
    return status_text


class NullMetrics:
    """Drop every observation (the ``null://`` sink, the default)."""

    def __repr__(self) -> str:
        return "NullMetrics()"

    def record_run(
        self,
        pipeline: str,
        status: RunStatus | str,
        duration_s: float,
        rows: Mapping[str, int],
        attempt: int,
    ) -> None:
        """Validate and discard the observation (see :class:`MetricsSink`)."""
        validate_observation(pipeline, status, duration_s, rows, attempt)

    def flush(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class MemoryMetrics:
    """Keep counters in memory (the ``memory://`` sink); thread-safe.

    Attributes:
        runs_total: Runs by ``(pipeline, status)``.
        rows_total: Rows by ``(pipeline, kind)`` (kinds with a zero count are not added).
        last_duration: Seconds of each pipeline's latest run.
        attempts: Attempt number of each pipeline's latest run.

    Example:
        >>> m = MemoryMetrics()
        >>> m.record_run("orders", "success", 1.5, {"inserted": 10, "updated": 0}, attempt=1)
        >>> m.runs_total[("orders", "success")], m.rows_total[("orders", "inserted")]
        (1, 10)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs_total: Counter[tuple[str, str]] = Counter()
        self.rows_total: Counter[tuple[str, str]] = Counter()
        self.last_duration: dict[str, float] = {}
        self.attempts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(runs={sum(self.runs_total.values())})"

    def record_run(
        self,
        pipeline: str,
        status: RunStatus | str,
        duration_s: float,
        rows: Mapping[str, int],
        attempt: int,
    ) -> None:
        """Count one run (see :class:`MetricsSink`)."""
        status_text = validate_observation(pipeline, status, duration_s, rows, attempt)
        with self._lock:
            self.runs_total[(pipeline, status_text)] += 1
            for kind, count in rows.items():
                if count:
                    self.rows_total[(pipeline, kind)] += count
            self.last_duration[pipeline] = float(duration_s)
            self.attempts[pipeline] = attempt

    def pipelines(self) -> list[str]:
        """Return every pipeline seen so far, sorted."""
        with self._lock:
            return sorted({p for p, _ in self.runs_total})

    def flush(self) -> None:
        """Nothing to push; counters stay readable."""

    def close(self) -> None:
        """Nothing to release; counters stay readable."""


class StdoutMetrics(MemoryMetrics):
    """Count like :class:`MemoryMetrics` and print a per-pipeline summary on ``flush``.

    One line per pipeline goes to stderr (the ``stdout://`` sink mirrors the ``stdout://``
    alerter), only when something was recorded since the previous flush.

    Args:
        stream: Where to print; ``None`` means the current ``sys.stderr``.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._dirty = False

    def record_run(
        self,
        pipeline: str,
        status: RunStatus | str,
        duration_s: float,
        rows: Mapping[str, int],
        attempt: int,
    ) -> None:
        """Count one run (see :class:`MetricsSink`)."""
        super().record_run(pipeline, status, duration_s, rows, attempt)
        self._dirty = True

    def render(self) -> str:
        """Return the summary text (totals since the sink was opened)."""
        lines = []
        with self._lock:
            pipelines = sorted({p for p, _ in self.runs_total})
            for pipeline in pipelines:
                runs = " ".join(
                    f"{status}={n}"
                    for (p, status), n in sorted(self.runs_total.items())
                    if p == pipeline
                )
                rows = (
                    " ".join(
                        f"{kind}={n}"
                        for (p, kind), n in sorted(self.rows_total.items())
                        if p == pipeline
                    )
                    or "none"
                )
                lines.append(
                    f"[ematix metrics] {pipeline}: runs {runs} | rows {rows} | "
                    f"last {self.last_duration[pipeline]:.3f}s | attempt {self.attempts[pipeline]}"
                )
        return "\n".join(lines)

    def flush(self) -> None:
        """Print the summary if anything was recorded since the last flush."""
        if not self._dirty:
            return
        self._dirty = False
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(self.render() + "\n")
        stream.flush()

    def close(self) -> None:
        """Flush what is pending."""
        self.flush()


def open_metrics(url: str = "null://") -> MetricsSink:
    """Open the metrics sink a URL names (see the module docstring for the table).

    Args:
        url: ``null://``, ``stdout://``, ``memory://`` or ``prometheus://[HOST]:PORT``.

    Returns:
        The sink; for Prometheus the ``/metrics`` endpoint is already serving.

    Raises:
        ConfigError: Unknown scheme, or a Prometheus URL without a valid port.
        OSError: The Prometheus port is taken.

    Example:
        >>> sink = open_metrics("memory://")
        >>> sink.record_run("orders", "failed", 0.2, {}, attempt=2)
        >>> sink.attempts["orders"]
        2
    """
    scheme, _rest = split_scheme(url)
    if scheme == "null":
        return NullMetrics()
    if scheme == "stdout":
        return StdoutMetrics()
    if scheme == "memory":
        return MemoryMetrics()
    if scheme == "prometheus":
        from ematix_engine.ops.prometheus import PrometheusMetrics

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"metrics URL {url!r}: {exc}; write prometheus://:9100") from None
        if port is None:
            raise ConfigError(
                f"metrics URL {url!r} needs a port, e.g. prometheus://:9100 (all interfaces) "
                "or prometheus://127.0.0.1:9100"
            )
        return PrometheusMetrics(port, addr=parts.hostname or "0.0.0.0")
    raise unknown_scheme_error("metrics", url, METRICS_SCHEMES)
