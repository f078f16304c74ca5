"""The dead-letter queue: messages a pipeline could not use, produced one by one to Kafka.

Each dead letter keeps the original key and payload bytes and the original headers, plus
headers naming why and where it came from:

``ematix.error``, ``ematix.pipeline``, ``ematix.source``, ``ematix.topic``,
``ematix.partition``, ``ematix.offset``.

Causal constraint violations go to the same topic, one JSON record each, through
:meth:`DeadLetterQueue.produce_record` (see :mod:`ematix_engine.streaming.violations`).

:meth:`DeadLetterQueue.flush` waits until the broker acknowledged every message; the runner
commits source offsets only after it returns, so a dead letter is never lost.
"""

from __future__ import annotations

from typing import Any

from ematix_engine.errors import SourceError
from ematix_engine.streaming.sources.base import BadMessage

__all__ = ["DeadLetterQueue"]

_FLUSH_TIMEOUT_S = 30.0
#: Consumer settings a connection's ``extra`` may carry, which a producer warns about.
_CONSUMER_ONLY = (
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "fetch.",
    "auto.offset.reset",
    "enable.auto",
    "enable.partition.eof",
    "group.",
    "max.poll.interval.ms",
    "isolation.level",
    "partition.assignment.strategy",
)
_MAX_ERROR_BYTES = 2000


class DeadLetterQueue:
    """A Kafka producer for one dead-letter topic.

    Args:
        connection: the Kafka connection whose cluster receives the dead letters.
        topic: the dead-letter topic.
        pipeline: the pipeline's name (a header, and messages).
    """

    def __init__(self, connection: Any, topic: str, pipeline: str) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.pipeline = pipeline
        config = {
            k: v
            for k, v in connection.client_config("producer").items()
            if not k.startswith(_CONSUMER_ONLY)
        }
        config.setdefault("enable.idempotence", True)
        self._producer = Producer(config)
        self._failures: list[str] = []

    def produce(self, message: BadMessage) -> None:
        """Queue one dead letter (call :meth:`flush` before committing offsets)."""
        headers = list(message.headers or [])
        headers += [
            ("ematix.error", message.error.encode()[:_MAX_ERROR_BYTES]),
            ("ematix.pipeline", self.pipeline.encode()),
            ("ematix.source", message.source.encode()),
        ]
        if message.topic is not None:
            headers += [
                ("ematix.topic", message.topic.encode()),
                ("ematix.partition", str(message.partition).encode()),
                ("ematix.offset", str(message.offset).encode()),
            ]
        self.produce_record(value=message.value, key=message.key, headers=headers)

    def produce_record(
        self, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Queue one record as given (call :meth:`flush` before committing offsets)."""
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.1)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def flush(self) -> None:
        """Wait for every queued dead letter to be acknowledged.

        Raises:
            SourceError: a dead letter was not acknowledged (offsets must not move).
        """
        remaining = self._producer.flush(_FLUSH_TIMEOUT_S)
        if remaining or self._failures:
            failures, self._failures = self._failures, []
            detail = failures[0] if failures else f"{remaining} not acknowledged in time"
            raise SourceError(
                self.pipeline, f"dead-letter topic {self.topic!r}: produce failed: {detail}"
            )

    def close(self) -> None:
        """Flush what is left."""
        self._producer.flush(_FLUSH_TIMEOUT_S)
