"""The PyRapide streaming guide's examples, unchanged but for the import, with exact outcomes.

The snippets below are copied from the guide (``from pyrapide import X`` became
``from ematix_engine.causal import X``). The guide leaves the events to the reader; the test plays
the producers: it pushes a scripted stream into the sources the snippets create, then checks
every callback and every violation.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io

import pytest

import ematix_engine.causal as causal
from ematix_engine.causal import Event, InMemoryEventSource, StreamProcessor

STREAM_SETUP = """\
from ematix_engine.causal import StreamProcessor, InMemoryEventSource
from ematix_engine.causal import must_match, never, watch

processor = StreamProcessor()
"""

SOURCES = """\
from ematix_engine.causal import InMemoryEventSource

source_a = InMemoryEventSource("sensor-cluster-a")
source_b = InMemoryEventSource("sensor-cluster-b")

processor.add_source("sensors_a", source_a)
processor.add_source("sensors_b", source_b)
"""

WATCH = """\
# React to any event matching a pattern
processor.watch(
    pattern="Sensor.reading",
    callback=lambda event: print(f"Got reading: {event}")
)

# Watch for causal sequences
processor.watch(
    pattern=("Sensor.reading", "Alerter.alert"),
    callback=lambda cause, effect: log_alert_chain(cause, effect)
)
"""

CONSTRAINTS = """\
from ematix_engine.causal import must_match, never

# Every reading must eventually cause an alert
processor.enforce(must_match(
    trigger="Sensor.reading",
    response="Alerter.alert",
    name="reading_must_alert"
))

# Two alerts must never fire from the same reading
processor.enforce(never(
    pattern=("Alerter.alert", "Alerter.alert"),
    within_cause="Sensor.reading",
    name="no_double_alert"
))
"""

WINDOW = """\
# Keep the last 10,000 events in memory
await processor.run(window_size=10000)
"""

FULL = """\
from ematix_engine.causal import (
    StreamProcessor, InMemoryEventSource,
    must_match, never, watch
)
import asyncio

async def main():
    processor = StreamProcessor()

    # Create event sources
    sensors = InMemoryEventSource("sensors")
    alerts = InMemoryEventSource("alerts")

    processor.add_source("sensors", sensors)
    processor.add_source("alerts", alerts)

    # Watch for high-temperature readings
    processor.watch(
        pattern="Sensor.reading",
        callback=lambda e: handle_reading(e)
    )

    # Constraint: every critical reading must cause an alert
    processor.enforce(must_match(
        trigger="Sensor.critical_reading",
        response="Alerter.alert",
        name="critical_must_alert"
    ))

    # Constraint: never two alerts from the same root cause
    processor.enforce(never(
        pattern=("Alerter.alert", "Alerter.alert"),
        within_cause="Sensor.critical_reading",
        name="no_duplicate_alerts"
    ))

    # Run with a sliding window of 5000 events
    await processor.run(window_size=5000)

def handle_reading(event):
    if event.data.get("temperature", 0) > 100:
        print(f"High temp detected: {event}")

