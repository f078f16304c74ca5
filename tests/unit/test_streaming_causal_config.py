"""Causal constraints in streaming configs: keywords, TOML, the decorator; errors name the key."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow as pa
import pytest

from ematix_engine import ConfigError, DuckDBConnection, MemorySource, ematix, registry
from ematix_engine.causal import (
    CausalConfigError,
    CausalSpec,
    Event,
    MustMatch,
    Never,
    Violation,
    events_from_batch,
    never,
)
from ematix_engine.ops import AlertEvent, AlertKind, SlackAlerter, StdoutAlerter
from ematix_engine.streaming.api import streaming_spec
from ematix_engine.streaming.toml import spec_from_mapping
from ematix_engine.streaming.violations import violation_alerts, violation_record

CAUSAL = CausalSpec(id_column="id", caused_by_column="cause", name_column="event")
RULE = never("Order.cancelled", name="no-cancel")


def _keywords(**changes) -> dict:
    keywords = {
        "name": "orders",
        "source": MemorySource("orders", [{"id": "o1"}]),
        "target": DuckDBConnection(name="wh", path=":memory:"),
        "target_table": ("main", "orders"),
    }
    return keywords | changes


def _toml(**top) -> dict:
    data = {
        "pipeline_name": "orders",
        "source_query": "orders",
        "source": {"kind": "kafka", "bootstrap_servers": "localhost:9092", "group_id": "g"},
        "target": {"kind": "duckdb", "path": ":memory:", "table": {"name": "orders"}},
        "causal": {"id_column": "id", "caused_by_column": "cause", "name_column": "event"},
        "constraints": [{"kind": "never", "name": "no-cancel", "pattern": "Order.cancelled"}],
    }
    data.update(top)
    return {k: v for k, v in data.items() if v is not None}


def test_keywords_and_decorator_keep_causal_constraints_and_alerters() -> None:
    spec = streaming_spec(
        **_keywords(causal=CAUSAL, constraints=[RULE], alerters=["stdout://", StdoutAlerter()])
    )
    assert spec.causal is CAUSAL
    assert spec.constraints == (RULE,)
    assert [type(a).__name__ for a in spec.alerters] == ["StdoutAlerter", "StdoutAlerter"]

    @ematix.streaming_pipeline(**_keywords(name="guarded", causal=CAUSAL, constraints=[RULE]))
    def guarded():
        """Orders, guarded."""

    assert registry.get_streaming_spec("guarded").constraints == (RULE,)


def test_toml_builds_the_same_constraints() -> None:
    spec = spec_from_mapping(
        _toml(
            alerters=["stdout://"],
            causal={
                "id_column": "id",
                "caused_by_column": "cause",
                "name_column": "event",
                "timestamp_column": "_event_ts",
                "data_columns": ["amount"],
                "window_size": 500,
                "links": [{"effect": "Order.shipped", "cause": "Order.*", "on": "order_id"}],
            },
            constraints=[
                {
                    "kind": "must_match",
                    "name": "shipped",
                    "trigger": {"name": "Order.placed", "data": {"priority": "high"}},
                    "response": "Order.shipped",
                    "within_ms": 60000,
                },
                {"kind": "must_match", "trigger": "A", "response": "B", "within": 10},
                {
                    "kind": "never",
                    "name": "double",
                    "pattern": ["Payment.charged", "Payment.charged"],
                    "within_cause": "Order.placed",
                },
            ],
        )
    )
    shipped, counted, double = spec.constraints
    assert isinstance(shipped, MustMatch) and isinstance(double, Never)
    assert shipped.within == timedelta(milliseconds=60000)
    assert shipped.trigger.data == {"priority": "high"}
    assert (counted.name, counted.within) == ("must_match(A -> B)", 10)
    assert [p.name for p in double.pattern] == ["Payment.charged", "Payment.charged"]
    assert double.within_cause.name == "Order.placed"
    assert spec.causal.window_size == 500
    assert spec.causal.data_columns == ("amount",)
    (link,) = spec.causal.links
    assert (link.effect, link.cause, link.on) == ("Order.shipped", "Order.*", "order_id")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"causal": None}, "constraints need causal=CausalSpec"),
        ({"constraints": None}, "causal is set but constraints is empty"),
        (
            {"constraints": [{"kind": "sometimes", "pattern": "A"}]},
            "[[constraints]] #1 kind 'sometimes' is not a constraint kind; use must_match or never",
        ),
        (
            {"constraints": [{"kind": "never_", "pattern": "A"}]},
            "(did you mean 'never'?)",
        ),
        ({"constraints": [{"pattern": "A"}]}, "[[constraints]] #1 kind None"),
        (
            {"constraints": [{"kind": "never", "patern": "A"}]},
            "[[constraints]] #1 has unknown key 'patern'; did you mean 'pattern'?",
        ),
        (
            {"constraints": [{"kind": "never", "pattern": "A", "within": 3}]},
            "[[constraints]] #1 has unknown key 'within'",
        ),
        (
            {"constraints": [{"kind": "must_match", "trigger": "A"}]},
            "[[constraints]] #1 response is required for kind 'must_match'",
        ),
        (
            {"constraints": [{"kind": "must_match", "trigger": "A", "response": "B", "within": 0}]},
            "within=0 events must be >= 1",
        ),
        (
            {"constraints": [{"kind": "never", "pattern": ["A", "B", "C"]}]},
            "[[constraints]] #1 pattern is a name or a pair [cause, effect], got 3 items",
        ),
        (
            {"constraints": [{"kind": "never", "pattern": 7}]},
            "[[constraints]] #1 pattern must be an event name or a table",
        ),
        (
            {"constraints": [{"kind": "never", "pattern": {"nam": "A"}}]},
            "[[constraints]] #1 pattern has unknown key 'nam'; did you mean 'name'?",
        ),
        (
            {"constraints": [{"kind": "never", "name": "x", "pattern": "A"}] * 2},
            "constraints: the name 'x' is used twice",
        ),
        ({"constraints": {"kind": "never"}}, "constraints must be an array of tables"),
        (
            {"causal": {"id_column": "id", "name_column": "event"}},
            "[causal] caused_by_column is required",
        ),
        (
            {"causal": {"id_column": "id", "caused_by_column": "c", "name_column": "e", "x": 1}},
            "[causal] has unknown key 'x'",
        ),
        (
            {
                "causal": {
                    "id_column": "i",
                    "caused_by_column": "c",
                    "name_column": "e",
                    "window_size": 0,
                }
            },
            "[causal] window_size must be None or >= 1, got 0",
        ),
        (
            {
                "causal": {
                    "id_column": "i",
                    "caused_by_column": "c",
                    "name_column": "e",
                    "links": [{"effect": "A", "cause": "B"}],
                }
            },
            "[[causal.links]] #1 on is required",
        ),
        ({"alerters": ["pager://x"]}, "alerters[0]"),
        ({"alerters": "stdout://"}, "alerters must be an array of alerter URLs"),
        ({"alerters": ["stdout://"], "constraints": None, "causal": None}, "give constraints"),
    ],
)
def test_toml_errors_name_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        spec_from_mapping(_toml(**changes), where="pipeline.toml")
    assert str(caught.value).startswith("pipeline.toml: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"constraints": [RULE]}, "constraints need causal=CausalSpec(id_column=..."),
        ({"causal": CAUSAL}, "causal is set but constraints is empty"),
        ({"causal": CAUSAL, "constraints": RULE}, "constraints must be a list"),
        ({"causal": CAUSAL, "constraints": ["A"]}, "constraints[0] is 'A'; give must_match"),
        ({"causal": {"id_column": "id"}, "constraints": [RULE]}, "causal must be a CausalSpec"),
        (
            {"causal": CAUSAL, "constraints": [RULE], "alerters": [object()]},
            "alerters[0] is object, not an alerter",
        ),
        (
            {"causal": CAUSAL, "constraints": [RULE], "alerters": ["slack+http://example.com/x/y"]},
            "alerters[0]: Slack alerter URL 'http://example.com/x/***': plain http",
        ),
    ],
)
def test_keyword_errors_name_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        streaming_spec(**_keywords(**changes))
    assert str(caught.value).startswith("streaming pipeline 'orders': ")
    assert message in str(caught.value)


def test_causal_spec_links_window_and_tables() -> None:
    spec = CausalSpec(
        id_column="id",
        caused_by_column="cause",
        name_column="event",
        links=[("Alerter.alert", "Sensor.*", "reading_id")],
        window_size=None,
    )
    assert spec.links[0].on == "reading_id" and spec.window_size is None
    assert spec.columns == {"id_column": "id", "caused_by_column": "cause", "name_column": "event"}
    with pytest.raises(CausalConfigError, match="a link is CausalLink"):
        CausalSpec(id_column="i", caused_by_column="c", name_column="e", links=["x"])
    with pytest.raises(CausalConfigError, match="data_columns is a list"):
        CausalSpec(id_column="i", caused_by_column="c", name_column="e", data_columns="x")
    # a table works like a record batch; numeric ids and single numeric causes become text
    table = pa.table({"id": [1, 2, 3], "cause": pa.array([[], [1], [1, 2]]), "event": list("ABC")})
    events = events_from_batch(table, spec)
    assert [(e.id, e.caused_by) for e in events] == [("1", ()), ("2", ("1",)), ("3", ("1", "2"))]
    single = pa.table({"id": ["a", "b"], "cause": [None, 7], "event": ["A", "B"]})
    assert events_from_batch(single, spec)[1].caused_by == ("7",)


def test_violation_record_and_alerts() -> None:
    placed = Event("Order.placed", {"card": "4111 1111"}, id="o3")
    violation = Violation("shipped", "end_of_stream", (placed,), seq=9, detected_at=0.0)
    key, value, headers = violation_record("orders", "must_match", violation)
    assert key == b"shipped"
    assert value == (
        b'{"pipeline": "orders", "constraint": "shipped", "constraint_kind": "must_match", '
        b'"kind": "end_of_stream", "event_ids": ["o3"], "events": [{"id": "o3", "name": '
        b'"Order.placed"}], "seq": 9, "detected_at": "1970-01-01T00:00:00+00:00"}'
    )  # event data (here a card number) is never copied
    assert dict(headers) == {
        "ematix.error": b"causal constraint violated: shipped: trigger unmatched at the end of "
        b"the stream (Order.placed#o3)",
        "ematix.pipeline": b"orders",
        "ematix.constraint": b"shipped",
        "ematix.violation": b"end_of_stream",
    }
    many = [Violation("x", "never", (Event("A", id=f"a{i}"),), seq=i) for i in range(12)]
    (alert,) = violation_alerts("orders", many)
    assert alert.kind is AlertKind.VIOLATION
    lines = alert.error.splitlines()
    assert lines[0] == "causal constraint 'x' violated 12 times"
    assert lines[1] == "x: forbidden pattern occurred (A#a0)"
    assert lines[-1] == "… and 2 more" and len(lines) == 12
    assert alert.summary == "pipeline 'orders': causal constraint 'x' violated 12 times"


def test_violation_alert_on_stdout_and_slack_formats() -> None:
    event = AlertEvent(kind="violation", pipeline="orders", attempt=0, error="c violated\nline")
    out = io.StringIO()
    StdoutAlerter(out).send(event)
    assert "VIOLATION pipeline 'orders': c violated" in out.getvalue()
    text = SlackAlerter.format(event)
    assert text.startswith(
        ":no_entry: *orders* violated a causal constraint\n```c violated\nline```"
    )
