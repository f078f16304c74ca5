"""SCD2 validity options (issue 12, item 8) on every harness: a ``current_valid_to`` sentinel
for current versions and custom validity column names, through snapshot loads, out-of-order
events, deletes (close and new_record), reopened keys, TTL and full refresh; the built-in checks
pass on such tables, and a table holding another marker of "current" is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pytest

from ematix_engine.api import ematix
from ematix_engine.api.table import pk
from ematix_engine.checks import evaluate_checks
from ematix_engine.checks.declarations import builtin_checks
from ematix_engine.errors import ConfigError, SchemaDriftError, SourceError
from ematix_engine.types import BigInt, Text, TimestampTZ
from tests.integration.batch.harness import Harness, at, to_dt

COLUMNS = {"id": "bigint", "name": "text", "ts": "timestamptz"}
SENTINEL = datetime(9999, 12, 31, tzinfo=UTC)
RENAMED = {
    "valid_from": "start_at",
    "valid_to": "end_at",
    "is_current": "current",
    "is_deleted": "deleted",
}
LOGICAL = ("valid_from", "valid_to", "is_current", "is_deleted")
CONFIGS = {
    "sentinel": {"current_valid_to": "9999-12-31"},
    "names": {"validity_columns": RENAMED},
    "both": {"current_valid_to": "9999-12-31", "validity_columns": RENAMED},
}


def _pipeline(h: Harness, sql: str, config: str | dict[str, Any], **options):
    given = CONFIGS[config] if isinstance(config, str) else config

    @ematix.table(schema=h.schema, name="dim")
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(target=Dim, name="dim", mode="scd2", **h.pipeline_options, **given, **options)
    def dim(conn):
        return sql

    return dim


def _open_end(config: str) -> datetime | None:
    return SENTINEL if "current_valid_to" in CONFIGS[config] else None


def _history(h: Harness, config: str) -> dict[int, list[tuple]]:
    """``{id: [(name, valid_from, valid_to, is_current, is_deleted), …]}`` by valid_from."""
    names = CONFIGS[config].get("validity_columns", {})
    physical = [names.get(n, n) for n in LOGICAL]
    result: dict[int, list[tuple]] = {}
    for row in h.rows("dim", ["id", "name", *physical], order_by=["id", physical[0]]):
        key, name, start, end, current, deleted = row
        result.setdefault(int(key), []).append(
            (name, to_dt(start), to_dt(end), bool(current), bool(deleted))
        )
    return result


def _assert_checks_pass(load) -> None:
    target = load.spec.targets[0]
    outcomes = evaluate_checks(target, builtin_checks(target))
    assert len(outcomes) == 2
    assert [(o.check, o.passed, o.detail) for o in outcomes] == [
        (o.check, True, "no failing rows") for o in outcomes
    ]


@pytest.mark.parametrize("deletes", ["close", "new_record"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_snapshot_loads_close_and_reopen_with_the_sentinel_and_names(
    h: Harness, config: str, deletes: str
) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None), (2, "b", None), (3, "c", None)])
    load = _pipeline(h, f"SELECT id, name FROM {src}", config, deletes=deletes)
    end = _open_end(config)

    load.run(as_of=at(1))
    h.set_rows("src", [(1, "a2", None), (2, "b", None)])  # 1 changes, 3 is gone
    result = load.run(as_of=at(2))
    assert (result.rows_closed, result.rows_deleted) == (2, 1)
    _assert_checks_pass(load)
    h.set_rows("src", [(1, "a2", None), (2, "b", None), (3, "c", None)])  # 3 returns
    load.run(as_of=at(3))

    history = _history(h, config)
    assert history[1] == [("a", at(1), at(2), False, False), ("a2", at(2), end, True, False)]
    assert history[2] == [("b", at(1), end, True, False)]
    if deletes == "close":
        assert history[3] == [("c", at(1), at(2), False, False), ("c", at(3), end, True, False)]
    else:
        assert history[3] == [
            ("c", at(1), at(2), False, False),
            ("c", at(2), at(3), False, True),
            ("c", at(3), end, True, False),
        ]
        _assert_checks_pass(load)  # the tombstone fills the time the key was away


@pytest.mark.parametrize("deletes", ["close", "new_record"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_out_of_order_events_deletes_and_reopen_with_the_sentinel_and_names(
    h: Harness, config: str, deletes: str
) -> None:
    first = [(1, "a", at(1)), (1, "c", at(5)), (2, "b", at(1)), (3, "c3", at(1))]
    src = h.create_source("src", COLUMNS, first)
    load = _pipeline(
        h, f"SELECT id, name, ts FROM {src}", config, event_timestamp_column="ts", deletes=deletes
    )
    end = _open_end(config)

    load.run(as_of=at(6))
    _assert_checks_pass(load)
    # a late event for key 1 splits its first interval; key 3 is gone
    h.set_rows("src", [(1, "b", at(3)), (2, "b", at(1))])
    result = load.run(as_of=at(10))
    assert result.rows_deleted == 1
    _assert_checks_pass(load)
    history = _history(h, config)
    assert history[1] == [
        ("a", at(1), at(3), False, False),
        ("b", at(3), at(5), False, False),
        ("c", at(5), end, True, False),
    ]
    assert history[2] == [("b", at(1), end, True, False)]
    if deletes == "close":
        assert history[3] == [("c3", at(1), at(10), False, False)]
    else:
        assert history[3] == [("c3", at(1), at(10), False, False), ("c3", at(10), end, True, True)]

    # key 3 returns with its old values and event time: live again from the close on
    h.set_rows("src", [(1, "c", at(5)), (2, "b", at(1)), (3, "c3", at(1))])
    load.run(as_of=at(11))
    history = _history(h, config)
    assert history[3] == [("c3", at(1), at(10), False, False), ("c3", at(10), end, True, False)]
    assert history[1][-1] == ("c", at(5), end, True, False)
    _assert_checks_pass(load)


@pytest.mark.parametrize("config", ["sentinel", "both"])
def test_ttl_closes_a_sentinel_version(h: Harness, config: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", at(1))])
    load = _pipeline(
        h, f"SELECT id, name, ts FROM {src}", config, event_timestamp_column="ts", ttl_seconds=3600
    )
    load.run(as_of=at(2))
    h.set_rows("src", [(1, "a", at(1))])
    result = load.run(as_of=at(10))
    assert result.rows_closed == 1
    history = _history(h, config)
    assert history == {
        1: [("a", at(1), SENTINEL, True, False)],
        2: [("b", at(1), at(10), False, False)],
    }


@pytest.mark.parametrize("config", list(CONFIGS))
def test_full_refresh_rebuilds_with_the_sentinel_and_names(h: Harness, config: str) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None), (2, "b", None)])
    load = _pipeline(h, f"SELECT id, name FROM {src}", config)
    load.run(as_of=at(1))
    h.set_rows("src", [(1, "a2", None), (2, "b", None)])
    load.run(as_of=at(2))
    load.run(full_refresh=True, as_of=at(3))
    end = _open_end(config)
    assert _history(h, config) == {
        1: [("a2", at(3), end, True, False)],
        2: [("b", at(3), end, True, False)],
    }
    h.set_rows("src", [(1, "a3", None), (2, "b", None)])
    load.run(as_of=at(4))  # the rebuilt table (emptied, not created) loads on
    assert _history(h, config)[1] == [
        ("a2", at(3), at(4), False, False),
        ("a3", at(4), end, True, False),
    ]
    _assert_checks_pass(load)


@pytest.mark.parametrize(
    ("before", "after"),
    [({}, {"current_valid_to": "9999-12-31"}), ({"current_valid_to": "9999-12-31"}, {})],
    ids=["null-then-sentinel", "sentinel-then-null"],
)
def test_a_table_with_another_marker_of_current_is_refused(
    h: Harness, before: dict, after: dict
) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None)])
    sql = f"SELECT id, name FROM {src}"
    _pipeline(h, sql, before).run(as_of=at(1))
    h.set_rows("src", [(1, "a2", None)])
    switched = _pipeline(h, sql, after)
    with pytest.raises(SchemaDriftError, match=r"dim\.valid_to: .*one marker of 'current'"):
        switched.run(as_of=at(2))
    assert h.count("dim") == 1  # nothing mixed in

    switched.run(full_refresh=True, as_of=at(2))  # a rebuild may switch
    (row,) = h.rows("dim", ["valid_to", "is_current"])
    assert (to_dt(row[0]), bool(row[1])) == (SENTINEL if after else None, True)


def test_history_under_the_default_names_is_refused_with_other_names(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None)])
    sql = f"SELECT id, name FROM {src}"
    _pipeline(h, sql, {}).run(as_of=at(1))
    with pytest.raises(SchemaDriftError, match="other validity_columns"):
        _pipeline(h, sql, "names").run(as_of=at(2))
    assert h.count("dim") == 1


def test_a_data_column_may_take_a_default_name_the_validity_columns_gave_up(h: Harness) -> None:
    src = h.create_source(
        "src",
        {**COLUMNS, "valid_from": "text"},
        [(1, "a", at(1), "x"), (1, "b", at(3), "y"), (2, "c", at(2), "z")],
    )

    @ematix.table(schema=h.schema, name="dim")
    class Dim:
        id: Annotated[BigInt, pk()]
        name: Text | None
        ts: TimestampTZ | None
        valid_from: Text | None

    @ematix.pipeline(
        target=Dim,
        name="dim",
        mode="scd2",
        event_timestamp_column="ts",
        validity_columns=("start_at", "end_at"),
        current_valid_to="9999-12-31",
        **h.pipeline_options,
    )
    def dim(conn):
        return f"SELECT id, name, ts, valid_from FROM {src}"

    dim.run(as_of=at(4))
    h.set_rows("src", [(1, "a", at(1), "x"), (1, "late", at(2), "w"), (2, "c", at(2), "z")])
    dim.run(as_of=at(5))
    rows = h.rows("dim", ["id", "valid_from", "start_at", "end_at"], order_by=["id", "start_at"])
    assert [(i, v, to_dt(s), to_dt(e)) for i, v, s, e in rows] == [
        (1, "x", at(1), at(2)),
        (1, "w", at(2), at(3)),
        (1, "y", at(3), SENTINEL),
        (2, "z", at(2), SENTINEL),
    ]
    _assert_checks_pass(dim)


def test_an_event_at_or_after_the_sentinel_is_refused(h: Harness) -> None:
    late = datetime(9999, 12, 31, tzinfo=UTC)
    src = h.create_source("src", COLUMNS, [(1, "a", at(1)), (2, "b", late)])
    load = _pipeline(
        h,
        f"SELECT id, name, ts FROM {src}",
        {"current_valid_to": "9999-12-31"},
        event_timestamp_column="ts",
    )
    with pytest.raises(SourceError, match=r"1 source row.*'ts'.*current_valid_to"):
        load.run()
    assert not h.exists("dim") or h.count("dim") == 0


def test_an_as_of_at_or_after_the_sentinel_is_refused(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None)])
    load = _pipeline(h, f"SELECT id, name FROM {src}", {"current_valid_to": "2030-01-01"})
    with pytest.raises(ConfigError, match="current_valid_to 2030-01-01"):
        load.run(as_of=datetime(2030, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("scope", ["partition", "retire_within"])
def test_scoped_retirement_with_the_sentinel_and_names(h: Harness, scope: str) -> None:
    columns = {"id": "bigint", "region": "text", "name": "text", "ts": "timestamptz"}
    first = [(1, "eu", "a", at(1)), (2, "us", "b", at(1)), (3, "eu", "c", at(1, day=2))]
    src = h.create_source("src", columns, first)
    options: dict[str, Any] = (
        {"partitions": ematix.daily("ts", start="2024-01-01")}
        if scope == "partition"
        else {"retire_within": ["region"]}
    )

    @ematix.table(schema=h.schema, name="dim")
    class Dim:
        id: Annotated[BigInt, pk()]
        region: Text | None
        name: Text | None
        ts: TimestampTZ | None

    @ematix.pipeline(
        target=Dim,
        name="dim",
        mode="scd2",
        deletes="close",
        **CONFIGS["both"],
        **options,
        **h.pipeline_options,
    )
    def dim(conn):
        return f"SELECT id, region, name, ts FROM {src}"

    runs = ["2024-01-01", "2024-01-02"] if scope == "partition" else [None]
    for day in runs:
        dim.run(partition=day, as_of=at(5, day=3))
    # day 1 / region eu: key 1 is gone; key 2 (us) and key 3 (day 2) are out of scope
    h.set_rows("src", [(2, "us", "b", at(1)), (3, "eu", "c", at(1, day=2))])
    if scope == "partition":
        dim.run(partition="2024-01-01", as_of=at(6, day=3))
    else:
        h.set_rows("src", [(3, "eu", "c", at(1, day=2))])  # only eu in this batch
        dim.run(as_of=at(6, day=3))
    names = RENAMED
    rows = h.rows(
        "dim", ["id", names["valid_to"], names["is_current"]], order_by=["id", names["valid_from"]]
    )
    assert [(i, to_dt(end), bool(cur)) for i, end, cur in rows] == [
        (1, at(6, day=3), False),
        (2, SENTINEL, True),
        (3, SENTINEL, True),
    ]
    _assert_checks_pass(dim)


def test_preview_says_how_the_history_is_spelled(h: Harness) -> None:
    src = h.create_source("src", COLUMNS, [(1, "a", None)])
    steps = _pipeline(h, f"SELECT id, name FROM {src}", "both").preview().targets[0].statements
    assert (
        "history columns: valid_from as start_at, valid_to as end_at, is_current as current, "
        "is_deleted as deleted"
    ) in steps
    assert (
        "current versions hold end_at = 9999-12-31T00:00:00+00:00 "
        "(refused if the table holds another marker)"
    ) in steps
