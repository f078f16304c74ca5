"""Operations: alerters (stdout, Slack) and metrics sinks (memory, stdout, Prometheus).

Both are opened from the URLs the CLI takes (``--alerter``, ``--metrics``); see
``docs/operations.md``.
"""

from ematix_engine.ops.alerters import (
    ALERTER_SCHEMES,
    Alerter,
    AlerterGroup,
    StdoutAlerter,
    open_alerter,
    open_alerters,
)
from ematix_engine.ops.events import AlertEvent, AlertKind, events_for_run
from ematix_engine.ops.metrics import (
    METRICS_SCHEMES,
    MemoryMetrics,
    MetricsSink,
    NullMetrics,
    StdoutMetrics,
    open_metrics,
)
from ematix_engine.ops.prometheus import PrometheusMetrics
from ematix_engine.ops.slack import SlackAlerter

__all__ = [
    "ALERTER_SCHEMES",
    "METRICS_SCHEMES",
    "AlertEvent",
    "AlertKind",
    "Alerter",
    "AlerterGroup",
    "MemoryMetrics",
    "MetricsSink",
    "NullMetrics",
    "PrometheusMetrics",
    "SlackAlerter",
    "StdoutAlerter",
    "StdoutMetrics",
    "events_for_run",
    "open_alerter",
    "open_alerters",
    "open_metrics",
]
