"""The causal sliding window: bounded memory, pinned triggers, summary edges, within=."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ematix_engine.causal import (
    CausalConfigError,
    Event,
    InMemoryEventSource,
    StreamProcessor,
    must_match,
    never,
)


def run(processor: StreamProcessor, events: list[Event], window: int | None) -> None:
    source = InMemoryEventSource("s")
    processor.add_source("s", source)
    source.extend(events)
    source.close()
    asyncio.run(processor.run(window_size=window))


def kinds(processor: StreamProcessor) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(v.constraint, v.kind, tuple(e.id for e in v.events)) for v in processor.violations]


def chain(start: str, middle: int, end: str, prefix: str = "m") -> list[Event]:
    events = [Event(start, id=f"{prefix}0")]
    for i in range(1, middle + 1):
        events.append(Event("Mid", caused_by=[f"{prefix}{i - 1}"], id=f"{prefix}{i}"))
    events.append(Event(end, caused_by=[f"{prefix}{middle}"], id=f"{prefix}end"))
    return events


def test_window_never_holds_more_than_its_size() -> None:
    processor = StreamProcessor()
    sizes: list[int] = []
    processor.on_event(lambda _e: sizes.append(len(processor.computation)))
    run(processor, [Event("X", id=f"x{i}") for i in range(50)], window=7)
    assert max(sizes) == 7
    assert len(processor.computation) == 7
    assert [e.id for e in processor.computation] == [f"x{i}" for i in range(43, 50)]
    assert processor.stats["evictions"] == 43


def test_summary_edges_keep_a_pair_matchable_after_the_middle_was_evicted() -> None:
    processor = StreamProcessor()
    pairs: list[tuple[str, str]] = []
    processor.watch(("A", "B"), lambda a, b: pairs.append((a.id, b.id)))
    processor.enforce(must_match("A", "B", name="a_needs_b"))  # pins A while it is open
    evicted_middle: list[bool] = []
    processor.on_event(
        lambda e: (
            evicted_middle.append("m1" not in processor.computation) if e.name == "B" else None
        )
    )
    run(processor, chain("A", 20, "B"), window=4)
    assert evicted_middle == [True]  # the path A -> m1 -> ... -> m20 -> B is mostly gone
    assert pairs == [("m0", "mend")]
    assert processor.violations == []
    assert processor.stats["evictions"] >= 18


def test_a_pair_needs_its_cause_still_retained() -> None:
    """Documented limit: an unpinned A that left the window no longer pairs."""
    processor = StreamProcessor()
    pairs: list[tuple[str, str]] = []
    processor.watch(("A", "B"), lambda a, b: pairs.append((a.id, b.id)))
    run(processor, chain("A", 20, "B"), window=4)
    assert pairs == []
    processor = StreamProcessor()
    processor.watch(("A", "B"), lambda a, b: pairs.append((a.id, b.id)))
    run(processor, chain("A", 20, "B"), window=None)
    assert pairs == [("m0", "mend")]


def test_eviction_keeps_pending_triggers_until_they_resolve() -> None:
    processor = StreamProcessor()
    held: list[bool] = []
    processor.on_event(lambda e: held.append("t" in processor.computation))
    processor.enforce(must_match("Job.start", "Job.done", name="jobs_finish"))
    events = [Event("Job.start", id="t")]
    events += [Event("Noise", id=f"n{i}") for i in range(30)]
    events.append(Event("Job.done", caused_by=["t"], id="done"))
    events += [Event("Noise", id=f"k{i}") for i in range(5)]
    run(processor, events, window=5)
    assert all(held[:31])  # kept through 30 evictions while open
    assert held[31] is False  # and left as soon as "done" matched it
    assert processor.violations == []
    assert len(processor.computation) == 5


def test_open_triggers_fill_at_most_half_the_window_then_the_oldest_is_evicted() -> None:
    processor = StreamProcessor()
    processor.enforce(must_match("T", "R", name="t_needs_r"))
    sizes: list[int] = []
    processor.on_event(lambda _e: sizes.append(len(processor.computation)))
    events = [Event("T", id=f"t{i}") for i in range(5)]
    events.append(Event("R", caused_by=["t4"], id="r4"))
    run(processor, events, window=4)
    assert max(sizes) == 4
    # window 4: at most 2 open triggers are held past their turn; t4 and r4 each push the
    # oldest held one out; r4 matches t4
    assert kinds(processor) == [
        ("t_needs_r", "evicted", ("t0",)),
        ("t_needs_r", "evicted", ("t1",)),
        ("t_needs_r", "end_of_stream", ("t2",)),
        ("t_needs_r", "end_of_stream", ("t3",)),
    ]
    assert [e.id for e in processor.computation] == ["t2", "t3", "t4", "r4"]


def test_unanswered_triggers_do_not_crowd_out_the_events_still_to_match() -> None:
    processor = StreamProcessor()
    pairs: list[tuple[str, str]] = []
    processor.watch(("Req", "Resp"), lambda a, b: pairs.append((a.id, b.id)))
    processor.enforce(must_match("Req", "Resp", name="answered"))
    events = []
    for i in range(200):
        events.append(Event("Req", id=f"q{i}"))
        if i % 2:  # every other request is never answered
            events.append(Event("Work", caused_by=[f"q{i}"], id=f"w{i}"))
            events.append(Event("Resp", caused_by=[f"w{i}"], id=f"p{i}"))
    run(processor, events, window=10)
    assert len(pairs) == 100
    assert len(processor.violations) == 100
    assert {v.kind for v in processor.violations} == {"evicted", "end_of_stream"}


def test_within_a_number_of_events() -> None:
    processor = StreamProcessor()
    processor.enforce(must_match("T", "R", name="quick", within=2))
    events = [
        Event("T", id="t1"),
        Event("X", id="x1"),
        Event("R", caused_by=["t1"], id="r1"),  # second event after t1: in time
        Event("T", id="t2"),
        Event("X", id="x2"),
        Event("X", id="x3"),
        Event("R", caused_by=["t2"], id="r2"),  # third event after t2: too late
        Event("T", id="t3"),
    ]
    run(processor, events, window=None)
    assert kinds(processor) == [
        ("quick", "timeout", ("t2",)),
        ("quick", "end_of_stream", ("t3",)),
    ]
    assert processor.violations[0].seq == 7  # fired when the 7th event arrived


def test_within_a_duration_uses_event_time() -> None:
    processor = StreamProcessor()
    processor.enforce(must_match("T", "R", name="fast", within=timedelta(seconds=10)))
    events = [
        Event("T", id="t1", timestamp=100.0),
        Event("R", caused_by=["t1"], id="r1", timestamp=109.0),
        Event("T", id="t2", timestamp=120.0),
        Event("X", id="x", timestamp=131.0),  # stream time passes t2 + 10 s
        Event("R", caused_by=["t2"], id="r2", timestamp=132.0),
    ]
    run(processor, events, window=None)
    assert kinds(processor) == [("fast", "timeout", ("t2",))]


def test_within_ms_is_a_duration_in_milliseconds() -> None:
    assert must_match("T", "R", within_ms=1500).within == timedelta(seconds=1.5)
    with pytest.raises(CausalConfigError, match="not both"):
        must_match("T", "R", within=3, within_ms=10)
    with pytest.raises(CausalConfigError, match="must be positive"):
        must_match("T", "R", within_ms=0)


@pytest.mark.parametrize("within", [0, -1, 1.5, True, "5"])
def test_within_is_events_or_a_timedelta(within: object) -> None:
    with pytest.raises(CausalConfigError, match="within"):
        must_match("T", "R", name="bad", within=within)  # type: ignore[arg-type]


def test_an_effect_naming_an_evicted_cause_is_counted_not_linked() -> None:
    processor = StreamProcessor()
    pairs: list[tuple[str, str]] = []
    processor.watch(("A", "B"), lambda a, b: pairs.append((a.id, b.id)))
    events = [Event("A", id="a")] + [Event("X", id=f"x{i}") for i in range(5)]
    events.append(Event("B", caused_by=["a"], id="b"))
    run(processor, events, window=3)
    assert pairs == []
    assert processor.stats["late_causes"] == 1


def test_never_within_cause_scope_ends_with_the_cause() -> None:
    processor = StreamProcessor()
    processor.enforce(never(("Alert", "Alert"), within_cause="Reading", name="dup"))
    events = [
        Event("Reading", id="r"),
        Event("Alert", caused_by=["r"], id="a1"),
        Event("Hop", caused_by=["a1"], id="h"),
        Event("Alert", caused_by=["h"], id="a2"),  # a1 -> h -> a2: same reading, ordered
        Event("Alert", caused_by=["r"], id="a3"),  # concurrent with a1 and a2
    ]
    run(processor, events, window=None)
    assert kinds(processor) == [
        ("dup", "never", ("r", "a1", "a2")),
        ("dup", "never", ("r", "a1", "a3")),
        ("dup", "never", ("r", "a2", "a3")),
    ]


def test_long_stream_with_a_small_window_stays_bounded() -> None:
    processor = StreamProcessor()
    processor.watch(("Sensor.reading", "Alerter.alert"), lambda a, b: None)
    processor.enforce(must_match("Sensor.reading", "Alerter.alert", name="alerted"))
    processor.enforce(never(("Alerter.alert", "Alerter.alert"), within_cause="Sensor.reading"))
    events = []
    for i in range(3000):
        events.append(Event("Sensor.reading", id=f"r{i}"))
        if i % 100:
            events.append(Event("Alerter.alert", caused_by=[f"r{i}"], id=f"a{i}"))
    run(processor, events, window=50)
    stats = processor.stats
    assert stats["window_size"] <= 50
    assert stats["matches"] == 3000 - 30
    assert [v.kind for v in processor.violations].count("evicted") + [
        v.kind for v in processor.violations
    ].count("end_of_stream") == 30
    engine = processor._engine
    assert engine is not None
    assert len(engine.retained.nodes) <= 50


def test_a_long_chain_of_matching_events_keeps_its_summaries_short() -> None:
    """Each A extends its cause's summary by one shared cell; deep chains are compacted."""
    from ematix_engine.causal.graph import Cons

    processor = StreamProcessor()
    pairs: list[str] = []
    processor.watch(("A", "B"), lambda a, b: pairs.append(a.id))
    events = [Event("A", id="a0")]
    events += [Event("A", caused_by=[f"a{i - 1}"], id=f"a{i}") for i in range(1, 1000)]
    events.append(Event("B", caused_by=["a999"], id="b"))
    run(processor, events, window=10)
    assert pairs == [f"a{i}" for i in range(990, 1000)]  # the A's still retained
    engine = processor._engine
    assert engine is not None
    depths = [
        s.depth for node in engine.retained.nodes.values() for s in node.sets if type(s) is Cons
    ]
    assert depths and max(depths) <= 2 * 10 + 64 + 1
