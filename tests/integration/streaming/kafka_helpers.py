"""Producing test messages and building Kafka sources for the streaming tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer

from ematix_engine import KafkaConnection
from tests.fixtures.kafka import TANSU_CONSUMER_SETTINGS


def produce(bootstrap: str, topic: str, values: Iterable[Any], *, keys: bool = True) -> int:
    """Produce JSON-encoded ``values`` (bytes are sent as they are); return how many."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    count = 0
    for i, value in enumerate(values):
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        key = str(value.get("id", i)).encode() if keys and isinstance(value, dict) else None
        while True:
            try:
                producer.produce(topic, payload, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    assert producer.flush(30) == 0
    return count


def kafka(bootstrap: str, group: str, **options: Any) -> KafkaConnection:
    """A Kafka connection with the settings the Tansu test broker needs."""
    return KafkaConnection(
        name="src",
        bootstrap_servers=bootstrap,
        group_id=group,
        extra=dict(TANSU_CONSUMER_SETTINGS),
        **options,
    )


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    """Read ``expected`` messages from the start of ``topic`` (the DLQ, in tests)."""
    import time
    import uuid

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            **TANSU_CONSUMER_SETTINGS,
        }
    )
    consumer.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is None:
                    got.append(message)
    finally:
        consumer.close()
    return got
