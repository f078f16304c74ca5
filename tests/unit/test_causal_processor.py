"""StreamProcessor: concurrency, callbacks, errors, link rules, patterns, stop and stats."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import AsyncIterator

import pytest

from ematix_engine.causal import (
    CausalConfigError,
    CausalCycleError,
    CausalSourceError,
    DuplicateEventError,
    Event,
    InMemoryEventSource,
    StreamProcessor,
    must_match,
    never,
    pattern,
    watch,
)


def ids(pairs: list[tuple[Event, Event]]) -> list[tuple[str, str]]:
    return [(a.id, b.id) for a, b in pairs]


async def _producer(source: InMemoryEventSource, events: list[Event]) -> None:
    for event in events:
        await source.put(event)
        await asyncio.sleep(0)  # let the other producer and the processor run
    await source.aclose()


def test_two_sources_are_consumed_concurrently_and_effects_may_overtake_causes() -> None:
    readings = [Event("Sensor.reading", {"n": i}, id=f"r{i}") for i in range(20)]
    # every alert is produced by the other source, the first ones before their reading exists
    alerts = [Event("Alerter.alert", caused_by=[f"r{i}"], id=f"a{i}") for i in range(20)]

    async def main() -> StreamProcessor:
        processor = StreamProcessor()
        sensors, alerter = InMemoryEventSource("sensors"), InMemoryEventSource("alerts")
        processor.add_source("sensors", sensors)
        processor.add_source("alerts", alerter)
        seen: list[str] = []
        pairs: list[tuple[Event, Event]] = []
        processor.on_event(lambda e: seen.append(e.id))
        processor.watch(("Sensor.reading", "Alerter.alert"), lambda a, b: pairs.append((a, b)))
        processor.enforce(must_match("Sensor.reading", "Alerter.alert", name="alerted"))
        await asyncio.gather(
            processor.run(),
            _producer(alerter, alerts),
            _producer(sensors, readings),
        )
        processor.seen = seen  # type: ignore[attr-defined]
        processor.pairs = pairs  # type: ignore[attr-defined]
        return processor

    processor = asyncio.run(main())
    seen = processor.seen  # type: ignore[attr-defined]
    # interleaved: alerts are processed long before the last reading arrives
    assert seen.index("a5") < seen.index("r19")
    assert sorted(ids(processor.pairs)) == sorted((f"r{i}", f"a{i}") for i in range(20))  # type: ignore[attr-defined]
    for i in range(20):
        assert seen.index(f"r{i}") < seen.index(f"a{i}")  # causes are processed first
    assert processor.violations == []
    assert processor.stats["parked"] == 0
    assert processor.stats["per_source"] == {"sensors": 20, "alerts": 20}


def test_generic_async_iterables_and_in_memory_sources_mix() -> None:
    async def generated() -> AsyncIterator[Event]:
        for i in range(5):
            yield Event("Alerter.alert", caused_by=[f"r{i}"], id=f"a{i}")
            await asyncio.sleep(0)

    processor = StreamProcessor()
    sensors = InMemoryEventSource("sensors")
    pairs: list[tuple[Event, Event]] = []
    processor.add_source("sensors", sensors)
    processor.add_source("gen", generated())
    processor.add_source("plain", [Event("Other", id="o1")])
    processor.watch(("Sensor.reading", "Alerter.alert"), lambda a, b: pairs.append((a, b)))
    for i in range(5):
        sensors.push(Event("Sensor.reading", id=f"r{i}"))
    sensors.close()
    asyncio.run(processor.run())
    assert sorted(ids(pairs)) == [(f"r{i}", f"a{i}") for i in range(5)]
    assert processor.stats["per_source"] == {"sensors": 5, "gen": 5, "plain": 1}


def test_callbacks_may_be_async_and_errors_are_counted_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = StreamProcessor()
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    order: list[str] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0)
        order.append(f"async {event.id}")

    def boom(event: Event) -> None:
        raise ValueError(f"bad {event.id}")

    async def async_boom(event: Event) -> None:
        raise RuntimeError("async bad")

    processor.on_event(slow)
    processor.on_event(boom)
    processor.watch("X", async_boom)
    processor.watch("X", lambda e: order.append(f"sync {e.id}"))
    processor.enforce(never("X", name="no_x"))
    processor.on_violation(lambda v: order.append(f"violation {v.events[0].id}"))
    source.extend([Event("X", id="1"), Event("X", id="2")])
    source.close()
    with caplog.at_level(logging.ERROR, logger="ematix.causal"):
        asyncio.run(processor.run())
    assert order == [
        "sync 1",
        "violation 1",
        "async 1",
        "sync 2",
        "violation 2",
        "async 2",
    ]
    assert processor.stats["callback_errors"] == 4
    assert "boom" in caplog.text and "async_boom" in caplog.text


async def _failing(n: int) -> AsyncIterator[Event]:
    for i in range(n):
        yield Event("F", id=f"f{i}")
    raise ConnectionError("broker went away")


def test_a_failing_source_is_reported_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = StreamProcessor()
    good = InMemoryEventSource("good")
    processor.add_source("flaky", _failing(2))
    processor.add_source("good", good)
    good.extend([Event("G", id=f"g{i}") for i in range(10)])
    good.close()
    with caplog.at_level(logging.ERROR, logger="ematix.causal"):
        asyncio.run(processor.run())
    assert processor.stats["per_source"] == {"flaky": 2, "good": 10}
    assert processor.stats["source_errors"] == 1
    (error,) = processor.errors
    assert isinstance(error, CausalSourceError)
    assert error.source == "flaky"
    assert "flaky" in str(error) and "broker went away" in str(error)
    assert "flaky" in caplog.text
    assert pickle.loads(pickle.dumps(error)).source == "flaky"


def test_fail_on_error_makes_a_failing_source_fail_the_run() -> None:
    processor = StreamProcessor(fail_on_error=True)
    processor.add_source("flaky", _failing(1))
    with pytest.raises(CausalSourceError, match="flaky"):
        asyncio.run(processor.run())


def test_a_cycle_is_an_error_naming_both_ids() -> None:
    processor = StreamProcessor()
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    source.extend(
        [
            Event("X", caused_by=["b"], id="a"),  # waits for b
            Event("X", caused_by=["a"], id="b"),  # ... which waits for a
            Event("X", caused_by=["c"], id="c"),  # names itself
        ]
    )
    source.close()
    asyncio.run(processor.run())
    cycle, self_cycle = processor.errors
    assert isinstance(cycle, CausalCycleError)
    assert (cycle.event_id, cycle.cause_id) == ("b", "a")
    assert "'a'" in str(cycle) and "'b'" in str(cycle)
    assert isinstance(self_cycle, CausalCycleError) and "'c'" in str(self_cycle)
    assert processor.stats["rejected_events"] == 2
    assert [e.id for e in processor.computation] == ["a"]  # processed at the end, cause missing
    assert processor.stats["missing_causes"] == 1


def test_duplicate_ids_are_errors_and_fail_fast_can_raise() -> None:
    processor = StreamProcessor()
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    source.extend([Event("X", id="same"), Event("Y", id="same")])
    source.close()
    asyncio.run(processor.run())
    (error,) = processor.errors
    assert isinstance(error, DuplicateEventError)
    assert "'same'" in str(error) and "'X'" in str(error) and "'Y'" in str(error)

    strict = StreamProcessor(fail_on_error=True)
    source = InMemoryEventSource("s")
    strict.add_source("s", source)
    source.extend([Event("X", id="same"), Event("Y", id="same"), Event("Z")])
    source.close()
    with pytest.raises(DuplicateEventError):
        asyncio.run(strict.run())
    assert strict.stats["events"] == 2  # stopped at the offending event


def test_link_rules_add_causes_by_correlation_value() -> None:
    processor = StreamProcessor()
    processor.link(effect="Alerter.alert", cause="Sensor.*", on="reading_id")
    pairs: list[tuple[Event, Event]] = []
    processor.watch(("Sensor.reading", "Alerter.alert"), lambda a, b: pairs.append((a, b)))
    processor.enforce(must_match("Sensor.*", "Alerter.alert", name="alerted"))
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    source.extend(
        [
            Event("Sensor.reading", {"reading_id": 1}, id="r1"),
            Event("Sensor.reading", {"reading_id": 2}, id="r2"),
            Event("Sensor.calibration", {"reading_id": 3}, id="k3"),
            Event("Alerter.alert", {"reading_id": 1}, id="a1"),
            Event("Alerter.alert", {"reading_id": 3}, id="a3"),
            Event("Alerter.alert", {}, id="a_none"),
        ]
    )
    source.close()
    asyncio.run(processor.run())
    assert ids(pairs) == [("r1", "a1")]
    assert [(v.kind, v.events[0].id) for v in processor.violations] == [("end_of_stream", "r2")]


def test_patterns_filter_on_data_and_names_take_wildcards() -> None:
    processor = StreamProcessor()
    hot: list[str] = []
    anything: list[str] = []
    pairs: list[tuple[Event, Event]] = []
    processor.watch(
        pattern("Sensor.reading", temperature=lambda t: t > 100), lambda e: hot.append(e.id)
    )
    processor.watch("Sensor.*", lambda e: anything.append(e.id))
    processor.watch(
        (pattern("Sensor.*", level="critical"), "*.alert"), lambda a, b: pairs.append((a, b))
    )
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    source.extend(
        [
            Event("Sensor.reading", {"temperature": 120, "level": "critical"}, id="r1"),
            Event("Sensor.reading", {"temperature": 20}, id="r2"),
            Event("Sensor.reading", id="r3"),  # no temperature: the filter does not match
            Event("Pager.alert", caused_by=["r1"], id="p1"),
            Event("Pager.alert", caused_by=["r2"], id="p2"),
            Event("Other", id="o"),
        ]
    )
    source.close()
    asyncio.run(processor.run())
    assert hot == ["r1"]
    assert anything == ["r1", "r2", "r3"]
    assert ids(pairs) == [("r1", "p1")]


def test_stop_ends_the_run_and_a_later_run_continues() -> None:
    processor = StreamProcessor()
    processor.enforce(must_match("T", "R", name="t_needs_r"))
    source = InMemoryEventSource("s")
    processor.add_source("s", source)

    async def maybe_stop(event: Event) -> None:
        if event.id == "t2":
            await processor.stop()

    processor.on_event(maybe_stop)
    source.extend([Event("T", id="t1"), Event("T", id="t2"), Event("R", caused_by=["t1"])])

    async def main() -> None:
        await processor.run()
        assert processor.stats["events"] == 2
        assert processor.violations == []  # open triggers are not judged on stop()
        assert [e.id for e in processor.open_triggers()["t_needs_r"]] == ["t1", "t2"]
        source.close()
        await processor.run()

    asyncio.run(main())
    assert [(v.kind, v.events[0].id) for v in processor.violations] == [("end_of_stream", "t2")]


def test_stop_while_every_source_is_idle_ends_the_run() -> None:
    processor = StreamProcessor()
    source = InMemoryEventSource("s")  # open, and nothing in it
    processor.add_source("s", source)

    async def main() -> None:
        run = asyncio.create_task(processor.run())
        source.push(Event("A", id="a1"))
        while processor.stats["events"] < 1:
            await asyncio.sleep(0.01)
        await processor.stop()
        await asyncio.wait_for(run, timeout=30)  # a hang guard, not a speed check

    asyncio.run(main())
    assert processor.stats["events"] == 1


def test_configuration_errors() -> None:
    processor = StreamProcessor()
    with pytest.raises(CausalConfigError, match="pair"):
        processor.watch(("A", "B", "C"), print)
    with pytest.raises(CausalConfigError, match="event name"):
        processor.watch(42, print)
    with pytest.raises(CausalConfigError, match="async iterable"):
        processor.add_source("x", 42)
    processor.enforce(never("A", name="n"))
    with pytest.raises(CausalConfigError, match="already enforced"):
        processor.enforce(never("B", name="n"))
    with pytest.raises(CausalConfigError, match="window_size"):
        asyncio.run(processor.run(window_size=0))
    asyncio.run(processor.run())
    with pytest.raises(CausalConfigError, match="before the first run"):
        processor.watch("A", print)


def test_watch_objects_and_decorator_form() -> None:
    processor = StreamProcessor()
    seen: list[str] = []
    processor.watch(watch("A", lambda e: seen.append("obj " + e.id)))

    @processor.watch("A")
    def on_a(event: Event) -> None:
        seen.append("decorated " + event.id)

    processor.add_source("s", [Event("A", id="1")])
    asyncio.run(processor.run())
    assert seen == ["obj 1", "decorated 1"]


def test_in_memory_source_iterates_until_closed_and_drained() -> None:
    async def main() -> list[str]:
        source = InMemoryEventSource("s")
        got: list[str] = []

        async def read() -> None:
            async for event in source:
                got.append(event.id)

        reader = asyncio.create_task(read())
        source.push(Event("A", id="1"))
        await asyncio.sleep(0)
        await source.put(Event("A", id="2"))
        await source.close()  # PyRapide awaits close(); ours is sync and awaitable
        await reader
        return got

    assert asyncio.run(main()) == ["1", "2"]
    source = InMemoryEventSource("s")
    source.close()
    with pytest.raises(RuntimeError, match="closed"):
        source.push(Event("A"))
    with pytest.raises(TypeError):
        InMemoryEventSource("s").push("not an event")  # type: ignore[arg-type]


def test_events_are_immutable_and_generate_unique_ids() -> None:
    a, b = Event("A"), Event("A", caused_by=[Event("B", id="b")])
    assert a.id != b.id and b.caused_by == ("b",)
    with pytest.raises(AttributeError):
        a.name = "B"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(b)) == b
    assert a.payload == {}
