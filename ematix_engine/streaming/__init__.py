"""Streaming pipelines: Kafka topics, file folders or in-memory rows into tables and files.

* :mod:`.config`: the frozen :class:`StreamingPipelineSpec` with its :class:`Source` and
  :class:`Target` records, validated at construction;
* :mod:`.sources`: :class:`MemorySource`, the Kafka source, the file source;
* :mod:`.targets`: tables through the write core (database and Delta), file folders;
* :mod:`.runner`: the run loop (poll, transform, write, DLQ, commit) and :class:`StreamResult`;
* :mod:`.api`: ``run_streaming_pipeline`` and ``@ematix.streaming_pipeline``;
* :mod:`.toml`: ``pipeline.toml`` into the same spec; :mod:`.supervisor`: restarts, signals;
* :mod:`.metrics`: the ``ematix_streaming_*`` Prometheus metrics;
* :mod:`.causal`: ``causal=`` / ``constraints=`` (and their TOML forms) checked;
  :mod:`.violations`: the run's causal processor and where its violations go.

The user guide page is ``docs/streaming.md``.
"""

from ematix_engine.streaming.config import Source, StreamingPipelineSpec, Target
from ematix_engine.streaming.result import StreamProgress, StreamResult
from ematix_engine.streaming.runner import StreamRunner, run_stream
from ematix_engine.streaming.sources.memory import MemorySource

__all__ = [
    "MemorySource",
    "Source",
    "StreamProgress",
    "StreamResult",
    "StreamRunner",
    "StreamingPipelineSpec",
    "Target",
    "run_stream",
]
