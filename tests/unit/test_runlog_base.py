"""RunRecord / AttemptState semantics, URL handling and redaction of the run-log package."""

from __future__ import annotations

import dataclasses
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

import ematix_engine.runlog as runlog_pkg
from ematix_engine.errors import ConfigError
from ematix_engine.runlog import (
    RUN_LOG_SCHEMES,
    AttemptState,
    RunRecord,
    RunStatus,
    attempt_state_from,
    open_run_log,
)
from ematix_engine.runlog.urls import redact_url, split_scheme, unknown_scheme_error

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_public_surface_imports_and_is_documented():
    for name in runlog_pkg.__all__:
        value = getattr(runlog_pkg, name)
        if callable(value) or isinstance(value, type):
            assert value.__doc__, name
    assert runlog_pkg.__all__ == sorted(runlog_pkg.__all__, key=lambda n: (not n.isupper(), n))


def test_record_defaults_and_normalisation():
    other_tz = timezone(timedelta(hours=2))
    record = RunRecord(
        pipeline="orders",
        status="running",
        started_at=datetime(2030, 1, 1, 2, 0, tzinfo=other_tz),
        metrics={"t": (1, 2)},
    )
    assert record.status is RunStatus.RUNNING
    assert record.attempt == 1
    assert record.started_at == T0 and record.started_at.tzinfo is UTC
    assert record.metrics == {"t": [1, 2]}  # stored as its JSON round trip
    assert len(record.run_id) == 36 and record.run_id.count("-") == 4
    assert record.duration_s is None
    assert record.rows == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 0,
        "closed": 0,
        "deleted": 0,
    }


def test_record_is_frozen_and_finished_returns_a_copy():
    record = RunRecord(pipeline="orders", status=RunStatus.RUNNING, started_at=T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = RunStatus.SUCCESS  # type: ignore[misc]
    done = record.finished("success", finished_at=T0 + timedelta(seconds=90), rows_updated=4)
    assert record.status is RunStatus.RUNNING
    assert (done.status, done.rows_updated, done.duration_s) == (RunStatus.SUCCESS, 4, 90.0)
    assert done.run_id == record.run_id
    assert json.loads(json.dumps(done.to_dict()))["finished_at"] == "2030-01-01T00:01:30+00:00"
    assert pickle.loads(pickle.dumps(done)) == done


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pipeline": ""}, "pipeline"),
        ({"run_id": ""}, "run_id"),
        ({"status": "exploded"}, "not one of"),
        ({"attempt": 0}, "attempt must be >= 1"),
        ({"attempt": True}, "attempt must be an int"),
        ({"rows_inserted": -1}, "rows_inserted"),
        ({"rows_closed": 1.5}, "rows_closed"),
        ({"error": 42}, "error must be str"),
        ({"metrics": {"when": datetime.now(UTC)}}, "JSON-serialisable"),
        ({"metrics": {"x": float("nan")}}, "JSON-serialisable"),
        ({"metrics": [1]}, "must be a dict"),
        ({"started_at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"finished_at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"started_at": "2030-01-01"}, "must be a datetime"),
    ],
)
def test_record_validation_names_the_field(changes, message):
    fields = {"pipeline": "orders", "status": RunStatus.FAILED, **changes}
    with pytest.raises((ValueError, TypeError), match=message):
        RunRecord(**fields)


def test_skipped_records_may_have_attempt_zero():
    assert RunRecord(pipeline="p", status="skipped", attempt=0).attempt == 0


def test_status_helpers():
    assert [s for s in RunStatus if s.is_failure] == [RunStatus.FAILED, RunStatus.GAVE_UP]
    assert [s for s in RunStatus if not s.is_terminal] == [RunStatus.RUNNING]


def _rec(status, attempt=1, minutes=0, pipeline="p", error=None):
    start = T0 + timedelta(minutes=minutes)
    return RunRecord(
        pipeline=pipeline,
        status=status,
        attempt=attempt,
        error=error,
        started_at=start,
        finished_at=start + timedelta(seconds=5),
    )


def test_attempt_state_from_stops_at_the_first_success():
    def newest_first():
        yield _rec("failed", 2, minutes=3, error="b")
        yield _rec("failed", 1, minutes=2, pipeline="other")
        yield _rec("failed", 1, minutes=1, error="a")
        yield _rec("success", 1, minutes=0)
        raise AssertionError("read past the last success")

    state = attempt_state_from("p", newest_first())
    assert state == AttemptState(
        pipeline="p",
        consecutive_failures=2,
        last_attempt=2,
        last_failure_at=T0 + timedelta(minutes=3, seconds=5),
        last_error="b",
        gave_up=False,
        last_success_at=T0 + timedelta(seconds=5),
    )
    assert state.next_attempt == 3


def test_attempt_state_next_attempt_after_giving_up():
    state = attempt_state_from("p", [_rec("gave_up", 5, minutes=5), _rec("failed", 4)])
    assert state.gave_up and state.consecutive_failures == 2 and state.next_attempt == 1
    assert attempt_state_from("p", []).next_attempt == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://flow:s3cret@db:5432/hist", "postgres://flow:***@db:5432/hist"),
        (
            "postgresql://flow:p%40ss@db/hist?sslmode=require",
            "postgresql://flow:***@db/hist?sslmode=require",
        ),
        (
            "postgres://db/hist?user=flow&password=s3cret",
            "postgres://db/hist?user=flow&password=***",
        ),
        ("postgres://flow@db/hist", "postgres://flow@db/hist"),
        ("sqlite://.ematix/run_log.db", "sqlite://.ematix/run_log.db"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_split_scheme():
    assert split_scheme("SQLITE:///abs/x.db") == ("sqlite", "/abs/x.db")
    assert split_scheme("sqlite://rel/x.db") == ("sqlite", "rel/x.db")
    assert split_scheme("/just/a/path") == ("", "/just/a/path")


def test_unknown_scheme_lists_schemes_suggests_and_redacts():
    with pytest.raises(ConfigError) as info:
        open_run_log("postgress://flow:s3cret@db/x")
    message = str(info.value)
    assert "did you mean 'postgres'" in message
    assert all(f"{scheme}://" in message for scheme in RUN_LOG_SCHEMES)
    assert "s3cret" not in message

    with pytest.raises(ConfigError, match=r"use one of: .*duckdb://"):
        open_run_log("mysql://u@h/db")
    with pytest.raises(ConfigError, match="has no scheme"):
        open_run_log(".ematix/run_log.db")
    assert "did you mean" not in str(unknown_scheme_error("thing", "zzz://", ["sqlite"]))


def test_fallback_does_not_hide_config_errors():
    with pytest.raises(ConfigError):
        open_run_log("nope://x", fallback=True)


def test_a_failed_manual_firing_is_no_attempt_of_the_scheduled_one():
    manual = dataclasses.replace(_rec("failed", 1, minutes=4), metrics={"trigger": "manual"})
    state = attempt_state_from("p", [manual, _rec("failed", 1, minutes=3, error="sched")])
    assert state.consecutive_failures == 1 and state.last_error == "sched"
    assert state.next_attempt == 2  # the scheduled firing's retry keeps its number and budget

    alone = attempt_state_from("p", [manual])
    assert alone.consecutive_failures == 0 and alone.next_attempt == 1


def test_a_successful_manual_firing_ends_the_failure_streak():
    manual = dataclasses.replace(_rec("success", 1, minutes=4), metrics={"trigger": "manual"})
    state = attempt_state_from("p", [manual, _rec("failed", 1, minutes=3)])
    assert state.consecutive_failures == 0 and state.next_attempt == 1
