"""Prometheus metrics of a streaming pipeline (the guide's ``ematix_streaming_*`` names).

=================================================  ========  ===========================
Metric                                             Type      Meaning
=================================================  ========  ===========================
``ematix_streaming_rows_consumed_total{pipeline}``  counter   rows read (pre-transform)
``ematix_streaming_rows_written_total{pipeline}``   counter   rows written (post-transform)
``ematix_streaming_batches_total{pipeline}``        counter   non-empty batches
``ematix_streaming_iterations_total{pipeline}``     counter   loop iterations (idle too)
``ematix_streaming_idle_iterations_total{pipeline}`` counter  iterations that found nothing
``ematix_streaming_errors_total{pipeline}``         counter   surfaced errors
``ematix_streaming_dlq_writes_total{pipeline}``     counter   messages sent to the DLQ
``ematix_streaming_dropped_batches_total{pipeline}`` counter  batches dropped by policy
``ematix_streaming_consumer_lag{pipeline,source,partition}``  gauge  unread messages
``ematix_streaming_causal_events_total{pipeline}``  counter   rows fed to the causal processor
``ematix_streaming_causal_violations_total{pipeline,constraint}``  counter  violations
``ematix_streaming_causal_rejected_total{pipeline}``  counter  events the processor rejected
=================================================  ========  ===========================

Each pipeline gets its own :class:`prometheus_client.CollectorRegistry`, served on
``metrics_port`` when one is given. Kafka lag is computed from the consumer's position and the
partition's high watermark; the Tansu test broker reports wrong high watermarks, so lag there is
indicative only (the runner never decides "caught up" from it: it uses end-of-partition events).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

__all__ = ["StreamingMetrics"]


class StreamingMetrics:
    """Counters and gauges of one pipeline, optionally served on ``/metrics``.

    Args:
        pipeline: the ``pipeline`` label.
        port: serve ``/metrics`` on this port (0: any free port; None: do not serve).
        addr: the address to bind.
    """

    def __init__(self, pipeline: str, port: int | None = None, addr: str = "0.0.0.0") -> None:
        self.pipeline = pipeline
        self.registry = CollectorRegistry()
        r, p = self.registry, ["pipeline"]

        def counter(name: str, text: str) -> Counter:
            return Counter(f"ematix_streaming_{name}", text, p, registry=r).labels(pipeline)

        self.rows_consumed = counter("rows_consumed", "Rows read from the sources.")
        self.rows_written = counter("rows_written", "Rows written to the targets.")
        self.batches = counter("batches", "Non-empty batches processed.")
        self.iterations = counter("iterations", "Run-loop iterations, idle ones included.")
        self.idle_iterations = counter("idle_iterations", "Iterations that found no rows.")
        self.errors = counter("errors", "Errors surfaced by the pipeline.")
        self.dlq_writes = counter("dlq_writes", "Messages produced to the dead-letter topic.")
        self.dropped_batches = counter("dropped_batches", "Batches dropped by transform policy.")
        self.causal_events = counter("causal_events", "Rows fed to the causal processor.")
        self.causal_rejected = counter(
            "causal_rejected", "Events the causal processor rejected (duplicate id, cycle)."
        )
        self._violations = Counter(
            "ematix_streaming_causal_violations",
            "Causal constraint violations, per constraint.",
            ["pipeline", "constraint"],
            registry=r,
        )
        self._lag = Gauge(
            "ematix_streaming_consumer_lag",
            "Messages not yet read, per source partition.",
            ["pipeline", "source", "partition"],
            registry=r,
        )
        self.port: int | None = None
        self._server = None
        if port is not None:
            self._server, _ = start_http_server(port, addr=addr, registry=r)
            self.port = self._server.server_port

    def set_lag(self, source: str, lag: Mapping[str, int]) -> None:
        """Record a source's lag per partition key."""
        for partition, value in lag.items():
            self._lag.labels(self.pipeline, source, partition).set(value)

    def violation(self, constraint: str, count: int = 1) -> None:
        """Count violations of ``constraint``."""
        self._violations.labels(self.pipeline, constraint).inc(count)

    def value(self, name: str, **labels: str) -> float:
        """The current value of ``ematix_streaming_<name>_total`` (tests, logs).

        Args:
            name: e.g. ``rows_written`` or ``causal_violations``.
            **labels: labels besides ``pipeline`` (``constraint=...``).
        """
        sample = self.registry.get_sample_value(
            f"ematix_streaming_{name}_total", {"pipeline": self.pipeline, **labels}
        )
        return sample or 0.0

    def close(self) -> None:
        """Stop serving ``/metrics``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
