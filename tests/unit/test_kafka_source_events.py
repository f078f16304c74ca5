"""Where a partition's end falls among a consume() result's messages decides "caught up".

The Kafka source handles a whole ``consume()`` result at a time and places end-of-partition
events among the messages afterwards (``_take`` / ``_settle``). These checks use real
``confluent_kafka.Message`` objects, built with the library's own constructor, so no broker is
needed to produce an exact interleaving.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Message

from ematix_engine import KafkaConnection
from ematix_engine.errors import SourceError
from ematix_engine.streaming.config import Source, StreamingPipelineSpec, Target
from ematix_engine.streaming.sources.kafka import KafkaSource


def _source() -> KafkaSource:
    kafka = KafkaConnection(name="k", bootstrap_servers="127.0.0.1:9", group_id="g")
    spec = StreamingPipelineSpec(
        name="events",
        sources=(Source(connection=kafka, query="t"),),
        targets=(Target(connection=kafka, table="unused"),),
    )
    source = KafkaSource(spec.sources[0], kafka, spec)
    source._assigned = {("t", 0), ("t", 1)}
    return source


def _data(partition: int, offset: int) -> Message:
    return Message(topic="t", partition=partition, offset=offset, value=b'{"id": 1}')


def _end(partition: int) -> Message:
    return Message(topic="t", partition=partition, error=KafkaError(KafkaError._PARTITION_EOF))


def test_every_partition_at_its_end_is_caught_up() -> None:
    source = _source()
    source._take([_data(0, 0), _data(1, 0), _end(0), _end(1)])
    assert source._caught_up()
    assert [m.offset() for m in source._pending] == [0, 0]


def test_a_message_after_its_partitions_end_means_not_caught_up() -> None:
    source = _source()
    source._take([_end(0), _data(0, 5), _end(1)])
    assert not source._caught_up()
    source._take([_end(0)])
    assert source._caught_up()


def test_new_messages_of_an_ended_partition_reopen_it() -> None:
    source = _source()
    source._take([_end(0), _end(1)])
    assert source._caught_up()
    source._take([_data(1, 7)])
    assert not source._caught_up()
    assert [m.offset() for m in source._pending] == [7]


def test_an_end_known_only_to_the_log_is_settled_exactly() -> None:
    source = _source()
    source._take([_end(0)])
    source._take([_data(0, 1), _data(1, 1)])  # logged, not yet looked at
    source._take([_end(1)])
    assert not source._caught_up()  # partition 0 has a message after its end
    assert source._eof == {("t", 1)}


def test_a_fatal_error_fails_the_poll() -> None:
    source = _source()
    fatal = Message(topic="t", partition=0, error=KafkaError(KafkaError._FATAL, fatal=True))
    with pytest.raises(SourceError, match="Kafka consumer"):
        source._take([_data(0, 0), fatal])


def test_a_run_that_ends_once_drained_asks_the_broker_not_to_hold_empty_fetches() -> None:
    # A partition's end is reported by a fetch that found nothing, which the broker holds up to
    # fetch.wait.max.ms (500 ms by default): an exit_when_idle run would idle that long.
    source = _source()
    assert "fetch.wait.max.ms" not in source.consumer_config()
    source.bounded = True
    assert source.consumer_config()["fetch.wait.max.ms"] == 50
    kafka = KafkaConnection(
        name="k", bootstrap_servers="127.0.0.1:9", group_id="g", config={"fetch.wait.max.ms": 200}
    )
    spec = StreamingPipelineSpec(
        name="events",
        sources=(Source(connection=kafka, query="t"),),
        targets=(Target(connection=kafka, table="unused"),),
    )
    own = KafkaSource(spec.sources[0], kafka, spec)
    own.bounded = True
    assert own.consumer_config()["fetch.wait.max.ms"] == 200  # the user's setting wins