asyncio.run(main())
"""


def _ids(violation) -> tuple[str, str, tuple[str, ...]]:
    return violation.constraint, violation.kind, tuple(e.id for e in violation.events)


def test_snippets_one_to_five_in_sequence() -> None:
    chains: list[tuple[str, str]] = []
    namespace: dict[str, object] = {
        "__name__": "seed",
        "log_alert_chain": lambda cause, effect: chains.append((cause.id, effect.id)),
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in (STREAM_SETUP, SOURCES, WATCH, CONSTRAINTS):
            exec(compile(code, "seed", "exec"), namespace)
        source_a: InMemoryEventSource = namespace["source_a"]  # type: ignore[assignment]
        source_b: InMemoryEventSource = namespace["source_b"]  # type: ignore[assignment]
        # cluster a: two readings; cluster b: a third reading and the alerts (one reading
        # alerts twice, one alerts through an intermediate event, one never alerts)
        source_a.push(Event("Sensor.reading", {"temperature": 21}, id="r1"))
        source_a.push(Event("Sensor.reading", {"temperature": 35}, id="r2"))
        source_b.push(Event("Sensor.reading", {"temperature": 99}, id="r3"))
        source_b.push(Event("Alerter.alert", {"level": "warn"}, caused_by=["r1"], id="x1"))
        source_b.push(Event("Alerter.alert", {"level": "warn"}, caused_by=["r1"], id="x2"))
        source_b.push(Event("Router.forward", caused_by=["r3"], id="f3"))
        source_b.push(Event("Alerter.alert", {"level": "page"}, caused_by=["f3"], id="x3"))
        source_a.close()
        source_b.close()
        window = compile(WINDOW, "seed", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        asyncio.run(eval(window, namespace))
    processor: StreamProcessor = namespace["processor"]  # type: ignore[assignment]
    assert out.getvalue().splitlines() == [
        "Got reading: Event(id='r1', name='Sensor.reading', data={'temperature': 21})",
        "Got reading: Event(id='r2', name='Sensor.reading', data={'temperature': 35})",
        "Got reading: Event(id='r3', name='Sensor.reading', data={'temperature': 99})",
    ]
    assert sorted(chains) == [("r1", "x1"), ("r1", "x2"), ("r3", "x3")]
    assert [_ids(v) for v in processor.violations] == [
        ("no_double_alert", "never", ("r1", "x1", "x2")),
        ("reading_must_alert", "end_of_stream", ("r2",)),
    ]
    stats = processor.stats
    assert stats["events"] == 7
    assert stats["per_source"] == {"sensors_a": 2, "sensors_b": 5}
    assert stats["matches"] == 3 + 3  # three readings watched, three causal pairs
    assert stats["violations"] == 2
    assert len(processor.computation) == 7


@pytest.fixture
def scripted_sources(monkeypatch: pytest.MonkeyPatch) -> list[StreamProcessor]:
    """Fill the sources the full example creates, by name, and keep its processor."""
    script = {
        "sensors": [
            Event("Sensor.reading", {"temperature": 120}, id="s1"),
            Event("Sensor.reading", {"temperature": 80}, id="s2"),
            Event("Sensor.critical_reading", {"temperature": 140}, id="c1"),
            Event("Sensor.critical_reading", {"temperature": 150}, id="c2"),
            Event("Sensor.critical_reading", {"temperature": 160}, id="c3"),
        ],
        "alerts": [
            # c1 alerts twice (a duplicate), c2 once, c3 never
            Event("Alerter.alert", caused_by=["c1"], id="a1"),
            Event("Alerter.alert", caused_by=["c1"], id="a2"),
            Event("Alerter.alert", caused_by=["c2"], id="a3"),
        ],
    }
    processors: list[StreamProcessor] = []
    original_source_init = InMemoryEventSource.__init__
    original_processor_init = StreamProcessor.__init__

    def source_init(self: InMemoryEventSource, name: str = "memory") -> None:
        original_source_init(self, name)
        self.extend(script.get(name, []))
        self.close()

    def processor_init(self: StreamProcessor, **kwargs: object) -> None:
        original_processor_init(self, **kwargs)  # type: ignore[arg-type]
        processors.append(self)

    monkeypatch.setattr(causal.InMemoryEventSource, "__init__", source_init)
    monkeypatch.setattr(causal.StreamProcessor, "__init__", processor_init)
    return processors


def test_full_streaming_example(scripted_sources: list[StreamProcessor]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(FULL, "streaming_full.py", "exec"), {"__name__": "__main__"})
    (processor,) = scripted_sources
    assert out.getvalue().splitlines() == [
        "High temp detected: Event(id='s1', name='Sensor.reading', data={'temperature': 120})"
    ]
    assert [_ids(v) for v in processor.violations] == [
        ("no_duplicate_alerts", "never", ("c1", "a1", "a2")),
        ("critical_must_alert", "end_of_stream", ("c3",)),
    ]
    assert processor.stats["events"] == 8
    assert processor.stats["matches"] == 2
    assert processor.stats["window_limit"] == 5000
