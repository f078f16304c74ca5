"""RetryPolicy: exponential growth, the cap, jitter bounds, and jitter stable across restarts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ematix_engine.batch.orchestrate import _retry_at
from ematix_engine.errors import ConfigError
from ematix_engine.runlog import AttemptState
from ematix_engine.specs import RetryPolicy


def test_delays_grow_by_the_factor_and_stop_at_the_cap() -> None:
    policy = RetryPolicy(
        max_attempts=6, backoff_seconds=30, backoff_factor=2.0, max_backoff_seconds=200, jitter=0
    )
    assert [policy.delay_seconds(a) for a in range(1, 6)] == [30, 60, 120, 200, 200]


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.999])
def test_jitter_stays_within_its_fraction(fraction: float) -> None:
    policy = RetryPolicy(max_attempts=3, backoff_seconds=100, jitter=0.1)
    assert 90 <= policy.delay_seconds(1, fraction) <= 110
    assert policy.delay_seconds(1, 0.5) == 100


def test_bad_policies_name_the_field() -> None:
    with pytest.raises(ConfigError, match="backoff_factor"):
        RetryPolicy(backoff_factor=0.5)
    with pytest.raises(ConfigError, match="did you mean 'max_attempts'"):
        RetryPolicy.from_value({"max_attempt": 3}, "orders")


def test_the_retry_time_is_the_same_after_a_restart() -> None:
    class FakePipeline:  # only the two attributes _retry_at reads
        name = "orders"

        class spec:
            retry = RetryPolicy(max_attempts=3, backoff_seconds=60, jitter=0.5)

    state = AttemptState(
        pipeline="orders",
        consecutive_failures=1,
        last_attempt=1,
        last_failure_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    first = _retry_at(FakePipeline, state)
    assert first == _retry_at(FakePipeline, state)  # derived, not random per process
    assert 30 <= (first - state.last_failure_at).total_seconds() <= 90
    gave_up = AttemptState(pipeline="orders", consecutive_failures=3, last_attempt=3, gave_up=True)
    assert _retry_at(FakePipeline, gave_up) is None
