"""Prometheus metrics sink (``prometheus://[HOST]:PORT``).

Serves ``/metrics`` from its own :class:`prometheus_client.CollectorRegistry`, never the
process-global one, so several sinks (or tests) can live in one process and the engine does not
export whatever else happens to be registered globally.

=========================================================  ==========  =======================
Metric                                                     Type        Meaning
=========================================================  ==========  =======================
``ematix_runs_total{pipeline,status}``                     counter     finished runs
``ematix_rows_total{pipeline,kind}``                       counter     rows by kind (inserted,
                                                                       updated, closed, …)
``ematix_run_duration_seconds{pipeline}``                  histogram   run wall-clock time
``ematix_attempts{pipeline}``                              gauge       attempt of the latest
                                                                       run (> 1 while retrying)
``ematix_last_success_timestamp_seconds{pipeline}``        gauge       Unix time of the latest
                                                                       success (freshness)
=========================================================  ==========  =======================
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ematix_engine.ops.metrics import validate_observation
from ematix_engine.runlog.base import RunStatus

__all__ = ["DURATION_BUCKETS", "PrometheusMetrics"]

logger = logging.getLogger("ematix.ops.prometheus")

DURATION_BUCKETS: tuple[float, ...] = (
    0.1,
    0.5,
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    float("inf"),
)
"""Histogram buckets (seconds) for ``ematix_run_duration_seconds``: sub-second to an hour."""


class PrometheusMetrics:
    """Expose run metrics on ``http://ADDR:PORT/metrics``.

    Args:
        port: TCP port; ``0`` lets the OS pick one (read it back from :attr:`port`).
        addr: Address to bind; ``"0.0.0.0"`` is every IPv4 interface.
        serve: Start the HTTP endpoint; ``False`` only fills :attr:`registry` (e.g. to push
            it to a Pushgateway yourself).

    Raises:
        OSError: The port is already in use.

    Example:
        >>> sink = PrometheusMetrics(0, addr="127.0.0.1")
        >>> sink.record_run("orders", "success", 2.0, {"inserted": 5}, attempt=1)
        >>> sink.registry.get_sample_value(
        ...     "ematix_runs_total", {"pipeline": "orders", "status": "success"})
        1.0
        >>> sink.close()
    """

    def __init__(self, port: int, addr: str = "0.0.0.0", *, serve: bool = True) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"Prometheus port must be an int in 0..65535, got {port!r}")
        self.registry = CollectorRegistry(auto_describe=True)
        self._runs = Counter(
            "ematix_runs",
            "Finished pipeline runs by status.",
            ["pipeline", "status"],
            registry=self.registry,
        )
        self._rows = Counter(
            "ematix_rows",
            "Rows written by pipeline runs, by kind.",
            ["pipeline", "kind"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "ematix_run_duration_seconds",
            "Wall-clock duration of pipeline runs.",
            ["pipeline"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._attempts = Gauge(
            "ematix_attempts",
            "Attempt number of the pipeline's latest run (above 1 while retrying).",
            ["pipeline"],
            registry=self.registry,
        )
        self._last_success = Gauge(
            "ematix_last_success_timestamp_seconds",
            "Unix time at which the pipeline last succeeded.",
            ["pipeline"],
            registry=self.registry,
        )
        self.addr = addr
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self.port = port
        if serve:
            self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
            self.port = self._server.server_port
            logger.info("serving Prometheus metrics on http://%s:%d/metrics", addr, self.port)

    def __repr__(self) -> str:
        return f"PrometheusMetrics(addr={self.addr!r}, port={self.port})"

    @property
    def url(self) -> str:
        """The scrape URL (with ``127.0.0.1`` for a wildcard bind)."""
        host = "127.0.0.1" if self.addr in ("", "0.0.0.0") else self.addr
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def record_run(
        self,
        pipeline: str,
        status: RunStatus | str,
        duration_s: float,
        rows: Mapping[str, int],
        attempt: int,
    ) -> None:
        """Count one run (see :class:`~ematix_engine.ops.metrics.MetricsSink`)."""
        status_text = validate_observation(pipeline, status, duration_s, rows, attempt)
        self._runs.labels(pipeline=pipeline, status=status_text).inc()
        for kind, count in rows.items():
            # Touch zero counts too, so every kind shows up as a series from the first run.
            self._rows.labels(pipeline=pipeline, kind=kind).inc(count)
        self._duration.labels(pipeline=pipeline).observe(duration_s)
        self._attempts.labels(pipeline=pipeline).set(attempt)
        if status_text == RunStatus.SUCCESS.value:
            self._last_success.labels(pipeline=pipeline).set(time.time())

    def flush(self) -> None:
        """Nothing to do: Prometheus scrapes the endpoint."""

    def close(self) -> None:
        """Stop the HTTP endpoint (idempotent)."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
