"""Property test (DuckDB): SCD2 event-time history does not depend on how events are batched."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import (
    Harness,
    assert_scd2_invariants,
    at,
    history,
    make_harness,
)

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}
_counter = itertools.count()


@st.composite
def scenarios(draw):
    """Events (key, minute, value), unique per (key, minute), and the batches they arrive in.

    ``distinct``: every event of a key has its own value, so no event is ever a no-op.
    ``in_order``: batches follow event time; otherwise they come in any order, with replays.
    When values repeat and batches come out of order, an event dropped as a no-op can matter
    later (t1=a, t3=a, then t2=b), so only the invariants are checked in that case.
    """
    kind = draw(st.sampled_from(["distinct", "in_order", "any", "any", "any"]))
    distinct, in_order = kind == "distinct", kind == "in_order"
    events = []
    for key in range(1, draw(st.integers(1, 2)) + 1):
        minutes = draw(st.lists(st.integers(0, 5), min_size=2, max_size=5, unique=True))
        for minute in minutes:
            value = f"v{minute}" if distinct else draw(st.sampled_from(["a", "b", "a", "b", None]))
            events.append((key, minute, value))
    n_batches = draw(st.integers(1 if in_order else 2, 4))
    if in_order:
        events.sort(key=lambda e: e[1])
        cuts = sorted(
            draw(
                st.lists(
                    st.integers(0, len(events)), min_size=n_batches - 1, max_size=n_batches - 1
                )
            )
        )
        bounds = [0, *cuts, len(events)]
        batches = [events[a:b] for a, b in itertools.pairwise(bounds)]
    else:
        slots = draw(
            st.lists(st.integers(0, n_batches - 1), min_size=len(events), max_size=len(events))
        )
        batches = [
            [e for e, s in zip(events, slots, strict=True) if s == b] for b in range(n_batches)
        ]
        for b in range(1, n_batches):  # replay a few already-sent events
            sent = [e for batch in batches[:b] for e in batch]
            batches[b] += (
                draw(st.lists(st.sampled_from(sent), max_size=2, unique=True)) if sent else []
            )
        batches = draw(st.permutations(batches))
    return distinct, in_order, events, [b for b in batches if b]


def rows_of(events):
    return [(k, v, at(0) + timedelta(minutes=m)) for k, m, v in events]


def declare(h: Harness, table: str, source: str):
    @ematix.table(schema=h.schema, name=table)
    class Hist:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ

    @ematix.pipeline(target=Hist, mode="scd2", event_timestamp_column="ts", name=f"p_{table}")
    def load(conn):
        return f"SELECT id, name, ts FROM {h.table(source)}"

    return load


def comparable(h: Harness, table: str) -> dict:
    return {
        key: [(v["valid_from"], v["valid_to"], v["is_current"], v["name"]) for v in versions]
        for key, versions in history(h, table, ["id"], ["name"]).items()
    }


def model(batches) -> dict:
    """Reference semantics: the history each batch should leave, computed in Python.

    Per key, stored versions and the batch's events form one timeline (an event at a stored
    version's time replaces its value). A version equal to the one before it is dropped when
    either of the two is new; every other version stays, ``valid_to`` = next ``valid_from``.
    """
    store: dict[int, list[tuple[int, str | None]]] = {}
    for batch in batches:
        for key in sorted({k for k, _, _ in batch}):
            stored = dict(store.get(key, []))
            new = {m: v for k, m, v in batch if k == key}
            line = sorted(
                [(m, new.get(m, v), False) for m, v in stored.items()]
                + [(m, v, True) for m, v in new.items() if m not in stored]
            )
            kept, previous = [], None
            for minute, value, is_new in line:
                if previous is None or previous[1] != value or not (is_new or previous[2]):
                    kept.append((minute, value))
                previous = (minute, value, is_new)
            store[key] = kept
    expected = {}
    for key, versions in store.items():
        starts = [at(0) + timedelta(minutes=m) for m, _ in versions]
        ends = [*starts[1:], None]
        expected[(key,)] = [
            (start, end, end is None, value)
            for start, end, (_, value) in zip(starts, ends, versions, strict=True)
        ]
    return expected


@settings(
    max_examples=25,
    database=None,  # no .hypothesis folder in the repository
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
# a late event equal to the version after it: that version must start at the late event
@example(
    scenario=(
        False,
        False,
        [(1, 0, "a"), (1, 2, "b"), (1, 1, "b")],
        [[(1, 0, "a"), (1, 2, "b")], [(1, 1, "b")]],
    )
)
def test_history_is_independent_of_batching(
    request: pytest.FixtureRequest, tmp_path: Path, scenario
) -> None:
    distinct, in_order, events, batches = scenario
    n = next(_counter)
    h = make_harness("duckdb", request, tmp_path)  # a fresh database per example
    h.create_source(f"src_{n}", COLUMNS)
    load = declare(h, f"inc_{n}", f"src_{n}")
    for batch in batches:
        h.set_rows(f"src_{n}", rows_of(batch))
        load.run()
    assert_scd2_invariants(h, f"inc_{n}", ["id"])
    incremental = comparable(h, f"inc_{n}")
    assert incremental == model(batches)
    for versions in incremental.values():  # never two equal versions in a row
        assert all(a[3] != b[3] for a, b in itertools.pairwise(versions)), versions

    h.create_source(f"all_{n}", COLUMNS, rows_of(events))
    declare(h, f"once_{n}", f"all_{n}").run()
    assert_scd2_invariants(h, f"once_{n}", ["id"])
    if distinct or in_order:
        assert incremental == comparable(h, f"once_{n}")
